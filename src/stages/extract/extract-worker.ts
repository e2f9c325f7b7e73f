/** Worker-thread entry of the extract stage: one WAT file per task. */
import type { ExtractConfig } from "../../config/schema.js";
import { serveWorkerTasks } from "../../runner/worker-pool.js";
import { extractWatFile, type WatFileResult } from "./wat-file.js";
import type { WatInput } from "./wat-inputs.js";

export interface ExtractTask {
  input: WatInput;
  config: ExtractConfig;
}

serveWorkerTasks<ExtractTask, WatFileResult>(({ input, config }) => extractWatFile(input, config));
