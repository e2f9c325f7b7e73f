/**
 * `clipcrawl run --queue redis://…`: queues a run's shard jobs and watches them to the end.
 *
 * It goes through the pipeline registry's chains (src/pipeline/pipeline.ts): for each, it plans
 * the chain's first stage's shards and queues a job for each (or the jobs the stage cuts them
 * into: index, one an index shard), and waits until every job of the chain is over — workers add each
 * shard's job of the next stage in the chain as the shard moves on. So: one extract job per WAT
 * file (their shards take turns at the shared dedup filter, see redis-pair-filter.ts), then a
 * download job per image shard, followed shard by shard by embed and filter, then the index's
 * jobs (one an index shard) once every shard is filtered. Meanwhile it shows the same per-stage
 * progress as a local run and keeps the run state file (`clipcrawl status`) up to date.
 *
 * Redis is a work queue, not the record: done markers on the shared root are. If Redis loses
 * its data (restarted without persistence), the coordinator sees its run key gone, sets it again
 * and queues again every job of the phase that is not known to be over; the workers skip what
 * is done. Stopping the coordinator leaves the queued jobs to the workers; `clipcrawl run --queue`
 * again starts a new run id, and jobs of the old one complete at once without work.
 */
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { loadConfig } from "../../config/config-file.js";
import { startOrOpenRoot } from "../../config/dataset-root.js";
import { errorMessage } from "../../errors.js";
import { openRoot } from "../../io/open-root.js";
import type { DatasetStorage } from "../../io/storage.js";
import {
  nextStage,
  type PerStage,
  PIPELINE,
  perStage,
  type Stages,
  stageChains,
} from "../../pipeline/pipeline.js";
import { recordRunReport, stageRunFromTotals } from "../../pipeline/run-report.js";
import type {
  AnyStageDefinition,
  ConfigSections,
  PlanEntry,
  SharedStageRun,
} from "../../shard/stage-definition.js";
import { type PipelineObserver, PipelineProgress, silentObserver } from "../pipeline-progress.js";
import { expandInputs } from "../run-inputs.js";
import { openRunLog, type RunLog, type RunLogger } from "../run-log.js";
import { type FailedRunShard, RunStateRecorder } from "../run-state.js";
import { recordDatasetVersion } from "../run-version.js";
import { JobWatch, type WatchedJob } from "./job-watch.js";
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
import { jobOptions } from "./shard-worker.js";
import { checkDedupRedis, openSharedPairFilter } from "./sharded-pair-filter.js";

/** Jobs added to Redis in one call (addBulk runs one script for all of them). */
const ENQUEUE_BATCH = 1000;

export interface DistributedRunOptions {
  root: string | DatasetStorage;
  /** As `runPipeline`'s: none means the previous run's inputs, or the candidates in the root. */
  inputs?: readonly string[];
  crawl?: string | undefined;
  limit?: number | undefined;
  /** Values that override the root's clipcrawl.json for every stage of this run (its jobs carry them). */
  config?: ConfigSections;
  queue: QueueOptions;
  /** Tries of each job before it fails for good. */
  attempts?: number;
  observer?: PipelineObserver;
  /** Stops watching (the jobs stay queued). */
  signal?: AbortSignal;
  logger?: RunLogger;
  /**
   * How often the coordinator checks that Redis still holds the run, in ms (default 500); job
   * states are read only when no event came for four times this long.
   */
  pollMs?: number;
  cwd?: string;
  /** The stages to run (default: the pipeline registry's); the workers must hold the same. */
  pipeline?: Stages;
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
  stages: PerStage<DistributedStageTotals>;
  failed: FailedRunShard[];
  /** Times Redis was found empty mid-run and the phase's jobs queued again. */
  requeues: number;
  seconds: number;
}

export async function runDistributed(
  options: DistributedRunOptions,
): Promise<DistributedRunSummary> {
  const started = performance.now();
  const startedAt = new Date();
  const storage = openRoot(options.root);
  const cwd = options.cwd ?? process.cwd();
  const attempts = Math.max(1, options.attempts ?? 3);
  const pollMs = options.pollMs ?? 500;
  const pipeline = options.pipeline ?? PIPELINE;
  await startOrOpenRoot(
    storage,
    (options.inputs ?? []).length > 0 || options.crawl !== undefined,
    "give WAT files to run on a new root",
  );
  const config = await loadConfig(storage, options.config);
  for (const stage of pipeline) stage.checkConfig?.(config);
  await checkDedupRedis(config.extract.dedupRedis);
  const runLog = options.logger === undefined ? await openRunLog(storage, "run") : undefined;
  const logger = options.logger ?? (runLog as RunLog).logger;
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
    pipeline.map(({ name }) => [name, new Queue(queueName(name), { connection, prefix })]),
  );
  for (const queue of queues.values()) queue.on("error", () => {});
  const queueOf = (stage: string) => queues.get(stage) as Queue;

  const runId = newRunId();
  const root = storage.root;
  const runKey = RunKeys.currentRun(prefix, root);
  const inputs = await expandInputs(pipeline, { ...options, cwd }, storage, config);
  const recorder = new RunStateRecorder(storage, {
    mode: "distributed",
    inputs: inputs.expanded,
    queue: { url: redactedUrl(options.queue.url), prefix, runId },
  });
  await recorder.flush();
  const progress = new PipelineProgress(pipeline, observer);
  const counts = perStage(pipeline, () => ({ jobs: 0, completed: 0, failed: 0 }));
  const batches = new Map<string, number>();
  let requeues = 0;
  /** The current chain's first-stage jobs: after a Redis loss they all run again. */
  let phaseJobs: WatchedJob[] = [];
  /** The current chain's first stage, and what its shared-run hooks are given. */
  let phaseHead: { stage: AnyStageDefinition; run: SharedStageRun } | undefined;
  /** What each stage's `aroundSharedRun.after` returned, for the run report. */
  const details = new Map<string, Record<string, unknown>>();
  /** Connections to the `--dedup-redis` instances, for the shared filter's hooks. */
  const dedupConnections = new Map<string, Redis>();
  const dedupInstance = (url: string): Redis => {
    let instance = dedupConnections.get(url);
    if (instance === undefined) {
      instance = new Redis(redisOptions(url, "--dedup-redis"));
      instance.on("error", () => {});
      dedupConnections.set(url, instance);
    }
    return instance;
  };
  const sharedRunOf = (stage: string, plan: readonly PlanEntry[]): SharedStageRun => ({
    storage,
    plan,
    ...(options.config === undefined ? {} : { config: options.config }),
    warn,
    fail: (shard, error) => {
      warn(error);
      recorder.failed(stage, shard, error);
    },
    sharedPairFilter: (settings) =>
      openSharedPairFilter(redis, new RunKeys(prefix, root, runId), settings, dedupInstance),
  });

  const dataOf = (job: WatchedJob): ShardJobData => ({
    root,
    runId,
    stage: job.stage,
    shard: job.shard,
    attempts,
    ...(job.plan === undefined ? {} : { plan: job.plan }),
    ...(options.config === undefined ? {} : { config: options.config }),
  });
  const enqueue = async (jobs: readonly WatchedJob[]) => {
    for (const { name: stage } of pipeline) {
      const ofStage = jobs.filter((job) => job.stage === stage);
      for (let at = 0; at < ofStage.length; at += ENQUEUE_BATCH) {
        await queueOf(stage).addBulk(
          ofStage.slice(at, at + ENQUEUE_BATCH).map((job) => ({
            name: stage,
            data: dataOf(job),
            opts: jobOptions(runId, stage, job.shard, attempts),
          })),
        );
      }
    }
  };
  const watchJob = (job: WatchedJob) => {
    (counts[job.stage] as DistributedStageTotals).jobs++;
    watch.watch(job);
  };
  const watch = await JobWatch.open({
    runId,
    queues,
    connection,
    prefix,
    jobId: (stage, shard) => jobId(runId, stage, shard),
    listener: {
      started: (job) => {
        const key = jobId(runId, job.stage, job.shard);
        if (!batches.has(key)) batches.set(key, progress.startBatch(job.stage, warn).id);
        recorder.started(job.stage, [job.shard]);
      },
      finished: (outcome) => {
        const key = jobId(runId, outcome.stage, outcome.shard);
        const batch = batches.get(key) ?? progress.startBatch(outcome.stage, warn).id;
        batches.delete(key);
        const shardOutcome =
          outcome.error === undefined
            ? { shard: outcome.shard, ok: outcome.ok }
            : { shard: outcome.shard, ok: outcome.ok, error: outcome.error };
        const tally = counts[outcome.stage] as DistributedStageTotals;
        if (outcome.ok) tally.completed++;
        else tally.failed++;
        progress.finishBatch(batch, {
          stage: outcome.stage,
          outcomes: [shardOutcome],
          skipped: (outcome.result?.skipped ?? 0) > 0 ? 1 : 0,
          samples: outcome.result?.samples ?? 0,
          outputs: outcome.result?.successes ?? 0,
          seconds: outcome.result?.seconds ?? 0,
        });
        recorder.finished(outcome.stage, [shardOutcome]);
        logger.info({
          event: `job ${outcome.ok ? "completed" : "failed"}`,
          job: key,
          ...(outcome.error === undefined ? {} : { error: outcome.error }),
        });
        if (!outcome.ok) {
          warn(
            `${outcome.stage} shard ${outcome.shard} failed after ${attempts} tries: ${outcome.error}`,
          );
        }
        const next = nextStage(pipeline, outcome.stage);
        if (outcome.ok && next !== undefined) watchJob({ stage: next.name, shard: outcome.shard });
      },
    },
  });

  /** Redis lost the run (restarted without persistence): set it again and queue the jobs again. */
  const checkRunKept = async (): Promise<void> => {
    const current = await redis.get(runKey);
    if (current === runId) return;
    if (current !== null) {
      throw new Error(`another clipcrawl run (${current}) took over ${root} on this queue`);
    }
    requeues++;
    warn(`Redis no longer holds run ${runId} (restarted?): queueing the unfinished jobs again`);
    await redis.set(runKey, runId);
    // The shared state went with the rest: the stage seeds it again, as at the chain's start.
    if (phaseHead !== undefined) await phaseHead.stage.aroundSharedRun?.before(phaseHead.run);
    // Every shard's turn at the dedup filter starts again, so every first-stage job runs again;
    // finished shards complete at once from their done markers.
    const again = new Map<string, WatchedJob>();
    for (const job of [...phaseJobs, ...watch.unfinishedJobs()]) {
      again.set(jobId(runId, job.stage, job.shard), job);
    }
    for (const job of phaseJobs) {
      const key = jobId(runId, job.stage, job.shard);
      if (!watch.isUnfinished(key)) watchJob(job);
    }
    await enqueue([...again.values()]);
  };
  const waitUntilOver = () =>
    watch.untilOver({
      stop: aborted,
      everyMs: pollMs,
      tick: checkRunKept,
      requeue: enqueue,
    });

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
    if (older !== null) {
      const olderKeys = new RunKeys(prefix, root, older);
      await deleteRunKeys(redis, olderKeys);
      // Its filter's parts on the dedup instances this run names (the older run's are not known).
      for (const url of config.extract.dedupRedis) {
        const instance = new Redis(redisOptions(url, "--dedup-redis"));
        instance.on("error", () => {});
        await deleteRunKeys(instance, olderKeys).finally(() => instance.disconnect());
      }
    }

    for (const error of inputs.errors) {
      warn(error);
      recorder.failed((pipeline[0] as AnyStageDefinition).name, "inputs", error);
    }
    for (const [index, chain] of stageChains(pipeline).entries()) {
      if (aborted()) break;
      // With no inputs the chain that takes them has nothing to do: the others read the root.
      const takesInputs = (chain.stages[0] as AnyStageDefinition).expandInputs !== undefined;
      if (index === 0 && takesInputs && inputs.expanded.length === 0) continue;
      const head = chain.stages[0] as AnyStageDefinition;
      if (index > 0 && chain.link === "all shards done") {
        const before = pipeline[pipeline.indexOf(head) - 1] as AnyStageDefinition;
        const ofBefore = counts[before.name] as DistributedStageTotals;
        if (ofBefore.completed !== ofBefore.jobs) break;
      }
      // The chain's plan is made once, here: each job carries its own shard's entry.
      const planned =
        (await head.plan?.({
          storage,
          inputs: inputs.expanded,
          cwd,
          ...(options.config === undefined ? {} : { config: options.config }),
        })) ?? [];
      for (const stage of chain.stages) recorder.setShards(stage.name, planned.length);
      const jobs =
        head.planJobs === undefined
          ? planned
          : await head.planJobs(
              { storage, ...(options.config === undefined ? {} : { config: options.config }) },
              planned,
            );
      phaseJobs = jobs.map((entry) => ({ stage: head.name, shard: entry.shard, plan: entry.plan }));
      for (const stage of chain.stages) progress.setTotal(stage.name, phaseJobs.length);
      phaseHead = { stage: head, run: sharedRunOf(head.name, jobs) };
      await head.aroundSharedRun?.before(phaseHead.run);
      for (const job of phaseJobs) watchJob(job);
      await enqueue(phaseJobs);
      await waitUntilOver();
      // Stopped early, jobs may still be running: the shared state is not final.
      if (head.aroundSharedRun !== undefined && !aborted()) {
        try {
          details.set(head.name, await head.aroundSharedRun.after(phaseHead.run));
        } catch (error) {
          warn(`${head.name}: the run's shared state could not be kept: ${errorMessage(error)}`);
        }
      }
      phaseHead = undefined;
    }
  } catch (error) {
    logger.error({ event: "run failed", error: errorMessage(error) });
    await recorder.close("failed");
    await watch.close();
    await closeAll(queues, redis, dedupConnections.values());
    await runLog?.close();
    throw error;
  }

  const interrupted = aborted();
  const stages = counts;
  const last = stages[(pipeline.at(-1) as AnyStageDefinition).name];
  const finishedAll = last !== undefined && last.jobs > 0 && last.completed === last.jobs;
  const failed = [...recorder.current.failed];
  const ok = !interrupted && finishedAll && failed.length === 0;
  if (ok) await recordDatasetVersion(storage, "run --queue", warn);
  await recorder.close(interrupted ? "interrupted" : ok ? "finished" : "failed");
  await watch.close();
  await closeAll(queues, redis, dedupConnections.values());
  await recordRunReport(
    storage,
    "run --queue",
    startedAt,
    ok,
    perStage(pipeline, ({ name }) => {
      const totals = stages[name] as DistributedStageTotals;
      return stageRunFromTotals({
        shards: totals.jobs,
        done: totals.completed,
        failed: totals.failed,
        seconds: (performance.now() - started) / 1000,
        errors: failed
          .filter((item) => item.stage === name)
          .map((item) => `${item.shard}: ${item.error}`),
        details: details.get(name),
      });
    }),
    warn,
    pipeline,
  );
  logger.info({ event: "distributed run finished", ok, interrupted, requeues });
  await runLog?.close();
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

async function closeAll(
  queues: Map<string, Queue>,
  redis: Redis,
  dedup: Iterable<Redis>,
): Promise<void> {
  await Promise.all([...queues.values()].map((queue) => queue.close()));
  redis.disconnect();
  for (const instance of dedup) instance.disconnect();
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
