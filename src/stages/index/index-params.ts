/**
 * The index's parameters from its size and the memory budget, as autofaiss picks faiss's
 * (`get_optimal_index_keys_v2`): exact search below a size; above it, a graph index (HNSW) with
 * as many links as the budget allows up to a cap, and its vectors quantized only when full
 * precision does not fit. Every value set in the config wins over the choice.
 */

import type { GraphQuantization, IndexParams } from "../../formats/index/index-manifest.js";
import type { IndexConfig } from "./config.js";

const SCALAR_BYTES: Record<GraphQuantization, number> = { f32: 4, f16: 2, i8: 1 };
/** Links beyond 16 cost memory and add little recall on CLIP-like data (bench/index.ts). */
const PREFERRED_CONNECTIVITY = 16;
const MIN_CONNECTIVITY = 8;
/** Key, level and link counts, the node's slot in the graph's tables. */
const NODE_OVERHEAD_BYTES = 32;

/** Bytes one graph takes for `rows` vectors: the vectors, the level-0 links (2M), the rest. */
export function graphBytes(
  rows: number,
  dimensions: number,
  quantization: GraphQuantization,
  connectivity: number,
): number {
  const perRow = dimensions * SCALAR_BYTES[quantization] + 8 * connectivity + NODE_OVERHEAD_BYTES;
  return rows * perRow;
}

export interface ChosenParams {
  params: IndexParams;
  /** Bytes the image and text graphs take together. */
  bytes: number;
  /** True when even the smallest choice does not fit the budget (it is built anyway). */
  overBudget: boolean;
}

export function chooseIndexParams(
  config: IndexConfig,
  rows: number,
  dimensions: number,
): ChosenParams {
  const budget = config.memoryBudgetMb * 1e6;
  const perGraph = budget / 2;
  const quantizations: GraphQuantization[] =
    config.quantization === "auto" ? ["f32", "f16", "i8"] : [config.quantization];
  const fits = (quantization: GraphQuantization, connectivity: number) =>
    graphBytes(rows, dimensions, quantization, connectivity) <= perGraph;

  let chosen: { quantization: GraphQuantization; connectivity: number } | undefined;
  if (config.connectivity > 0) {
    const connectivity = config.connectivity;
    const quantization = quantizations.find((q) => fits(q, connectivity));
    if (quantization !== undefined) chosen = { quantization, connectivity };
  } else {
    // The preferred link count at the best precision that fits, then fewer links, as autofaiss
    // lowers HNSW's M before it gives up precision.
    for (const connectivity of [PREFERRED_CONNECTIVITY, 12, MIN_CONNECTIVITY]) {
      const quantization = quantizations.find((q) => fits(q, connectivity));
      if (quantization !== undefined) {
        chosen = { quantization, connectivity };
        break;
      }
    }
  }
  const overBudget = chosen === undefined;
  const { quantization, connectivity } = chosen ?? {
    quantization: quantizations[quantizations.length - 1] as GraphQuantization,
    connectivity: config.connectivity > 0 ? config.connectivity : MIN_CONNECTIVITY,
  };
  return {
    params: {
      quantization,
      connectivity,
      expansionAdd: config.expansionAdd,
      expansionSearch:
        config.expansionSearch > 0 ? config.expansionSearch : defaultExpansionSearch(rows),
      flatMaxVectors: config.flatMaxVectors,
      duplicateThreshold: config.duplicateThreshold,
      duplicateNeighbors: config.duplicateNeighbors,
      duplicateExpansion: config.duplicateExpansion,
    },
    bytes: 2 * graphBytes(rows, dimensions, quantization, connectivity),
    overBudget,
  };
}

/**
 * The search candidate list that keeps recall@10 ≥ 0.95 as the graph grows (measured with
 * bench/index.ts on clustered 512-d vectors, M = 16): 64 gave 0.99 at 50,000 rows; at 1,000,000
 * rows (efConstruction 192, the default) 128 gave 0.955 and 160 gave 0.974, which leaves room
 * for rows harder than the bench's (docs/index-engine.md).
 */
export function defaultExpansionSearch(rows: number): number {
  return rows <= 100_000 ? 64 : 160;
}
