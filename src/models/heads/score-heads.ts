/**
 * The whole `scores` config loaded: one head per score column, in config order, and a batch of
 * pairs scored by all of them. A row's errors from several heads are joined into one message;
 * a head that cannot load stops everything with its one-line ModelError.
 */
import { resolve } from "node:path";
import { DEFAULT_MAX_IMAGE_PIXELS } from "../../io/image-header.js";
import type { ClipModel } from "../clip-model.js";
import { LinearHead } from "./linear-head.js";
import { OnnxEmbeddingHead } from "./onnx-embedding-head.js";
import { OnnxPixelsHead } from "./onnx-pixels-head.js";
import type { ScoreHeadConfig } from "./score-config.js";
import type { HeadInputs, ScoreHead } from "./score-head.js";
import { ZeroShotHead } from "./zero-shot-head.js";

export interface ScoreHeadsContext {
  /** The CLIP model whose embeddings the heads read; zero-shot heads embed their prompts with it. */
  model: ClipModel;
  /** Relative paths in head configs resolve against this (the dataset root). */
  baseDir: string;
  /** onnxruntime intra-op threads for each ONNX head; 0 or absent lets it choose (all cores). */
  threads?: number;
  /** Pixel heads refuse larger images from their header (default: Pillow's limit). */
  maxImagePixels?: number;
}

/** Per score column, a value or null for every row; per row, the errors of all heads or null. */
export interface ScoredBatch {
  values: Record<string, (number | null)[]>;
  errors: (string | null)[];
}

export class ScoreHeads {
  readonly names: readonly string[];
  readonly needsImageBytes: boolean;
  /** Every model and weights file the heads read, for the stage's input digest. */
  readonly files: readonly string[];
  readonly #heads: readonly ScoreHead[];

  private constructor(heads: readonly ScoreHead[]) {
    this.#heads = heads;
    this.names = heads.map((head) => head.name);
    this.needsImageBytes = heads.some((head) => head.needsImageBytes);
    this.files = heads.flatMap((head) => head.files);
  }

  static async load(
    config: Readonly<Record<string, ScoreHeadConfig>>,
    context: ScoreHeadsContext,
  ): Promise<ScoreHeads> {
    const heads: ScoreHead[] = [];
    try {
      for (const [name, head] of Object.entries(config)) {
        heads.push(await loadHead(name, head, context));
      }
    } catch (error) {
      await Promise.all(heads.map((head) => head.release()));
      throw error;
    }
    return new ScoreHeads(heads);
  }

  async score(batch: HeadInputs): Promise<ScoredBatch> {
    const rows = batch.image.rows;
    if (batch.text.rows !== rows) {
      throw new RangeError(`${rows} image embeddings but ${batch.text.rows} text embeddings`);
    }
    const values: Record<string, (number | null)[]> = {};
    const rowErrors: string[][] = Array.from({ length: rows }, () => []);
    for (const head of this.#heads) {
      const scores = await head.score(batch);
      values[head.name] = scores.values;
      scores.errors.forEach((error, row) => {
        if (error !== null) rowErrors[row]?.push(error);
      });
    }
    return {
      values,
      errors: rowErrors.map((errors) => (errors.length === 0 ? null : errors.join("; "))),
    };
  }

  async release(): Promise<void> {
    await Promise.all(this.#heads.map((head) => head.release()));
  }
}

function loadHead(
  name: string,
  config: ScoreHeadConfig,
  context: ScoreHeadsContext,
): Promise<ScoreHead> {
  const threads = context.threads ?? 0;
  const embeddingSize = context.model.embeddingSize;
  switch (config.kind) {
    case "onnx":
      return OnnxEmbeddingHead.load(name, config, resolve(context.baseDir, config.model), {
        embeddingSize,
        threads,
      });
    case "linear":
      return LinearHead.load(name, config, resolve(context.baseDir, config.weights), {
        embeddingSize,
      });
    case "zero-shot":
      return ZeroShotHead.load(name, config, context.model);
    case "onnx-pixels":
      return OnnxPixelsHead.load(name, config, resolve(context.baseDir, config.model), {
        threads,
        maxImagePixels: context.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS,
      });
  }
}
