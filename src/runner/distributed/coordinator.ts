/**
 * `clipcrawl run --queue redis://…`: queues a run's shard jobs and watches them to the end.
 *
 * It queues one extract job per WAT file, waits until every one is over (their shards take turns
 * at the shared dedup filter, see redis-pair-filter.ts), plans the image shards and queues a
 * download job for each — workers add each shard's embed and filter jobs as the shard moves on —
 * and, once every shard is filtered, one index job. Meanwhile it shows the same per-stage
 * progress as a local run and keeps the run state file (`clipcrawl status`) up to date.
 *
 * Redis is a work queue, not the record: done markers on the shared root are. If Redis loses
 * its data (restarted without persistence), the coordinator sees its run key gone, sets it again
 * and queues again every job of the phase that is not known to be over; the workers skip what
 * is done. Stopping the coordinator leaves the queued jobs to the workers; `clipcrawl run --queue`
 * again starts a new run id, and jobs of the old one complete at once without work.
 */
import { type Job, Queue } from "bullmq";
import { Redis } from "ioredis";
import { loadConfig } from "../../config/config-file.js";
import { openRoot } from "../../config/dataset-root.js";
import { ConfigError, errorMessage } from "../../errors.js";
import { shardName } from "../../io/layout.js";
import { LocalStorage } from "../../io/local-storage.js";
import {
  PIPELINE_STAGES,
  type PipelineStage,
  plannedImageShards,
  WHOLE_DATASET,
} from "../../pipeline/pipeline-stages.js";
import { recordRunReport, stageRunFromTotals } from "../../pipeline/run-report.js";
import { type PipelineObserver, PipelineProgress, silentObserver } from "../pipeline-progress.js";
import { expandInputs } from "../run-inputs.js";
import { openRunLog, type RunLogger } from "../run-log.js";
import { type FailedRunShard, RunStateRecorder } from "../run-state.js";
import {
  jobId,
  newRunId,
  type QueueOptions,
  queueName,
  RunKeys,
  redactedUrl,
  redisOptions,
  type ShardJobData,
} from "./queue-names.js";
import { jobOptions, type ShardJobResult } from "./shard-worker.js";

export interface DistributedRunOptions {
  root: string | LocalStorage;
  /** As `runPipeline`'s: none means the previous run's inputs, or the candidates in the root. */
  inputs?: readonly string[];
  crawl?: string | undefined;
  limit?: number | undefined;
  queue: QueueOptions;
  /** Tries of each job before it fails for good. */
  attempts?: number;
  observer?: PipelineObserver;
  /** Stops watching (the jobs stay queued). */
  signal?: AbortSignal;
  logger?: RunLogger;
  /** How often job states are read, in ms (default 500). */
  pollMs?: number;
  cwd?: string;
}

export interface DistributedStageTotals {
  jobs: number;
  completed: number;
  failed: number;
}

export interface DistributedRunSummary {
  ok: boolean;
  interrupted: boolean;
  root: string;
  queue: string;
  runId: string;
  stages: Record<PipelineStage, DistributedStageTotals>;
  failed: FailedRunShard[];
  /** Times Redis was found empty mid-run and the phase's jobs queued again. */
  requeues: number;
  seconds: number;
}

type TrackedState = "queued" | "active" | "completed" | "failed";

interface TrackedJob {
  stage: PipelineStage;
  shard: string;
  state: TrackedState;
  batch?: number;
}

export async function runDistributed(
  options: DistributedRunOptions,
): Promise<DistributedRunSummary> {
  const started = performance.now();
  const startedAt = new Date();
  const storage = typeof options.root === "string" ? new LocalStorage(options.root) : options.root;
  const cwd = options.cwd ?? process.cwd();
  const attempts = Math.max(1, options.attempts ?? 3);
  const pollMs = options.pollMs ?? 500;
  await openRoot(
    storage,
    (options.inputs ?? []).length > 0 || options.crawl !== undefined,
    "give WAT files to run on a new root",
  );
  const config = await loadConfig(storage);
  if (config.embed.model.trim() === "") {
    throw new ConfigError(
      "run needs a CLIP model folder: set embed.model in clipcrawl.json (clipcrawl model fetch downloads one)",
    );
  }
  const logger = options.logger ?? (await openRunLog(storage, "run")).logger;
  const observer = options.observer ?? silentObserver;
  const warn = (line: string) => {
    logger.warn({ event: "warning" }, line);
    observer.warn(line);
  };
  const aborted = () => options.signal?.aborted === true;

  const connection = redisOptions(options.queue.url);
  const { prefix } = options.queue;
  const redis = new Redis(connection);
  redis.on("error", () => {});
  const queues = new Map(
    PIPELINE_STAGES.map((stage) => [stage, new Queue(queueName(stage), { connection, prefix })]),
  );
  for (const queue of queues.values()) queue.on("error", () => {});
  const queueOf = (stage: PipelineStage) => queues.get(stage) as Queue;

  const runId = newRunId();
  const root = storage.root;
  const runKey = RunKeys.currentRun(prefix, root);
  const inputs = await expandInputs(options, storage, config.extract, cwd);
  const recorder = new RunStateRecorder(storage, {
    mode: "distributed",
    inputs: inputs.expanded,
    queue: { url: redactedUrl(options.queue.url), prefix, runId },
  });
  await recorder.flush();
  const progress = new PipelineProgress(observer);
  const tracked = new Map<string, TrackedJob>();
  let requeues = 0;
  let phaseJobs: { stage: PipelineStage; shard: string }[] = [];

  const dataOf = (stage: PipelineStage, shard: string): ShardJobData => ({
    root,
    runId,
    stage,
    shard,
    attempts,
  });
  const enqueue = async (jobs: readonly { stage: PipelineStage; shard: string }[]) => {
    for (const stage of PIPELINE_STAGES) {
      const ofStage = jobs.filter((job) => job.stage === stage);
      if (ofStage.length === 0) continue;
      await queueOf(stage).addBulk(
        ofStage.map((job) => ({
          name: stage,
          data: dataOf(stage, job.shard),
          opts: jobOptions(runId, stage, job.shard, attempts),
        })),
      );
    }
  };
  const track = (stage: PipelineStage, shard: string) => {
    const id = jobId(runId, stage, shard);
    if (!tracked.has(id)) tracked.set(id, { stage, shard, state: "queued" });
  };

  /** Reads the state of every job not over yet; false when Redis lost the run. */
  const poll = async (): Promise<void> => {
    const current = await redis.get(runKey);
    if (current !== runId) {
      if (current !== null) {
        throw new Error(`another clipcrawl run (${current}) took over ${root} on this queue`);
      }
      requeues++;
      warn(`Redis no longer holds run ${runId} (restarted?): queueing the unfinished jobs again`);
      await redis.set(runKey, runId);
      // Every shard's turn at the dedup filter starts again, so every extract job runs again.
      await enqueue(phaseJobs);
    }
    for (const [id, job] of tracked) {
      if (job.state === "completed" || job.state === "failed") continue;
      const queue = queueOf(job.stage);
      const state = await queue.getJobState(id);
      if (state === "unknown") {
        await enqueue([job]);
        continue;
      }
      if (state === "active" && job.state === "queued") {
        job.state = "active";
        job.batch = progress.startBatch(job.stage, warn).id;
        recorder.started(job.stage, [job.shard]);
      }
      if (state !== "completed" && state !== "failed") continue;
      const found: Job<ShardJobData, ShardJobResult> | undefined = await queue.getJob(id);
      job.batch ??= progress.startBatch(job.stage, warn).id;
      const ok = state === "completed";
      const error = ok ? undefined : (found?.failedReason ?? "failed");
      const outcome =
        error === undefined ? { shard: job.shard, ok } : { shard: job.shard, ok, error };
      job.state = state;
      progress.finishBatch(job.batch, {
        stage: job.stage,
        outcomes: [outcome],
        skipped: (found?.returnvalue?.skipped ?? 0) > 0 ? 1 : 0,
        samples: found?.returnvalue?.samples ?? 0,
        successes: found?.returnvalue?.successes ?? 0,
        seconds: found?.returnvalue?.seconds ?? 0,
      });
      recorder.started(job.stage, [job.shard]);
      recorder.finished(job.stage, [outcome]);
      logger.info({ event: `job ${state}`, job: id, ...(error === undefined ? {} : { error }) });
      if (!ok)
        warn(
          `${job.stage} shard ${job.shard} failed after ${found?.attemptsMade ?? attempts} tries: ${error}`,
        );
      if (ok && job.stage === "download") track("embed", job.shard);
      if (ok && job.stage === "embed") track("filter", job.shard);
    }
  };
  const waitUntilOver = async () => {
    for (;;) {
      await poll();
      const open = [...tracked.values()].some(
        (job) => job.state === "queued" || job.state === "active",
      );
      if (!open || aborted()) return;
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  };

  logger.info({
    event: "distributed run started",
    root,
    runId,
    queue: redactedUrl(options.queue.url),
  });
  try {
    // Jobs of an earlier run on this root complete without work from now on.
    const older = await redis.get(runKey);
    await redis.set(runKey, runId);
    if (older !== null) await deleteRunKeys(redis, new RunKeys(prefix, root, older));

    for (const error of inputs.errors) {
      warn(error);
      recorder.failed("extract", "inputs", error);
    }
    if (inputs.expanded.length > 0) {
      phaseJobs = inputs.expanded.map((_, index) => ({
        stage: "extract",
        shard: shardName(index),
      }));
      recorder.setShards("extract", phaseJobs.length);
      progress.setTotal("extract", phaseJobs.length);
      for (const job of phaseJobs) track(job.stage, job.shard);
      await enqueue(phaseJobs);
      await waitUntilOver();
    }

    if (!aborted()) {
      const shards = await plannedImageShards(storage);
      for (const stage of ["download", "embed", "filter"] as const) {
        recorder.setShards(stage, shards.length);
        progress.setTotal(stage, shards.length);
      }
      phaseJobs = shards.map((shard) => ({ stage: "download", shard }));
      for (const shard of shards) track("download", shard);
      await enqueue(phaseJobs);
      await waitUntilOver();

      const filtered = shards.every(
        (shard) => tracked.get(jobId(runId, "filter", shard))?.state === "completed",
      );
      if (!aborted() && filtered) {
        recorder.setShards("index", shards.length);
        progress.setTotal("index", 1);
        phaseJobs = [{ stage: "index", shard: WHOLE_DATASET }];
        track("index", WHOLE_DATASET);
        await enqueue(phaseJobs);
        await waitUntilOver();
      }
    }
  } catch (error) {
    logger.error({ event: "run failed", error: errorMessage(error) });
    await recorder.close("failed");
    await closeAll(queues, redis);
    throw error;
  }

  const interrupted = aborted();
  const stages = Object.fromEntries(
    PIPELINE_STAGES.map((stage) => {
      const jobs = [...tracked.values()].filter((job) => job.stage === stage);
      return [
        stage,
        {
          jobs: jobs.length,
          completed: jobs.filter((job) => job.state === "completed").length,
          failed: jobs.filter((job) => job.state === "failed").length,
        },
      ];
    }),
  ) as Record<PipelineStage, DistributedStageTotals>;
  const indexed = tracked.get(jobId(runId, "index", WHOLE_DATASET))?.state === "completed";
  const failed = [...recorder.current.failed];
  const ok = !interrupted && indexed && failed.length === 0;
  await recorder.close(interrupted ? "interrupted" : ok ? "finished" : "failed");
  await closeAll(queues, redis);
  await recordRunReport(
    storage,
    "run --queue",
    startedAt,
    ok,
    Object.fromEntries(
      Object.entries(stages).map(([stage, totals]) => [
        stage,
        stageRunFromTotals({
          shards: totals.jobs,
          done: totals.completed,
          failed: totals.failed,
          seconds: (performance.now() - started) / 1000,
          errors: failed
            .filter((item) => item.stage === stage)
            .map((item) => `${item.shard}: ${item.error}`),
        }),
      ]),
    ),
    warn,
  );
  logger.info({ event: "distributed run finished", ok, interrupted, requeues });
  return {
    ok,
    interrupted,
    root,
    queue: redactedUrl(options.queue.url),
    runId,
    stages,
    failed,
    requeues,
    seconds: (performance.now() - started) / 1000,
  };
}

async function closeAll(queues: Map<PipelineStage, Queue>, redis: Redis): Promise<void> {
  await Promise.all([...queues.values()].map((queue) => queue.close()));
  redis.disconnect();
}

/** Removes an older run's dedup filter and turn keys (its jobs stay, and will be superseded). */
async function deleteRunKeys(redis: Redis, keys: RunKeys): Promise<void> {
  let cursor = "0";
  do {
    const [next, found] = await redis.scan(cursor, "MATCH", keys.pattern, "COUNT", 1000);
    cursor = next;
    if (found.length > 0) await redis.unlink(...found);
  } while (cursor !== "0");
}
