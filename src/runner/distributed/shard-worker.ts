/**
 * `clipcrawl worker`: takes shard jobs from the stage queues and runs each through its stage
 * function (its declaration in the pipeline registry, src/pipeline/pipeline.ts), exactly as the
 * local runner does; then adds the shard's job of the stage that takes it shard by shard, so
 * download → embed → filter pipeline across the cluster without waiting for anyone. The job id is the same for the same run, stage and shard, so adding it twice (a retry
 * after a crash between the add and the completion) adds it once.
 *
 * Faults: a worker killed mid-job stops renewing the job's lock; another worker's stalled-job
 * check puts it back in the queue and it runs again elsewhere (done markers and atomic writes
 * make that safe). A shard that fails (a poison input, a stage error) fails its job, with the
 * stage's one-line reason, and is retried up to the job's attempts; the worker goes on. Redis
 * going away pauses everything; ioredis reconnects and the workers carry on.
 */
import { hostname } from "node:os";
import { DelayedError, type Job, Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { errorMessage } from "../../errors.js";
import { shardName } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import type { DatasetStorage } from "../../io/storage.js";
import { nextStage, PIPELINE, type Stages, stageNamed } from "../../pipeline/pipeline.js";
import type { StageReporter } from "../../shard/reporter.js";
import type {
  SharedPairFilter,
  SharedPairFilterSettings,
  StageCall,
} from "../../shard/stage-definition.js";
import { type RunLogger, silentLogger } from "../run-log.js";
import { readRunState } from "../run-state.js";
import { shardOutcomes } from "../stage-call.js";
import {
  jobId,
  type QueueOptions,
  queueName,
  RunKeys,
  redisOptions,
  type ShardJobData,
} from "./queue-names.js";
import { TurnNotComing } from "./redis-pair-filter.js";
import { openSharedPairFilter } from "./sharded-pair-filter.js";

export interface WorkerOptions {
  queue: QueueOptions;
  /** The pipeline the run's jobs belong to (default: the registry's). */
  pipeline?: Stages;
  /** Names of the stages this worker takes jobs of (default: all). */
  stages?: readonly string[];
  /** Jobs of each stage at once (default 1). */
  concurrency?: number;
  /**
   * Seconds a job's lock lasts without renewal (renewed every half of it while the job runs): how
   * soon a killed worker's job is retried elsewhere. Default 30.
   */
  lockSeconds?: number;
  logger?: RunLogger;
  /** Shown in the dashboard and `status` as the job's worker (default host:pid). */
  name?: string;
}

/** What a completed job returns (seen in the dashboard and by the coordinator). */
export interface ShardJobResult {
  samples: number;
  successes: number;
  skipped: number;
  seconds: number;
  superseded?: boolean;
}

export interface RunningWorker {
  readonly name: string;
  /** Stops taking jobs and waits for the running ones (`force`: abandons them; they stall). */
  close(force?: boolean): Promise<void>;
}

export async function startShardWorker(options: WorkerOptions): Promise<RunningWorker> {
  const pipeline = options.pipeline ?? PIPELINE;
  const stages = options.stages ?? pipeline.map((stage) => stage.name);
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const lockDuration = Math.round((options.lockSeconds ?? 30) * 1000);
  const logger = options.logger ?? silentLogger;
  const name = options.name ?? `${hostname()}:${process.pid}`;
  const connection = redisOptions(options.queue.url);
  const { prefix } = options.queue;
  const redis = new Redis(connection);
  redis.on("error", () => {}); // ioredis reconnects by itself; the log gets the workers' errors.
  const queues = new Map(
    pipeline.map(({ name }) => [name, new Queue(queueName(name), { connection, prefix })]),
  );
  for (const queue of queues.values()) queue.on("error", () => {});

  const processJob = async (job: Job<ShardJobData>, token?: string): Promise<ShardJobResult> => {
    const data = job.data;
    const started = performance.now();
    const current = await redis.get(RunKeys.currentRun(prefix, data.root));
    if (current !== null && current !== data.runId) {
      logger.info({ event: "job superseded", job: job.id, current });
      return { samples: 0, successes: 0, skipped: 0, seconds: 0, superseded: true };
    }
    logger.info({
      event: "job started",
      job: job.id,
      stage: data.stage,
      shard: data.shard,
      attempt: job.attemptsMade + 1,
    });
    const storage = openRoot(data.root);
    const reporter: StageReporter = {
      warn: (line) => logger.warn({ event: "warning", job: job.id }, line),
      progress: () => {},
    };
    try {
      const result = await runJob(job, storage, reporter);
      const next = nextStage(pipeline, data.stage)?.name;
      if (next !== undefined) {
        await (queues.get(next) as Queue).add(
          next,
          { ...data, stage: next },
          jobOptions(data.runId, next, data.shard, data.attempts),
        );
      }
      const seconds = (performance.now() - started) / 1000;
      logger.info({ event: "job completed", job: job.id, ...result, seconds });
      return { ...result, seconds };
    } catch (error) {
      if (error instanceof TurnNotComing) {
        // Another shard's turn, and its job waits for a free slot: give this slot up.
        logger.info({ event: "job yields its slot", job: job.id, reason: error.message });
        await job.moveToDelayed(Date.now() + 500, token);
        throw new DelayedError();
      }
      logger.warn({
        event: "job failed",
        job: job.id,
        attempt: job.attemptsMade + 1,
        error: errorMessage(error),
      });
      throw error;
    }
  };

  /** One shard through its stage's function, as the local runner calls it, one shard at a time. */
  const runJob = async (
    job: Job<ShardJobData>,
    storage: DatasetStorage,
    reporter: StageReporter,
  ) => {
    const data = job.data;
    const stage = stageNamed(pipeline, data.stage);
    const call: StageCall & { shards: readonly string[] } = {
      storage,
      shards: [data.shard],
      reporter,
      parallel: 1,
      share: concurrency,
      ...(data.config === undefined ? {} : { config: data.config }),
      ...(data.plan === undefined ? {} : { shardPlans: [data.plan] }),
      sharedPairFilter: (settings) => sharedPairFilter(job, settings),
    };
    if (stage === pipeline[0] && data.plan === undefined) {
      const state = await readRunState(storage);
      if (state === undefined || state.inputs.length === 0) {
        throw new Error(
          `${storage.describe("_state/run.json")} names no inputs: the run that queued this job is gone`,
        );
      }
      call.inputs = state.inputs;
    }
    // A throw fails the job with its reason (and TurnNotComing reaches processJob).
    const summary = await stage.run(call);
    const failed = shardOutcomes(call.shards, summary).find((outcome) => !outcome.ok);
    if (failed !== undefined) {
      throw new Error(failed.error ?? `${data.stage} shard ${data.shard} failed`);
    }
    return { samples: summary.samples, successes: summary.outputs, skipped: summary.shardsSkipped };
  };

  /** Connections to the `--dedup-redis` instances, opened as a run first names them. */
  const dedupRedis = new Map<string, Redis>();
  const dedupInstance = (url: string): Redis => {
    let instance = dedupRedis.get(url);
    if (instance === undefined) {
      instance = new Redis(redisOptions(url, "--dedup-redis"));
      instance.on("error", () => {});
      dedupRedis.set(url, instance);
    }
    return instance;
  };

  /**
   * The run's cross-shard dedup filter in Redis, in the queue's or split over `--dedup-redis`.
   * Where shards take turns in input order, while another shard's job holds the turn, this one
   * waits, passes the turn of a job that is over without taking it, or gives its slot up when
   * the job with the turn waits for one.
   */
  const sharedPairFilter = (
    job: Job<ShardJobData>,
    settings: SharedPairFilterSettings,
  ): SharedPairFilter => {
    const data = job.data;
    const queue = queues.get(data.stage) as Queue;
    const filter = openSharedPairFilter(
      redis,
      new RunKeys(prefix, data.root, data.runId),
      settings,
      dedupInstance,
      {
        whileWaiting: async (cursor: number) => {
          const blocking = jobId(data.runId, data.stage, shardName(cursor));
          const stateOf = await queue.getJobState(blocking);
          if (stateOf === "active") return;
          if (stateOf === "failed" || stateOf === "completed") {
            // That shard's job is over without taking its turn (it died on its last try).
            await filter.passTurn(cursor);
            return;
          }
          throw new TurnNotComing(`shard ${shardName(cursor)} has the turn and is ${stateOf}`);
        },
      },
    );
    return filter;
  };

  const workers = stages.map((stage) => {
    const worker = new Worker<ShardJobData, ShardJobResult>(queueName(stage), processJob, {
      connection,
      prefix,
      concurrency,
      lockDuration,
      stalledInterval: lockDuration,
      maxStalledCount: 2,
      name,
    });
    worker.on("error", (error) =>
      logger.warn({ event: "worker error", stage, error: errorMessage(error) }),
    );
    return worker;
  });
  await Promise.all(workers.map((worker) => worker.waitUntilReady()));
  logger.info({
    event: "worker started",
    name,
    stages,
    concurrency,
    lockSeconds: lockDuration / 1000,
  });

  return {
    name,
    close: async (force = false) => {
      await Promise.all(workers.map((worker) => worker.close(force)));
      await Promise.all([...queues.values()].map((queue) => queue.close()));
      redis.disconnect();
      for (const instance of dedupRedis.values()) instance.disconnect();
      logger.info({ event: "worker stopped", name });
    },
  };
}

/** Options every shard job is added with. */
export function jobOptions(runId: string, stage: string, shard: string, attempts: number) {
  return {
    jobId: jobId(runId, stage, shard),
    attempts,
    backoff: { type: "exponential", delay: 1000 },
    // Failed jobs stay, with their reasons, for `status` and the dashboard; completed ones for a day.
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: false,
  } as const;
}
