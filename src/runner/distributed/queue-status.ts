/**
 * A distributed run's status as the queue sees it: per stage, the jobs of the root's current run
 * that wait, run (on which worker, which try) and failed for good (with the stage's reason).
 */
import { type Job, Queue } from "bullmq";
import { Redis } from "ioredis";
import { STAGE_NAMES } from "../../pipeline/pipeline.js";
import {
  type QueueOptions,
  queueName,
  RunKeys,
  redactedUrl,
  redisOptions,
  type ShardJobData,
} from "./queue-names.js";

/** Jobs read per state and stage; beyond it only counts are given. */
const LISTED_JOBS = 1000;

export interface QueueStageStatus {
  stage: string;
  waiting: number;
  active: { shard: string; worker: string | null; attempt: number }[];
  completed: number;
  failed: { shard: string; error: string; attempts: number }[];
}

export interface QueueStatus {
  queue: string;
  prefix: string;
  /** The root's current run in Redis; null when Redis holds none (never run, or data lost). */
  runId: string | null;
  stages: QueueStageStatus[];
}

export async function queueStatus(root: string, options: QueueOptions): Promise<QueueStatus> {
  const connection = { ...redisOptions(options.url), retryStrategy: () => null };
  const redis = new Redis(connection);
  redis.on("error", () => {});
  const queues = STAGE_NAMES.map(
    (stage) =>
      [stage, new Queue(queueName(stage), { connection, prefix: options.prefix })] as const,
  );
  try {
    const runId = await redis.get(RunKeys.currentRun(options.prefix, root));
    const stages: QueueStageStatus[] = [];
    for (const [stage, queue] of queues) {
      queue.on("error", () => {});
      const ofRun = (jobs: Job<ShardJobData>[]) =>
        jobs.filter((job) => job?.data?.root === root && job.data.runId === runId);
      const read = (
        states: ("waiting" | "delayed" | "prioritized" | "active" | "completed" | "failed")[],
      ) => (runId === null ? Promise.resolve([]) : queue.getJobs(states, 0, LISTED_JOBS - 1, true));
      stages.push({
        stage,
        waiting: ofRun(await read(["waiting", "delayed", "prioritized"])).length,
        active: ofRun(await read(["active"])).map((job) => ({
          shard: job.data.shard,
          worker: job.processedBy ?? null,
          attempt: job.attemptsMade + 1,
        })),
        completed: ofRun(await read(["completed"])).length,
        failed: ofRun(await read(["failed"])).map((job) => ({
          shard: job.data.shard,
          error: job.failedReason,
          attempts: job.attemptsMade,
        })),
      });
    }
    return { queue: redactedUrl(options.url), prefix: options.prefix, runId, stages };
  } finally {
    await Promise.all(queues.map(([, queue]) => queue.close()));
    redis.disconnect();
  }
}

export function describeQueueStatus(status: QueueStatus): string {
  const lines = [`queue ${status.queue} (prefix ${status.prefix})`];
  if (status.runId === null) {
    lines.push("  no run of this root in Redis (never queued there, or Redis lost its data)");
    return `${lines.join("\n")}\n`;
  }
  lines.push(`  run ${status.runId}`);
  for (const stage of status.stages) {
    const total = stage.waiting + stage.active.length + stage.completed + stage.failed.length;
    if (total === 0) continue;
    lines.push(
      `  ${stage.stage.padEnd(8)} ${stage.completed} completed, ${stage.active.length} running, ${stage.waiting} waiting, ${stage.failed.length} failed`,
    );
    for (const active of stage.active) {
      lines.push(
        `      running ${active.shard} on ${active.worker ?? "?"} (try ${active.attempt})`,
      );
    }
    for (const failed of stage.failed) {
      lines.push(`      failed ${failed.shard} after ${failed.attempts} tries: ${failed.error}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
