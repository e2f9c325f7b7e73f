/**
 * The rows a memory-tier build adds, filed in √n k-means lists (float16, in list order), so the
 * build's near-duplicate step compares each row only with the rows of its own list and those
 * beside it (listCandidates) instead of searching an HNSW graph once a row: each such search
 * walks hundreds of 512-d rows scattered in memory, whatever its list (docs/index-engine.md).
 * Held only while the build runs; nothing of it is saved.
 */
import { fromFloat16Bits } from "../../models/float16.js";
import { NearestCentres } from "../../models/nearest-centres.js";
import { kMeans, MIN_POINTS_PER_LIST, nearestCentroids } from "./ivf-pq.js";
import {
  type ListedRows,
  listCandidates,
  type QueryRows,
  rowsByList,
} from "./list-near-duplicates.js";

/** Training points a list and k-means rounds (the compressed tier's coarse lists take as many). */
const POINTS_PER_LIST = 32;
const ITERATIONS = 8;

/** Rows `firstId …` as float16 bits (row-major), as a segment adds them. */
export interface AddedRows {
  firstId: number;
  bits: Uint16Array;
}

export class RowLists implements ListedRows {
  private nearby: { count: number; lists: Uint32Array; distances: Float32Array } | undefined;

  private constructor(
    readonly dimensions: number,
    readonly centroids: Float32Array,
    /** Row r (its id less the first id) is at slot position[r] of the list order. */
    private readonly position: Uint32Array,
    /** Each row's list, by row. */
    private readonly assignment: Uint32Array,
    private readonly starts: Uint32Array,
    /** Rows (row numbers from 0) in list order, and their float16 bits in the same order. */
    private readonly rows: Uint32Array,
    private readonly bits: Uint16Array,
  ) {}

  get lists(): number {
    return this.starts.length - 1;
  }

  /**
   * Files `added` (consecutive ids from the first chunk's) in lists trained on a sample of them.
   * Takes the chunks: each leaves `added` once its rows are filed, so the build holds about one
   * copy of the rows (2 bytes a dimension a row) rather than two.
   */
  static async build(added: AddedRows[], dimensions: number, threads: number): Promise<RowLists> {
    const total = added.reduce((sum, chunk) => sum + chunk.bits.length / dimensions, 0);
    const lists = Math.max(
      1,
      Math.min(Math.round(Math.sqrt(total)), Math.floor(total / MIN_POINTS_PER_LIST)),
    );
    const nearest = await NearestCentres.open(threads);
    try {
      const sample = strided(added, dimensions, Math.min(total, lists * POINTS_PER_LIST));
      const centroids = await kMeans(nearest, sample, 1, dimensions, lists, ITERATIONS);
      const assignment = new Uint32Array(total);
      let at = 0;
      for (const chunk of added) {
        const vectors = fromFloat16Bits(chunk.bits);
        assignment.set(await nearest.nearest(vectors, centroids, 1, dimensions, lists), at);
        at += vectors.length / dimensions;
      }
      const { starts, rows } = rowsByList(assignment, lists);
      const position = new Uint32Array(total);
      rows.forEach((row, slot) => {
        position[row] = slot;
      });
      const bits = new Uint16Array(total * dimensions);
      let row = 0;
      for (let chunk = added.shift(); chunk !== undefined; chunk = added.shift()) {
        for (let offset = 0; offset < chunk.bits.length; offset += dimensions, row++) {
          const slot = position[row] as number;
          bits.set(chunk.bits.subarray(offset, offset + dimensions), slot * dimensions);
        }
      }
      return new RowLists(dimensions, centroids, position, assignment, starts, rows, bits);
    } finally {
      await nearest.close();
    }
  }

  nearestLists(count: number, threads: number): { lists: Uint32Array; distances: Float32Array } {
    if (this.nearby?.count !== count) {
      this.nearby = { count, ...nearestCentroids(this.centroids, this.dimensions, count, threads) };
    }
    return this.nearby;
  }

  listRows(list: number): { ids: Uint32Array; vectors: Float32Array } {
    const from = this.starts[list] as number;
    const to = this.starts[list + 1] as number;
    const { dimensions } = this;
    return {
      ids: this.rows.subarray(from, to),
      vectors: fromFloat16Bits(this.bits.subarray(from * dimensions, to * dimensions)),
    };
  }

  /**
   * Every pair of rows (row numbers from 0) at cosine ≥ `threshold` by their float16 rows, each
   * row with at most its `count` nearest, given to `join`.
   */
  async nearDuplicates(
    search: { threshold: number; count: number; threads: number },
    join: (row: number, other: number) => void,
  ): Promise<void> {
    const { threshold, count, threads } = search;
    const { candidates, found } = await listCandidates(this, this.queryRows(), {
      assignment: this.assignment,
      threshold,
      floor: threshold,
      count,
      threads,
      self: (row) => row,
    });
    found.forEach((total, row) => {
      for (let at = row * count; at < row * count + total; at++) {
        join(row, candidates[at] as number);
      }
    });
  }

  private queryRows(): QueryRows {
    const { dimensions } = this;
    return (count, rowAt) => {
      const bits = new Uint16Array(count * dimensions);
      for (let at = 0; at < count; at++) {
        const slot = this.position[rowAt(at)] as number;
        bits.set(this.bits.subarray(slot * dimensions, (slot + 1) * dimensions), at * dimensions);
      }
      return fromFloat16Bits(bits);
    };
  }
}

/** `wanted` rows at an even stride through the chunks, as float32 (the k-means sample). */
function strided(added: readonly AddedRows[], dimensions: number, wanted: number): Float32Array {
  const total = added.reduce((sum, chunk) => sum + chunk.bits.length / dimensions, 0);
  const bits = new Uint16Array(wanted * dimensions);
  let chunkIndex = 0;
  let chunkStart = 0;
  for (let index = 0; index < wanted; index++) {
    const row = Math.floor((index * total) / wanted);
    let chunk = added[chunkIndex] as AddedRows;
    while (row >= chunkStart + chunk.bits.length / dimensions) {
      chunkStart += chunk.bits.length / dimensions;
      chunkIndex++;
      chunk = added[chunkIndex] as AddedRows;
    }
    const offset = (row - chunkStart) * dimensions;
    bits.set(chunk.bits.subarray(offset, offset + dimensions), index * dimensions);
  }
  return fromFloat16Bits(bits);
}
