/** Worker-thread entry of the extract stage: one WAT file per task (extract-task.ts). */
import { serveWorkerTasks } from "../../shard/worker-pool.js";
import { type ExtractTask, runExtractTask } from "./extract-task.js";
import type { WatFileResult } from "./wat-file-stats.js";

serveWorkerTasks<ExtractTask, WatFileResult>(runExtractTask);
