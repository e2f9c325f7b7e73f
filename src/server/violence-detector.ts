/**
 * clip-back's violence detector: an image is violent when its embedding is closer to the
 * "violent" prompt embedding than to the "safe" one (argmax over the two). clip-back downloads
 * two prompt embeddings made for ViT-B/32 and ViT-L/14; ours are the mean text embeddings of the
 * prompts in the serve config (`violencePrompts`, `safePrompts`), made with the index's own CLIP
 * text tower, so they exist for any model.
 *
 * Every row is judged once, on its image embedding (whatever modality a query searches), and the
 * flags are kept as one byte a row: a query drops flagged rows while it gathers results.
 */
import type { DatasetStorage } from "../io/storage.js";
import type { TextEmbedder } from "../models/embedder.js";

type PromptEmbedder = Pick<TextEmbedder, "embedTexts">;

import type { ClipIndex } from "../formats/index/clip-index.js";
import { scanImageVectors } from "./image-vector-scan.js";

export interface ViolencePrompts {
  violent: readonly string[];
  safe: readonly string[];
}

/** 1 for a row whose image is judged violent. */
export type ViolenceFlags = Uint8Array;

export async function computeViolenceFlags(
  storage: DatasetStorage,
  index: ClipIndex,
  embedder: PromptEmbedder,
  prompts: ViolencePrompts,
): Promise<ViolenceFlags> {
  const violent = await meanEmbedding(embedder, prompts.violent);
  const safe = await meanEmbedding(embedder, prompts.safe);
  const dimensions = index.dimensions;
  // Violent when v·violent > v·safe, that is v·(violent − safe) > 0: one dot product a row.
  const direction = violent.map((value, column) => value - (safe[column] as number));
  const flags = new Uint8Array(index.size);
  await scanImageVectors(storage, index.manifest, (firstId, rows, vectors) => {
    for (let row = 0; row < rows; row++) {
      let score = 0;
      const offset = row * dimensions;
      for (let column = 0; column < dimensions; column++) {
        score += (vectors[offset + column] as number) * (direction[column] as number);
      }
      if (score > 0) flags[firstId + row] = 1;
    }
  });
  return flags;
}

/** The normalised mean of the prompts' normalised embeddings. */
async function meanEmbedding(
  embedder: PromptEmbedder,
  prompts: readonly string[],
): Promise<Float32Array> {
  const { embeddings } = await embedder.embedTexts(prompts);
  const mean = new Float32Array(embeddings.dimensions);
  for (let row = 0; row < embeddings.rows; row++) {
    for (let column = 0; column < embeddings.dimensions; column++) {
      mean[column] =
        (mean[column] as number) +
        (embeddings.data[row * embeddings.dimensions + column] as number);
    }
  }
  const norm = Math.sqrt(mean.reduce((sum, value) => sum + value * value, 0));
  return norm === 0 ? mean : mean.map((value) => value / norm);
}
