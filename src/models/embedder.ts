/**
 * Captions and images → L2-normalised CLIP embeddings, in batches of a configurable size.
 * TextEmbedder embeds captions with any model that has a text tower (a CLIP model, or a text-only
 * model such as a multilingual one); ClipEmbedder adds images.
 *
 * Errors are data at the sample level: an image that does not decode is reported with its index
 * and message and the rest of the batch is embedded; a caption longer than the context is
 * truncated and flagged. A model that fails to run stops the batch with an exception.
 */
import { asBuffer, decodeError } from "../io/image-format.js";
import { isRefusal } from "../io/image-header.js";
import type { ClipModel } from "./clip-model.js";
import type { PixelBatch } from "./image-preprocessing.js";
import type { EmbeddingMatrix } from "./onnx-tower.js";
import type { ClipTokenizer, TokenBatch } from "./tokenizer.js";
import { normaliseRows } from "./unit-rows.js";

/** What embedding captions needs from a model: ClipModel and TextModel both have it. */
export interface CaptionModel {
  readonly tokenizer: ClipTokenizer;
  readonly embeddingSize: number;
  readonly fixedSequenceLength: number | undefined;
  encodeText(batch: TokenBatch): Promise<EmbeddingMatrix>;
}

export interface TextEmbedderOptions {
  /** Samples per ONNX run (default 64). */
  batchSize?: number;
}

export interface ClipEmbedderOptions extends TextEmbedderOptions {
  /** Images decoded and resized at once (default 8); sharp runs them on its own threads. */
  preprocessConcurrency?: number;
}

export interface TextEmbeddings {
  embeddings: EmbeddingMatrix;
  /** Per caption: it was longer than the context length and was cut. */
  truncated: boolean[];
}

export interface ImageFailure {
  /** Position of the image in the input list. */
  index: number;
  message: string;
  /** Refused from its header (not a raster format, over the pixel limit), never decoded. */
  refused?: boolean;
}

export interface ImageEmbeddings {
  /** One row per image that could be preprocessed, in input order. */
  embeddings: EmbeddingMatrix;
  /** The input position of each row. */
  indices: number[];
  failures: ImageFailure[];
}

export class TextEmbedder {
  readonly model: CaptionModel;
  readonly batchSize: number;

  constructor(model: CaptionModel, options: TextEmbedderOptions = {}) {
    this.model = model;
    this.batchSize = positiveInteger("batchSize", options.batchSize ?? 64);
  }

  async embedTexts(captions: readonly string[]): Promise<TextEmbeddings> {
    const data = new Float32Array(captions.length * this.model.embeddingSize);
    const truncated: boolean[] = [];
    for (let start = 0; start < captions.length; start += this.batchSize) {
      const batch = this.model.tokenizer.encodeBatch(
        captions.slice(start, start + this.batchSize),
        this.model.fixedSequenceLength,
      );
      const embeddings = await this.model.encodeText(batch);
      data.set(normaliseRows(embeddings).data, start * this.model.embeddingSize);
      truncated.push(...batch.truncated);
    }
    return { embeddings: matrix(captions.length, this.model.embeddingSize, data), truncated };
  }
}

export class ClipEmbedder {
  readonly model: ClipModel;
  readonly batchSize: number;
  readonly preprocessConcurrency: number;
  readonly #texts: TextEmbedder;

  constructor(model: ClipModel, options: ClipEmbedderOptions = {}) {
    this.model = model;
    this.#texts = new TextEmbedder(model, options);
    this.batchSize = this.#texts.batchSize;
    this.preprocessConcurrency = positiveInteger(
      "preprocessConcurrency",
      options.preprocessConcurrency ?? 8,
    );
  }

  embedTexts(captions: readonly string[]): Promise<TextEmbeddings> {
    return this.#texts.embedTexts(captions);
  }

  async embedImages(images: readonly Uint8Array[]): Promise<ImageEmbeddings> {
    const rows: Float32Array[] = [];
    const indices: number[] = [];
    const failures: ImageFailure[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const chunk = images.slice(start, start + this.batchSize);
      const prepared = await this.#preprocess(chunk, start, failures);
      if (prepared.length === 0) continue;
      const embeddings = normaliseRows(await this.model.encodeImages(stack(prepared)));
      prepared.forEach(({ index }, row) => {
        indices.push(index);
        rows.push(embeddingRow(embeddings, row));
      });
    }
    const data = new Float32Array(rows.length * this.model.embeddingSize);
    rows.forEach((row, index) => {
      data.set(row, index * this.model.embeddingSize);
    });
    return { embeddings: matrix(rows.length, this.model.embeddingSize, data), indices, failures };
  }

  async #preprocess(
    images: readonly Uint8Array[],
    offset: number,
    failures: ImageFailure[],
  ): Promise<{ index: number; pixels: PixelBatch }[]> {
    const prepared: { index: number; pixels: PixelBatch }[] = [];
    for (let start = 0; start < images.length; start += this.preprocessConcurrency) {
      const group = images.slice(start, start + this.preprocessConcurrency);
      const results = await Promise.allSettled(
        group.map((image) => this.model.preprocessor.preprocess(image)),
      );
      results.forEach((result, position) => {
        const index = offset + start + position;
        if (result.status === "fulfilled") prepared.push({ index, pixels: result.value });
        else {
          const bytes = asBuffer(group[position]);
          failures.push({
            index,
            message: decodeError(result.reason, bytes),
            refused: isRefusal(result.reason),
          });
        }
      });
    }
    return prepared;
  }
}

/** Row `row` of a matrix, as a view. */
export function embeddingRow(embeddings: EmbeddingMatrix, row: number): Float32Array {
  return embeddings.data.subarray(row * embeddings.dimensions, (row + 1) * embeddings.dimensions);
}

/** Dot product of two L2-normalised embeddings: their cosine similarity. */
export function cosineSimilarity(left: Float32Array, right: Float32Array): number {
  if (left.length !== right.length) {
    throw new RangeError(`embeddings of ${left.length} and ${right.length} dimensions`);
  }
  let sum = 0;
  for (let index = 0; index < left.length; index++) {
    sum += (left[index] as number) * (right[index] as number);
  }
  return sum;
}

function stack(prepared: readonly { pixels: PixelBatch }[]): PixelBatch {
  const first = prepared[0]?.pixels;
  if (first === undefined) throw new RangeError("no images to stack");
  const imageSize = 3 * first.height * first.width;
  const pixels = new Float32Array(prepared.length * imageSize);
  prepared.forEach((entry, row) => {
    if (entry.pixels.height !== first.height || entry.pixels.width !== first.width) {
      throw new RangeError(
        "preprocessed images differ in size; the preprocessor needs a centre crop or a fixed size",
      );
    }
    pixels.set(entry.pixels.pixels, row * imageSize);
  });
  return { batchSize: prepared.length, height: first.height, width: first.width, pixels };
}

function matrix(rows: number, dimensions: number, data: Float32Array): EmbeddingMatrix {
  return { rows, dimensions, data };
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be ≥ 1, got ${value}`);
  return value;
}
