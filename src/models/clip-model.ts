/**
 * A CLIP model loaded from a folder in the Hugging Face / transformers.js layout: its tokenizer,
 * its image preprocessor and its two ONNX towers on onnxruntime-node (the CPU build bundled with
 * the package). Loading checks everything a run would trip on later, each with one clear line:
 * a missing file, a tower without `input_ids` / `pixel_values` or without `text_embeds` /
 * `image_embeds`, and towers whose embedding sizes differ.
 *
 * The towers return raw projections; embedder.ts batches and L2-normalises them.
 */
import * as ort from "onnxruntime-node";
import { fromFloat16Bits, toFloat16Bits } from "./float16.js";
import { ClipImagePreprocessor, type PixelBatch } from "./image-preprocessing.js";
import { ModelError } from "./model-error.js";
import { type ClipModelFiles, locateClipModelFiles, type ModelPrecision } from "./model-files.js";
import { ClipTokenizer, type TokenBatch } from "./tokenizer.js";

export interface ClipModelOptions {
  /** Which ONNX variant of the towers to load (default fp32: `onnx/*_model.onnx`). */
  precision?: ModelPrecision;
  /** Threads one tower uses for one batch; 0 lets onnxruntime choose (all cores). */
  intraOpThreads?: number;
}

/** Raw embeddings, row-major [rows, dimensions]. */
export interface EmbeddingMatrix {
  rows: number;
  dimensions: number;
  data: Float32Array;
}

const TEXT_INPUT = "input_ids";
const ATTENTION_MASK = "attention_mask";
const TEXT_OUTPUT = "text_embeds";
const IMAGE_INPUT = "pixel_values";
const IMAGE_OUTPUT = "image_embeds";

/** One tower's session and what its graph declares about its input and output. */
interface Tower {
  session: ort.InferenceSession;
  path: string;
  inputType: ort.Tensor.Type;
  inputShape: readonly (number | string)[];
  output: string;
  takesAttentionMask: boolean;
}

export class ClipModel {
  readonly files: ClipModelFiles;
  readonly tokenizer: ClipTokenizer;
  readonly preprocessor: ClipImagePreprocessor;
  readonly embeddingSize: number;
  readonly #text: Tower;
  readonly #vision: Tower;

  private constructor(
    files: ClipModelFiles,
    tokenizer: ClipTokenizer,
    preprocessor: ClipImagePreprocessor,
    towers: { text: Tower; vision: Tower; embeddingSize: number },
  ) {
    this.files = files;
    this.tokenizer = tokenizer;
    this.preprocessor = preprocessor;
    this.#text = towers.text;
    this.#vision = towers.vision;
    this.embeddingSize = towers.embeddingSize;
  }

  static async load(folder: string, options: ClipModelOptions = {}): Promise<ClipModel> {
    const files = await locateClipModelFiles(folder, options.precision);
    const tokenizer = await ClipTokenizer.load(files);
    const preprocessor = await ClipImagePreprocessor.load(files.preprocessorConfig);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: options.intraOpThreads ?? 0,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      executionMode: "sequential",
    };
    const text = await openTower(files.textModel, TEXT_INPUT, TEXT_OUTPUT, sessionOptions);
    const vision = await openTower(files.visionModel, IMAGE_INPUT, IMAGE_OUTPUT, sessionOptions);
    try {
      const probe = new ClipModel(files, tokenizer, preprocessor, {
        text,
        vision,
        embeddingSize: 0,
      });
      const probeTokens = tokenizer.encodeBatch([""], probe.fixedSequenceLength);
      const textSize = (await probe.encodeText(probeTokens)).dimensions;
      const imageSize = (await probe.encodeImages(probe.#blankImages())).dimensions;
      if (textSize !== imageSize) {
        throw new ModelError(
          "CC_MODEL_EMBEDDING_SIZE",
          `model folder ${files.folder}: text_embeds has ${textSize} dimensions but image_embeds has ${imageSize}`,
        );
      }
      return new ClipModel(files, tokenizer, preprocessor, {
        text,
        vision,
        embeddingSize: textSize,
      });
    } catch (error) {
      await Promise.all([text.session.release(), vision.session.release()]);
      throw error;
    }
  }

  /** Sequence length the text tower requires, when its graph fixes one. */
  get fixedSequenceLength(): number | undefined {
    const length = this.#text.inputShape[1];
    return typeof length === "number" && length > 0 ? length : undefined;
  }

  /** Runs the text tower on a token batch; rows are not normalised. */
  async encodeText(batch: TokenBatch): Promise<EmbeddingMatrix> {
    const dims = [batch.batchSize, batch.sequenceLength];
    // Some exports take int32 token ids; the mask has the type of the ids.
    const asInt32 = this.#text.inputType === "int32";
    const integers = (values: BigInt64Array) =>
      asInt32
        ? new ort.Tensor("int32", Int32Array.from(values, Number), dims)
        : new ort.Tensor("int64", values, dims);
    const feeds: Record<string, ort.Tensor> = { [TEXT_INPUT]: integers(batch.inputIds) };
    if (this.#text.takesAttentionMask) feeds[ATTENTION_MASK] = integers(batch.attentionMask);
    return runTower(this.#text, feeds, batch.batchSize);
  }

  /** Runs the vision tower on preprocessed pixels; rows are not normalised. */
  async encodeImages(batch: PixelBatch): Promise<EmbeddingMatrix> {
    const dims = [batch.batchSize, 3, batch.height, batch.width];
    const input =
      this.#vision.inputType === "float16"
        ? new ort.Tensor("float16", toFloat16Bits(batch.pixels), dims)
        : new ort.Tensor("float32", batch.pixels, dims);
    return runTower(this.#vision, { [IMAGE_INPUT]: input }, batch.batchSize);
  }

  async release(): Promise<void> {
    await Promise.all([this.#text.session.release(), this.#vision.session.release()]);
  }

  /** One black image of the size the vision tower takes, to probe its output size. */
  #blankImages(): PixelBatch {
    const declared = this.#vision.inputShape;
    const fromGraph = (axis: number) => {
      const size = declared[axis];
      return typeof size === "number" && size > 0 ? size : undefined;
    };
    const output = this.preprocessor.outputSize;
    const height = fromGraph(2) ?? output?.height ?? 224;
    const width = fromGraph(3) ?? output?.width ?? 224;
    return { batchSize: 1, height, width, pixels: new Float32Array(3 * height * width) };
  }
}

async function openTower(
  path: string,
  input: string,
  output: string,
  options: ort.InferenceSession.SessionOptions,
): Promise<Tower> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, options);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ModelError(
      "CC_MODEL_INVALID_FILE",
      `${path}: not a loadable ONNX model (${reason})`,
      {
        cause: error,
      },
    );
  }
  try {
    const allowedInputs = input === TEXT_INPUT ? [TEXT_INPUT, ATTENTION_MASK] : [input];
    const unexpected = session.inputNames.filter((name) => !allowedInputs.includes(name));
    if (!session.inputNames.includes(input) || unexpected.length > 0) {
      throw new ModelError(
        "CC_MODEL_INPUT",
        `${path}: expected input ${allowedInputs.join(" (+ optional ") + (allowedInputs.length > 1 ? ")" : "")}, found ${session.inputNames.join(", ")}`,
      );
    }
    if (!session.outputNames.includes(output)) {
      throw new ModelError(
        "CC_MODEL_OUTPUT",
        `${path}: expected output ${output}, found ${session.outputNames.join(", ")}`,
      );
    }
    const metadata = session.inputMetadata.find((value) => value.name === input);
    const tensorMetadata = metadata?.isTensor ? metadata : undefined;
    return {
      session,
      path,
      inputType: tensorMetadata?.type ?? (input === TEXT_INPUT ? "int64" : "float32"),
      inputShape: tensorMetadata?.shape ?? [],
      output,
      takesAttentionMask: session.inputNames.includes(ATTENTION_MASK),
    };
  } catch (error) {
    await session.release();
    throw error;
  }
}

async function runTower(
  tower: Tower,
  feeds: Record<string, ort.Tensor>,
  rows: number,
): Promise<EmbeddingMatrix> {
  const results = await tower.session.run(feeds, [tower.output]);
  const embeds = results[tower.output];
  if (embeds === undefined) {
    throw new ModelError("CC_MODEL_OUTPUT", `${tower.path}: ran without ${tower.output}`);
  }
  const dimensions = embeds.dims.length === 2 ? (embeds.dims[1] as number) : -1;
  if (dimensions <= 0 || embeds.dims[0] !== rows) {
    throw new ModelError(
      "CC_MODEL_OUTPUT",
      `${tower.path}: ${tower.output} has shape [${embeds.dims.join(", ")}], expected [${rows}, dimensions]`,
    );
  }
  let data: Float32Array;
  if (embeds.type === "float32") data = embeds.data as Float32Array;
  else if (embeds.type === "float16") data = fromFloat16Bits(embeds.data as Uint16Array);
  else {
    throw new ModelError("CC_MODEL_OUTPUT", `${tower.path}: ${tower.output} is ${embeds.type}`);
  }
  return { rows, dimensions, data };
}
