/**
 * One extract task: one WAT file read into its candidate shard. The task's port carries the
 * file's pair hashes to the stage and brings back the rows that are cross-file duplicates. It
 * runs on a worker thread (extract-worker.ts), or, for a run of one small file, on the stage's
 * own thread (extract.ts), where a thread would cost more to start than the file to read.
 */
import { once } from "node:events";
import type { MessagePort } from "node:worker_threads";
import { openRoot } from "../../io/open-root.js";
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

export async function runExtractTask({
  input,
  config,
  root,
  parquetPath,
  port,
}: ExtractTask): Promise<WatFileResult> {
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
}
