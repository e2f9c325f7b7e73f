/**
 * A worker thread of ShardThreads: searches its share of a query's shards, each graph
 * memory-mapped on first use and kept (keyed by file: a rebuilt shard has a new file name), and
 * merges their best.
 */
import { isMainThread } from "node:worker_threads";
import { VectorGraph } from "../formats/index/graph.js";
import { mergeMatches } from "../formats/index/sharded-graph.js";
import { serveWorkerTasks } from "../shard/worker-pool.js";
import type { ShardSearchResult, ShardSearchTask } from "./shard-threads.js";

const graphs = new Map<string, VectorGraph>();

function graphOf(path: string, task: ShardSearchTask): VectorGraph {
  const key = `${path}:${task.settings.expansionSearch}`;
  let graph = graphs.get(key);
  if (graph === undefined) {
    graph = VectorGraph.open(path, task.dimensions, task.settings, "view");
    graphs.set(key, graph);
  }
  return graph;
}

if (!isMainThread) {
  serveWorkerTasks<ShardSearchTask, ShardSearchResult>(async (task) => {
    const seconds: number[] = [];
    const found = task.shards.map((shard) => {
      const started = performance.now();
      const matches = graphOf(shard.path, task).search(task.vector, task.count);
      seconds.push((performance.now() - started) / 1000);
      return matches;
    });
    const merged =
      found.length === 1 ? (found[0] as (typeof found)[number]) : mergeMatches(found, task.count);
    return { ...merged, seconds };
  });
}
