/**
 * A worker thread of ShardThreads: searches one shard's graph, memory-mapped on first use and
 * kept (keyed by file: a rebuilt shard has a new file name).
 */
import { isMainThread } from "node:worker_threads";
import { VectorGraph } from "../formats/index/graph.js";
import { serveWorkerTasks } from "../shard/worker-pool.js";
import type { ShardSearchResult, ShardSearchTask } from "./shard-threads.js";

const graphs = new Map<string, VectorGraph>();

if (!isMainThread) {
  serveWorkerTasks<ShardSearchTask, ShardSearchResult>(async (task) => {
    const key = `${task.path}:${task.settings.expansionSearch}`;
    let graph = graphs.get(key);
    if (graph === undefined) {
      graph = VectorGraph.open(task.path, task.dimensions, task.settings, "view");
      graphs.set(key, graph);
    }
    return graph.search(task.vector, task.count);
  });
}
