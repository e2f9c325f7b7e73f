/**
 * Images → L2-normalised embeddings in two steps that can overlap: `prepare` decodes and
 * preprocesses a batch on a pool of worker threads, `encode` runs the vision tower on it. The
 * shard loop prepares batch k + 1 while batch k is in the tower, so neither the cores that
 * decode nor onnxruntime's threads wait for the other.
 *
 * The arithmetic is the models layer's (ClipImagePreprocessor, ClipModel, normaliseRows); only
 * where it runs differs from ClipEmbedder.embedImages.
 */
import { DEFAULT_MAX_IMAGE_PIXELS } from "../../io/image-header.js";
import type { ClipModel, EmbeddingMatrix } from "../../models/clip-model.js";
import { type ImageFailure, normaliseRows } from "../../models/embedder.js";
import { siblingModule, WorkerPool } from "../../shard/worker-pool.js";
import type { PreprocessedImage, PreprocessTask } from "./preprocess-worker.js";

export interface PreparedImages {
  /** Input positions of the images that preprocessed, in order. */
  indices: number[];
  failures: ImageFailure[];
  images: Extract<PreprocessedImage, { ok: true }>[];
}

export interface EncodedImages {
  embeddings: EmbeddingMatrix;
  indices: number[];
  failures: ImageFailure[];
  /** Wall seconds the vision tower ran (session.run), for the model's busy share. */
  towerSeconds: number;
}

export class PipelinedImageEncoder {
  readonly #pool: WorkerPool<PreprocessTask, PreprocessedImage[]>;

  constructor(
    private readonly model: ClipModel,
    workers: number,
    private readonly decodeConcurrency: number,
    private readonly maxImagePixels = DEFAULT_MAX_IMAGE_PIXELS,
  ) {
    this.#pool = new WorkerPool(siblingModule(import.meta.url, "preprocess-worker"), workers);
  }

  async prepare(images: readonly Uint8Array[]): Promise<PreparedImages> {
    const chunkSize = Math.ceil(images.length / this.#pool.size);
    const chunks: Promise<PreprocessedImage[]>[] = [];
    for (let start = 0; start < images.length; start += chunkSize) {
      chunks.push(
        this.#pool.run({
          preprocessorConfig: this.model.files.preprocessorConfig,
          images: images.slice(start, start + chunkSize),
          concurrency: this.decodeConcurrency,
          maxImagePixels: this.maxImagePixels,
        }),
      );
    }
    const prepared: PreparedImages = { indices: [], failures: [], images: [] };
    (await Promise.all(chunks)).flat().forEach((image, index) => {
      if (image.ok) {
        prepared.indices.push(index);
        prepared.images.push(image);
      } else {
        prepared.failures.push({ index, message: image.message, refused: image.refused });
      }
    });
    return prepared;
  }

  async encode(prepared: PreparedImages): Promise<EncodedImages> {
    const first = prepared.images[0];
    if (first === undefined) {
      return {
        embeddings: { rows: 0, dimensions: this.model.embeddingSize, data: new Float32Array() },
        indices: [],
        failures: prepared.failures,
        towerSeconds: 0,
      };
    }
    const imageSize = 3 * first.height * first.width;
    const pixels = new Float32Array(prepared.images.length * imageSize);
    prepared.images.forEach((image, row) => {
      if (image.height !== first.height || image.width !== first.width) {
        throw new RangeError(
          "preprocessed images differ in size; the preprocessor needs a centre crop or a fixed size",
        );
      }
      pixels.set(image.pixels, row * imageSize);
    });
    const started = performance.now();
    const raw = await this.model.encodeImages({
      batchSize: prepared.images.length,
      height: first.height,
      width: first.width,
      pixels,
    });
    const towerSeconds = (performance.now() - started) / 1000;
    return {
      embeddings: normaliseRows(raw),
      indices: prepared.indices,
      failures: prepared.failures,
      towerSeconds,
    };
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}
