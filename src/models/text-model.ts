/**
 * A text-only model: a text encoder trained to map captions into a CLIP model's image space, as
 * LAION-5B used a multilingual CLIP text tower (M-CLIP) for the captions that are not English.
 * Its folder has the CLIP layout minus the vision parts: config.json, tokenizer.json,
 * tokenizer_config.json and `onnx/text_model.onnx` (or a `_quantized`, `_fp16`, … variant) taking
 * `input_ids` (+ `attention_mask`) and returning `text_embeds`.
 *
 * TextTower is the part a text-only model and a CLIP model share: ClipModel holds one next to its
 * vision tower. Its embeddings are only comparable with a CLIP model's images when both come from
 * the same space; `checkEmbeddingSizesMatch` refuses the mismatch that can be seen before any
 * caption is embedded.
 */
import * as ort from "onnxruntime-node";
import type { ClipModel, ClipModelOptions } from "./clip-model.js";
import { executionProviders } from "./inference-device.js";
import { ModelError } from "./model-error.js";
import { locateTextModelFiles, type TextModelFiles } from "./model-files.js";
import {
  type EmbeddingMatrix,
  fixedInputSize,
  openTower,
  runTower,
  type Tower,
  type TowerSignature,
} from "./onnx-tower.js";
import { ClipTokenizer, type TokenBatch } from "./tokenizer.js";

export type TextModelOptions = ClipModelOptions;

const ATTENTION_MASK = "attention_mask";

export const TEXT_TOWER: TowerSignature = {
  input: "input_ids",
  optionalInputs: [ATTENTION_MASK],
  output: "text_embeds",
  defaultInputType: "int64",
};

/** A text tower: token batches → raw (unnormalised) text embeddings. */
export class TextTower {
  readonly #tower: Tower;

  private constructor(tower: Tower) {
    this.#tower = tower;
  }

  static async open(
    path: string,
    options: ort.InferenceSession.SessionOptions,
  ): Promise<TextTower> {
    return new TextTower(await openTower(path, TEXT_TOWER, options));
  }

  /** Sequence length the graph requires, when it fixes one. */
  get fixedSequenceLength(): number | undefined {
    return fixedInputSize(this.#tower, 1);
  }

  async encode(batch: TokenBatch): Promise<EmbeddingMatrix> {
    const dims = [batch.batchSize, batch.sequenceLength];
    // Some exports take int32 token ids; the mask has the type of the ids.
    const asInt32 = this.#tower.inputType === "int32";
    const integers = (values: BigInt64Array) =>
      asInt32
        ? new ort.Tensor("int32", Int32Array.from(values, Number), dims)
        : new ort.Tensor("int64", values, dims);
    const feeds: Record<string, ort.Tensor> = { [TEXT_TOWER.input]: integers(batch.inputIds) };
    if (this.#tower.inputNames.includes(ATTENTION_MASK)) {
      feeds[ATTENTION_MASK] = integers(batch.attentionMask);
    }
    return runTower(this.#tower, feeds, batch.batchSize);
  }

  /** The embedding size, measured by running the tower on an empty caption. */
  async measureEmbeddingSize(tokenizer: ClipTokenizer): Promise<number> {
    const probe = tokenizer.encodeBatch([""], this.fixedSequenceLength);
    return (await this.encode(probe)).dimensions;
  }

  release(): Promise<void> {
    return this.#tower.session.release();
  }
}

export class TextModel {
  readonly files: TextModelFiles;
  readonly tokenizer: ClipTokenizer;
  readonly embeddingSize: number;
  readonly #tower: TextTower;

  private constructor(
    files: TextModelFiles,
    tokenizer: ClipTokenizer,
    tower: TextTower,
    embeddingSize: number,
  ) {
    this.files = files;
    this.tokenizer = tokenizer;
    this.#tower = tower;
    this.embeddingSize = embeddingSize;
  }

  static async load(folder: string, options: TextModelOptions = {}): Promise<TextModel> {
    const files = await locateTextModelFiles(folder, options.precision);
    const tokenizer = await ClipTokenizer.load(files);
    const tower = await TextTower.open(files.textModel, {
      executionProviders: executionProviders(options.device ?? { kind: "cpu" }),
      intraOpNumThreads: options.intraOpThreads ?? 0,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      executionMode: "sequential",
    });
    try {
      const embeddingSize = await tower.measureEmbeddingSize(tokenizer);
      return new TextModel(files, tokenizer, tower, embeddingSize);
    } catch (error) {
      await tower.release();
      throw error;
    }
  }

  /** Sequence length the text tower requires, when its graph fixes one. */
  get fixedSequenceLength(): number | undefined {
    return this.#tower.fixedSequenceLength;
  }

  /** Runs the text tower on a token batch; rows are not normalised. */
  encodeText(batch: TokenBatch): Promise<EmbeddingMatrix> {
    return this.#tower.encode(batch);
  }

  release(): Promise<void> {
    return this.#tower.release();
  }
}

/**
 * Refuses a text model whose embeddings have another size than the CLIP model's: its captions
 * could not be compared with the CLIP model's images.
 */
export function checkEmbeddingSizesMatch(textModel: TextModel, clipModel: ClipModel): void {
  if (textModel.embeddingSize === clipModel.embeddingSize) return;
  throw new ModelError(
    "CC_MODEL_EMBEDDING_SIZE",
    `text model folder ${textModel.files.folder}: text_embeds has ${textModel.embeddingSize} dimensions but the CLIP model ${clipModel.files.folder} embeds images in ${clipModel.embeddingSize}`,
  );
}
