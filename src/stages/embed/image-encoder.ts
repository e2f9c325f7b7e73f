/**
 * Images → L2-normalised embeddings in two steps that can overlap: `prepare` decodes and
 * preprocesses a batch on a pool of worker threads, `encode` runs the vision tower on it. The
 * shard loop prepares batch k + 1 while batch k is in the tower, so neither the cores that
 * decode nor onnxruntime's threads wait for the other.
 *
 * While the tower has a batch, `workers` threads preprocess beside it (the tower's threads want the
 * other cores); while it has none (the first batch of a shard, or preprocessing fell behind), a
 * batch is spread over one worker a core, since nothing else is running (on 2 cores the first
 * batch is about 6 % of a 256-image int8 run; the bench's busy share did not move measurably).
 *
 * The arithmetic is the models layer's (ClipImagePreprocessor, ClipModel, normaliseRows); only
 * where it runs differs from ClipEmbedder.embedImages.
 */
import { cpus } from "node:os";
import { DEFAULT_MAX_IMAGE_PIXELS } from "../../io/image-header.js";
import type { ClipModel, EmbeddingMatrix } from "../../models/clip-model.js";
import type { ImageFailure } from "../../models/embedder.js";
import { normaliseRows } from "../../models/unit-rows.js";
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
  readonly #workersBesideTower: number;
  /** Batches prepared and not yet through the tower: while there is one, the tower is busy. */
  #towerBacklog = 0;

  constructor(
    private readonly model: ClipModel,
    workers: number,
    private readonly decodeConcurrency: number,
    private readonly maxImagePixels = DEFAULT_MAX_IMAGE_PIXELS,
  ) {
    this.#workersBesideTower = workers;
    // Workers start on first use, so the ones for an idle tower cost nothing until needed.
    this.#pool = new WorkerPool(
      siblingModule(import.meta.url, "preprocess-worker"),
      Math.max(workers, cpus().length),
    );
  }

  async prepare(images: readonly Uint8Array[]): Promise<PreparedImages> {
    const workers = this.#towerBacklog > 0 ? this.#workersBesideTower : this.#pool.size;
    const chunkSize = Math.ceil(images.length / workers);
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
    this.#towerBacklog++;
    return prepared;
  }

  async encode(prepared: PreparedImages): Promise<EncodedImages> {
    try {
      return await this.#encode(prepared);
    } finally {
      this.#towerBacklog = Math.max(0, this.#towerBacklog - 1);
    }
  }

  async #encode(prepared: PreparedImages): Promise<EncodedImages> {
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
