/**
 * Which tier an index is built as, from its row count and the memory budget, as autofaiss
 * moves from HNSW to IVF-PQ when the graph no longer fits: `memory` (an HNSW graph a modality,
 * index-params.ts) while the smallest graph chooseIndexParams may pick fits the budget,
 * `compressed` (IVF-PQ with float16 re-ranking, src/formats/index/ivf-pq.ts) otherwise. The
 * compressed tier's list count follows autofaiss's rule below 1M rows (compressedLists) and its PQ code is
 * the largest that keeps a row within COMPRESSED_BYTES_PER_VECTOR (docs/index-engine.md).
 */
import type { CompressedParams, IndexTier } from "../../formats/index/index-manifest.js";
import { CENTROIDS_PER_SUBSPACE } from "../../formats/index/ivf-pq.js";
import type { IndexConfig } from "./config.js";
import { type ChosenParams, chooseIndexParams } from "./index-params.js";

/** The compressed tier's goal (issue 19): lists, codes, ids and centroids a row, per modality. */
export const COMPRESSED_BYTES_PER_VECTOR = 150;
/** PQ code sizes tried, largest first (bytes a row; each must divide the dimensions). */
const CODE_SIZES = [128, 64, 32, 16, 8];
/**
 * Lists scanned and candidates re-ranked a query: IVF2048,PQ128 at 200,000 clustered 512-d rows
 * gave recall@10 0.967 at 729 QPS with these (0.916 with 8 lists and 100 candidates, 0.997 with
 * 16 and 100): bench/index-engines.ts, docs/index-engine.md. At 1M rows (IVF4096,PQ128) 0.963 at
 * 413 QPS (8 lists: 0.962 at 500; 100 candidates: 0.996): bench `index --tier compressed`.
 */
const DEFAULT_PROBES = 16;
const DEFAULT_RERANK = 50;

export interface ChosenTier {
  tier: IndexTier;
  /** One line: which tier and why (rows, budget, sizes). */
  reason: string;
  /** The in-memory choice (its size is the reason compressed is chosen). */
  memory: ChosenParams;
  /** Set when tier is compressed. */
  compressed?: CompressedParams;
  /** Estimated bytes of the two compressed indices, when tier is compressed. */
  compressedBytes?: number;
}

export function chooseIndexTier(config: IndexConfig, rows: number, dimensions: number): ChosenTier {
  const memory = chooseIndexParams(config, rows, dimensions);
  const budgetMb = config.memoryBudgetMb;
  const graphs = `HNSW ${memory.params.quantization} M=${memory.params.connectivity} needs ${mb(memory.bytes)} for ${rows} rows`;
  // Each index shard is its own IVF-PQ, trained on its own rows: lists follow a shard's rows.
  const shardRows = Math.min(rows, config.shardSize);
  const compressedTier = (reason: string): ChosenTier => {
    const compressed = compressedParams(shardRows, dimensions);
    const full = Math.floor(rows / shardRows);
    const rest = rows - full * shardRows;
    const shardBytes = (count: number) =>
      count === 0 ? 0 : ivfPqBytes(count, dimensions, compressed.lists, compressed.subQuantizers);
    const bytes = 2 * (full * shardBytes(shardRows) + shardBytes(rest));
    return {
      tier: "compressed",
      reason: `compressed (IVF${compressed.lists},PQ${compressed.subQuantizers}, ${mb(bytes)} for both modalities): ${reason}`,
      memory,
      compressed,
      compressedBytes: bytes,
    };
  };
  if (config.tier === "compressed") {
    if (shardRows >= CENTROIDS_PER_SUBSPACE) return compressedTier("index.tier is compressed");
    return {
      tier: "memory",
      reason: `memory: index.tier is compressed, but its training needs at least ${CENTROIDS_PER_SUBSPACE} rows in the first shard and there are ${shardRows}`,
      memory,
    };
  }
  if (config.tier === "memory") {
    return { tier: "memory", reason: `memory: index.tier is memory (${graphs})`, memory };
  }
  if (rows <= config.flatMaxVectors || shardRows < CENTROIDS_PER_SUBSPACE) {
    return {
      tier: "memory",
      reason: `memory: ${rows} rows are searched exactly (flatMaxVectors ${config.flatMaxVectors})`,
      memory,
    };
  }
  if (!memory.overBudget) {
    return {
      tier: "memory",
      reason: `memory: ${graphs}, within the ${budgetMb} MB budget`,
      memory,
    };
  }
  return compressedTier(
    `the smallest in-memory graph, ${graphs}, is over the ${budgetMb} MB budget`,
  );
}

/**
 * Lists for a shard of `rows`: 4·√rows rounded to a power of two, autofaiss's rule below 1M rows
 * (`get_optimal_nb_clusters`) kept above it, where autofaiss jumps to 16,384. At 1M clustered
 * rows 16,384 lists spread a query's neighbours so thin that faiss itself reached recall@10 0.59
 * at nprobe 32 and 200 re-ranked (bench `index --tier compressed`, docs/index-engine.md), and
 * training them costs 4× more rows (39 a list).
 */
export function compressedLists(rows: number): number {
  return 2 ** Math.round(Math.log2(4 * Math.sqrt(Math.max(rows, 1))));
}

export function compressedParams(rows: number, dimensions: number): CompressedParams {
  const lists = compressedLists(rows);
  const sizes = CODE_SIZES.filter((size) => dimensions % size === 0);
  const fits = (size: number) =>
    ivfPqBytes(rows, dimensions, lists, size) <= COMPRESSED_BYTES_PER_VECTOR * rows;
  const subQuantizers = sizes.find(fits) ?? sizes[sizes.length - 1] ?? 1;
  return { lists, subQuantizers, probes: DEFAULT_PROBES, rerank: DEFAULT_RERANK };
}

/** Bytes of one IVF-PQ index (ivf-pq.ts's file): float16 centroids and codebooks, ids, codes. */
export function ivfPqBytes(
  rows: number,
  dimensions: number,
  lists: number,
  subQuantizers: number,
): number {
  return (
    lists * dimensions * 2 +
    CENTROIDS_PER_SUBSPACE * dimensions * 2 +
    (lists + 1) * 4 +
    rows * (4 + subQuantizers)
  );
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(0)} MB`;
}
