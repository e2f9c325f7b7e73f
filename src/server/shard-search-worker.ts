/**
 * A worker thread of ShardThreads: searches its share of a query's shards, each graph opened on
 * first use and kept (keyed by file: a rebuilt shard has a new file name), and merges their
 * best. An HNSW graph is memory-mapped (the page cache holds one copy for every thread); a
 * compressed shard's IVF-PQ is read whole (it is the small part) and re-ranks with the float16
 * rows it reads from its segment files.
 */
import { isMainThread } from "node:worker_threads";
import { CompressedGraph } from "../formats/index/compressed-graph.js";
import { type GraphMatches, VectorGraph } from "../formats/index/graph.js";
import { SegmentVectors } from "../formats/index/segment-vectors.js";
import { mergeMatches } from "../formats/index/sharded-graph.js";
import { serveWorkerTasks } from "../shard/worker-pool.js";
import type { ShardSearchResult, ShardSearchTask } from "./shard-threads.js";

interface SearchGraph {
  search(query: Float32Array, count: number): GraphMatches;
}

const graphs = new Map<string, Promise<SearchGraph>>();

function graphOf(shard: ShardSearchTask["shards"][number], task: ShardSearchTask) {
  const compressed = task.compressed;
  const key =
    compressed === undefined
      ? `${shard.path}:${task.settings.expansionSearch}`
      : `${shard.path}:${compressed.probes}:${compressed.rerank}`;
  let graph = graphs.get(key);
  if (graph === undefined) {
    graph = openGraph(shard, task);
    // A file that cannot be opened is tried again by the next query, not remembered.
    graph.catch(() => graphs.delete(key));
    graphs.set(key, graph);
  }
  return graph;
}

async function openGraph(
  shard: ShardSearchTask["shards"][number],
  task: ShardSearchTask,
): Promise<SearchGraph> {
  if (task.compressed === undefined) {
    return VectorGraph.open(shard.path, task.dimensions, task.settings, "view");
  }
  const graph = await CompressedGraph.open(shard.path, task.dimensions, task.compressed);
  const files = shard.vectorFiles;
  if (files === undefined) throw new Error(`${shard.path}: no segment files to re-rank with`);
  graph.attachVectors(await SegmentVectors.open(files, task.dimensions, false));
  return graph;
}

if (!isMainThread) {
  serveWorkerTasks<ShardSearchTask, ShardSearchResult>(async (task) => {
    const seconds: number[] = [];
    const found: GraphMatches[] = [];
    for (const shard of task.shards) {
      const graph = await graphOf(shard, task);
      const started = performance.now();
      found.push(graph.search(task.vector, task.count));
      seconds.push((performance.now() - started) / 1000);
    }
    const merged =
      found.length === 1 ? (found[0] as GraphMatches) : mergeMatches(found, task.count);
    return { ...merged, seconds };
  });
}
