/**
 * Worker-thread entry of the download stage: one shard per task. The download context
 * (connections, DNS cache, blocklist) lives as long as the worker, so keep-alive connections
 * and cached names carry over from one shard to the next.
 */

import type { HostLimits } from "../../io/fetch/host-limits.js";
import { openRoot } from "../../io/open-root.js";
import { digestOf } from "../../shard/shard-state.js";
import { serveWorkerTasks } from "../../shard/worker-pool.js";
import {
  createDownloadContext,
  type DownloadContext,
  type DownloadShardResult,
  type DownloadShardTask,
  downloadShard,
} from "./download-shard.js";

export interface DownloadWorkerTask {
  /** The dataset root on the local file system. */
  root: string;
  task: DownloadShardTask;
  limits: HostLimits;
  blocklistPath: string;
}

let current: { key: string; context: Promise<DownloadContext> } | undefined;

function contextFor(job: DownloadWorkerTask): Promise<DownloadContext> {
  const key = digestOf({
    config: job.task.config,
    limits: job.limits,
    blocklist: job.blocklistPath,
  });
  if (current?.key !== key) {
    const previous = current?.context;
    void previous?.then((context) => context.close()).catch(() => {});
    current = {
      key,
      context: createDownloadContext(job.task.config, job.limits, job.blocklistPath),
    };
  }
  return current.context;
}

serveWorkerTasks<DownloadWorkerTask, DownloadShardResult>(async (job) =>
  downloadShard(job.task, openRoot(job.root), await contextFor(job)),
);
