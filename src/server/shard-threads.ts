/**
 * Searches the index shards a server holds in parallel, on worker threads: each query's graph
 * search (and each over-fetch round of a filtered one) goes to every held shard at once, one
 * task a thread over its share of the shards, and the shards' best are merged. The workers memory-map the same graph files the
 * main thread does, so the page cache holds one copy (a compressed shard's IVF-PQ is read whole
 * by each worker that searches it, and re-ranks from the same segment files). With one shard, or `serve.shardThreads` 1,
 * the search stays on the request's thread (a round trip to a worker would only add latency).
 */
import { cpus } from "node:os";
import type { ClipIndex, GraphSearcher } from "../formats/index/clip-index.js";
import type { GraphSettings } from "../formats/index/graph.js";
import type { CompressedParams } from "../formats/index/index-manifest.js";
import { mergeMatches, type VectorFile } from "../formats/index/sharded-graph.js";
import { siblingModule, WorkerPool } from "../shard/worker-pool.js";

export interface ShardSearchTask {
  /**
   * The graphs one worker searches, and merges, for this query; a compressed shard's IVF-PQ
   * file comes with the segment files its search re-ranks with.
   */
  shards: { name: string; path: string; vectorFiles?: readonly VectorFile[] }[];
  dimensions: number;
  settings: GraphSettings;
  /** Set for an index of the compressed tier: the files are IVF-PQ files (ivf-pq.ts). */
  compressed?: CompressedParams;
  vector: Float32Array;
  count: number;
}

export interface ShardSearchResult {
  ids: Uint32Array;
  similarities: Float32Array;
  /** Seconds each shard's search took, in the task's order. */
  seconds: number[];
}

export class ShardThreads {
  private readonly pool: WorkerPool<ShardSearchTask, ShardSearchResult>;

  constructor(
    readonly threads: number,
    /** Hears each shard's search time (serve's /metrics: per-shard latency). */
    private readonly observe: (index: string, shard: string, seconds: number) => void = () => {},
  ) {
    this.pool = new WorkerPool(siblingModule(import.meta.url, "shard-search-worker"), threads);
  }

  /** `configured` threads (0: one a core; workers start when first needed); 1: none. */
  static configured(
    configured: number,
    observe?: (index: string, shard: string, seconds: number) => void,
  ): ShardThreads | undefined {
    const threads = configured > 0 ? configured : cpus().length;
    return threads > 1 ? new ShardThreads(threads, observe) : undefined;
  }

  /** The graph searcher of index `name`: its held shards searched at once, merged. */
  searcher(index: ClipIndex, name = ""): GraphSearcher | undefined {
    if (index.heldGraphs("image").length < 2) return undefined;
    const settings = index.graphSettings;
    const compressed = index.manifest.params.compressed;
    return async (modality, vector, count) => {
      // One task a thread, each over its share of the shards: a message costs more than a
      // search of a small shard, so a query sends as few as the threads it can use.
      const held = index.heldGraphs(modality);
      const groups = Math.min(this.threads, held.length);
      const tasks = Array.from({ length: groups }, (_, group) =>
        held
          .filter((_, position) => position % groups === group)
          .map((shard) => ({
            name: shard.name,
            path: shard.path,
            ...(shard.vectorFiles === undefined ? {} : { vectorFiles: shard.vectorFiles }),
          })),
      );
      const found = await Promise.all(
        tasks.map(async (shards) => {
          const result = await this.pool.run({
            shards,
            dimensions: index.dimensions,
            settings,
            ...(compressed === undefined ? {} : { compressed }),
            vector,
            count,
          });
          shards.forEach((shard, position) => {
            this.observe(name, shard.name, result.seconds[position] as number);
          });
          return result;
        }),
      );
      return mergeMatches(found, count);
    };
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
