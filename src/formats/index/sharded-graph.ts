/**
 * The graphs of one modality over an index's shards, searched as one: each shard's graph gives
 * its `count` nearest rows (keys are global row ids), and the best `count` of all of them are
 * the answer, the same rows one graph over every row would give when each shard's search is
 * exact. A process may hold only some shards (`serve` behind a fan-out, or a shard whose file
 * is damaged): it then answers for the rows it holds.
 */
import type { CompressedGraph } from "./compressed-graph.js";
import type { GraphMatches, VectorGraph } from "./graph.js";

/** A segment's float16 vector file (segment-vectors.ts), as SegmentVectors.open takes it. */
export interface VectorFile {
  path: string;
  firstId: number;
  rows: number;
}

export interface HeldShard {
  name: string;
  firstId: number;
  rows: number;
  /** The graph's local file (a worker thread maps it too, or reads it: compressed tier). */
  path: string;
  graph: VectorGraph | CompressedGraph;
  /** Compressed tier: the segment files holding this shard's rows, which its search re-ranks with. */
  vectorFiles?: readonly VectorFile[];
}

export class ShardedGraph {
  constructor(readonly shards: readonly HeldShard[]) {}

  /** Rows in the held shards. */
  get size(): number {
    let rows = 0;
    for (const shard of this.shards) rows += shard.rows;
    return rows;
  }

  /** The `count` nearest held rows of one query, best first. */
  search(query: Float32Array, count: number): GraphMatches {
    if (this.shards.length === 1) return (this.shards[0] as HeldShard).graph.search(query, count);
    return mergeMatches(
      this.shards.map((shard) => shard.graph.search(query, count)),
      count,
    );
  }
}

/** The best `count` of several best-first match lists (ties: the smaller id first). */
export function mergeMatches(lists: readonly GraphMatches[], count: number): GraphMatches {
  let total = 0;
  for (const list of lists) total += list.ids.length;
  const order: { id: number; similarity: number }[] = new Array(total);
  let next = 0;
  for (const list of lists) {
    for (let index = 0; index < list.ids.length; index++) {
      order[next++] = {
        id: list.ids[index] as number,
        similarity: list.similarities[index] as number,
      };
    }
  }
  order.sort((a, b) => b.similarity - a.similarity || a.id - b.id);
  const kept = Math.min(count, total);
  const ids = new Uint32Array(kept);
  const similarities = new Float32Array(kept);
  for (let index = 0; index < kept; index++) {
    const match = order[index] as { id: number; similarity: number };
    ids[index] = match.id;
    similarities[index] = match.similarity;
  }
  return { ids, similarities };
}
