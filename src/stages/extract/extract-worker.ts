/**
 * Worker-thread entry of the extract stage: one WAT file per task. The task's port carries the
 * file's pair hashes to the main thread and brings back the rows that are cross-file duplicates.
 */
import { once } from "node:events";
import type { MessagePort } from "node:worker_threads";
import { openRoot } from "../../io/open-root.js";
import { serveWorkerTasks } from "../../shard/worker-pool.js";
import type { ExtractConfig } from "./config.js";
import { extractWatFile } from "./wat-file.js";
import type { WatFileResult } from "./wat-file-stats.js";
import type { WatInput } from "./wat-inputs.js";

export interface ExtractTask {
  input: WatInput;
  config: ExtractConfig;
  root: string;
  parquetPath: string;
  port: MessagePort;
}

serveWorkerTasks<ExtractTask, WatFileResult>(async ({ input, config, root, parquetPath, port }) => {
  try {
    return await extractWatFile(
      input,
      config,
      { storage: openRoot(root), parquetPath },
      async (lanes) => {
        port.postMessage(lanes, [lanes.buffer as ArrayBuffer]);
        const reply = once(port, "message").then(([message]) => message as Uint32Array);
        const stopped = once(port, "close").then(() => undefined);
        const dropped = await Promise.race([reply, stopped]);
        if (dropped === undefined)
          throw new Error("the extract run stopped before this shard's turn");
        return dropped;
      },
    );
  } finally {
    port.close();
  }
});
