/**
 * The aesthetic option of clip-back: `query + weight × E[score]`, re-normalised, where E[score]
 * is the mean CLIP image embedding of images rated `score` (0–9). clip-back downloads LAION's
 * precomputed means for ViT-B/32 and ViT-L/14; ours are computed from the index itself, so they
 * exist for any model: E[k] is the mean image embedding of the rows whose AESTHETIC_SCORE rounds
 * to k (scores below 0 count as 0, from 9.5 up as 9). A score no row has borrows the nearest
 * score that has rows; an index with no AESTHETIC_SCORE at all has no aesthetic embeddings and
 * the option changes nothing, as in clip-back for a model it has no means for.
 *
 * The means are not normalised, as LAION's are not: a tight cluster of well-rated images pulls
 * harder than a diffuse one.
 */

import type { ClipIndex } from "../formats/index/clip-index.js";
import type { DatasetStorage } from "../io/storage.js";
import { scanImageVectors } from "./image-vector-scan.js";

export const AESTHETIC_SCORES = 10;

/** E[0] … E[9]; undefined when no row has a score. */
export type AestheticEmbeddings = Float32Array[] | undefined;

export async function computeAestheticEmbeddings(
  storage: DatasetStorage,
  index: ClipIndex,
): Promise<AestheticEmbeddings> {
  const dimensions = index.dimensions;
  const sums = Array.from({ length: AESTHETIC_SCORES }, () => new Float64Array(dimensions));
  const counts = new Array<number>(AESTHETIC_SCORES).fill(0);
  await scanImageVectors(storage, index.manifest, (firstId, rows, vectors) => {
    const ids = Array.from({ length: rows }, (_, offset) => firstId + offset);
    const scores = index.metadata(ids, ["AESTHETIC_SCORE"]);
    for (let row = 0; row < rows; row++) {
      const score = scores[row]?.AESTHETIC_SCORE;
      if (typeof score !== "number" || !Number.isFinite(score)) continue;
      const bucket = Math.min(AESTHETIC_SCORES - 1, Math.max(0, Math.round(score)));
      const sum = sums[bucket] as Float64Array;
      const offset = row * dimensions;
      for (let column = 0; column < dimensions; column++) {
        sum[column] = (sum[column] as number) + (vectors[offset + column] as number);
      }
      counts[bucket] = (counts[bucket] as number) + 1;
    }
  });
  if (counts.every((count) => count === 0)) return undefined;
  return sums.map((_, score) => {
    const source = nearestRated(counts, score);
    const count = counts[source] as number;
    return Float32Array.from(sums[source] as Float64Array, (value) => value / count);
  });
}

/** The score with rows nearest to `score` (the lower one on a tie). */
function nearestRated(counts: readonly number[], score: number): number {
  for (let distance = 0; distance < AESTHETIC_SCORES; distance++) {
    if ((counts[score - distance] ?? 0) > 0) return score - distance;
    if ((counts[score + distance] ?? 0) > 0) return score + distance;
  }
  return score;
}

/** clip-back's mix: query + weight × E[score], normalised (the query unchanged without means). */
export function mixAesthetic(
  query: Float32Array,
  embeddings: AestheticEmbeddings,
  score: number,
  weight: number,
): Float32Array {
  const target = embeddings?.[score];
  if (target === undefined) return query;
  const mixed = new Float32Array(query.length);
  let norm = 0;
  for (let index = 0; index < query.length; index++) {
    const value = (query[index] as number) + weight * (target[index] as number);
    mixed[index] = value;
    norm += value * value;
  }
  if (norm === 0) return query;
  const scale = 1 / Math.sqrt(norm);
  for (let index = 0; index < mixed.length; index++)
    mixed[index] = (mixed[index] as number) * scale;
  return mixed;
}
