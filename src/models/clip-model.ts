/**
 * A CLIP model loaded from a folder in the Hugging Face / transformers.js layout: its tokenizer,
 * its image preprocessor and its two ONNX towers on onnxruntime-node (the CPU build bundled with
 * the package). Loading checks everything a run would trip on later, each with one clear line:
 * a missing file, a tower without `input_ids` / `pixel_values` or without `text_embeds` /
 * `image_embeds`, and towers whose embedding sizes differ.
 *
 * The text tower is the one a text-only model has too (text-model.ts); opening and running a
 * tower is onnx-tower.ts's. The towers return raw projections; embedder.ts batches and
 * L2-normalises them.
 */
import type onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { toFloat16Bits } from "./float16.js";
import { ClipImagePreprocessor, type PixelBatch } from "./image-preprocessing.js";
import { executionProviders, type InferenceDevice } from "./inference-device.js";
import { ModelError } from "./model-error.js";
import { type ClipModelFiles, locateClipModelFiles, type ModelPrecision } from "./model-files.js";
import { selectTokensEarlyInBytes } from "./onnx-token-selection.js";
import {
  type EmbeddingMatrix,
  fixedInputSize,
  openTower,
  runTower,
  type Tower,
  type TowerSignature,
} from "./onnx-tower.js";
import { TextTower } from "./text-model.js";
import { ClipTokenizer, type TokenBatch } from "./tokenizer.js";

export type { EmbeddingMatrix };

export interface ClipModelOptions {
  /** Which ONNX variant of the towers to load (default fp32: `onnx/*_model.onnx`). */
  precision?: ModelPrecision;
  /** Threads one tower uses for one batch; 0 lets onnxruntime choose (all cores). */
  intraOpThreads?: number;
  /** Where the towers run (default the CPU); check it first with assertDeviceAvailable. */
  device?: InferenceDevice;
  /**
   * Run the vision tower's last layer after its pooling only on the pooled (class) token
   * (onnx-token-selection.ts; default true). The embeddings are the same to float rounding;
   * false runs the graph as exported.
   */
  selectPooledTokenEarly?: boolean;
}

const VISION_TOWER: TowerSignature = {
  input: "pixel_values",
  optionalInputs: [],
  output: "image_embeds",
  defaultInputType: "float32",
};

export class ClipModel {
  readonly files: ClipModelFiles;
  readonly tokenizer: ClipTokenizer;
  readonly preprocessor: ClipImagePreprocessor;
  readonly embeddingSize: number;
  readonly #text: TextTower;
  readonly #vision: Tower;

  private constructor(
    files: ClipModelFiles,
    tokenizer: ClipTokenizer,
    preprocessor: ClipImagePreprocessor,
    towers: { text: TextTower; vision: Tower; embeddingSize: number },
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
      executionProviders: executionProviders(options.device ?? { kind: "cpu" }),
      intraOpNumThreads: options.intraOpThreads ?? 0,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      // Idle intra-op threads sleep instead of spinning: the embed stage decodes the next batch
      // on the same cores while a tower runs, and a spinning thread takes its time (measured on
      // 2 cores: 10–20% less CPU an image, and more images/s, in fp32 and int8).
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    };
    const text = await TextTower.open(files.textModel, sessionOptions);
    let vision: Tower;
    try {
      const narrow = (options.selectPooledTokenEarly ?? true) ? narrowVisionTower : undefined;
      vision = await openTower(files.visionModel, VISION_TOWER, sessionOptions, narrow);
    } catch (error) {
      await text.release();
      throw error;
    }
    try {
      const textSize = await text.measureEmbeddingSize(tokenizer);
      const blank = blankImages(vision, preprocessor);
      const imageSize = (await encodePixels(vision, blank)).dimensions;
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
      await Promise.all([text.release(), vision.session.release()]);
      throw error;
    }
  }

  /** Sequence length the text tower requires, when its graph fixes one. */
  get fixedSequenceLength(): number | undefined {
    return this.#text.fixedSequenceLength;
  }

  /** Runs the text tower on a token batch; rows are not normalised. */
  encodeText(batch: TokenBatch): Promise<EmbeddingMatrix> {
    return this.#text.encode(batch);
  }

  /** Runs the vision tower on preprocessed pixels; rows are not normalised. */
  encodeImages(batch: PixelBatch): Promise<EmbeddingMatrix> {
    return encodePixels(this.#vision, batch);
  }

  async release(): Promise<void> {
    await Promise.all([this.#text.release(), this.#vision.session.release()]);
  }
}

/** The vision tower with its class-token pooling moved up through the last layer, if it has one. */
function narrowVisionTower(bytes: Uint8Array): onnxProto.onnx.IModelProto | undefined {
  return selectTokensEarlyInBytes(bytes, [VISION_TOWER.output])?.model;
}

function encodePixels(vision: Tower, batch: PixelBatch): Promise<EmbeddingMatrix> {
  const dims = [batch.batchSize, 3, batch.height, batch.width];
  const input =
    vision.inputType === "float16"
      ? new ort.Tensor("float16", toFloat16Bits(batch.pixels), dims)
      : new ort.Tensor("float32", batch.pixels, dims);
  return runTower(vision, { [VISION_TOWER.input]: input }, batch.batchSize);
}

/** One black image of the size the vision tower takes, to probe its output size. */
function blankImages(vision: Tower, preprocessor: ClipImagePreprocessor): PixelBatch {
  const output = preprocessor.outputSize;
  const height = fixedInputSize(vision, 2) ?? output?.height ?? 224;
  const width = fixedInputSize(vision, 3) ?? output?.width ?? 224;
  return { batchSize: 1, height, width, pixels: new Float32Array(3 * height * width) };
}
