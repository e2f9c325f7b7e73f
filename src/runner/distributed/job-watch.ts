/**
 * The coordinator's view of a run's jobs, kept from BullMQ's queue events (QueueEvents, a Redis
 * stream a queue) rather than by reading every job's state: the cost of following a job is one
 * event of each kind, however many jobs the run has, and only unfinished jobs are held in
 * memory (finished ones are counted, not kept).
 *
 * Events can be missed: a Redis that restarted lost its streams, and a job's events may arrive
 * before the coordinator knows the job (a worker queues a shard's next-stage job itself). So
 * events of a job not known yet are kept until it is (for a minute: events of a job that is over
 * — its end read by `reconcile` before they came, or queued again after a Redis loss — would
 * otherwise stay for the rest of the run), and when no event has come for a while, the states of
 * the unfinished jobs are read, a batch at a time (`reconcile`).
 */

import type { RedisOptions } from "bullmq";
import { type Job, type Queue, QueueEvents } from "bullmq";
import type { ShardJobResult } from "./shard-worker.js";

export interface WatchedJob {
  stage: string;
  shard: string;
  /** The shard's plan entry, carried in its job (see StageCall.shardPlans). */
  plan?: unknown;
}

export interface JobOutcome extends WatchedJob {
  ok: boolean;
  error?: string;
  result?: ShardJobResult;
  attemptsMade?: number;
}

export interface JobWatchListener {
  started(job: WatchedJob): void;
  finished(outcome: JobOutcome): void;
}

interface Unfinished extends WatchedJob {
  active: boolean;
}

type EarlyEvent =
  | { kind: "active" }
  | { kind: "completed"; result: ShardJobResult | undefined }
  | { kind: "failed"; error: string };

/** Unfinished jobs read per reconcile pass. */
const RECONCILE_BATCH = 500;

/** How long events of a job not watched are kept (its state is read if it is watched later). */
const EARLY_KEPT_MS = 60_000;

export class JobWatch {
  readonly #unfinished = new Map<string, Unfinished>();
  /** Events of jobs of this run that are not watched yet, by job id, with when the first came. */
  readonly #early = new Map<string, { since: number; events: EarlyEvent[] }>();
  #earlyDropped = performance.now();
  readonly #events: QueueEvents[] = [];
  #lastEvent = performance.now();
  #changed: (() => void) | undefined;

  private constructor(
    private readonly runId: string,
    private readonly queues: ReadonlyMap<string, Queue>,
    private readonly listener: JobWatchListener,
    private readonly idOf: (stage: string, shard: string) => string,
    private readonly earlyKeptMs: number,
  ) {}

  /** Starts following the queues' events (before any job of the run is added). */
  static async open(options: {
    runId: string;
    queues: ReadonlyMap<string, Queue>;
    connection: RedisOptions;
    prefix: string;
    listener: JobWatchListener;
    jobId: (stage: string, shard: string) => string;
    /** How long events of a job not watched are kept (default a minute). */
    earlyKeptMs?: number;
  }): Promise<JobWatch> {
    const watch = new JobWatch(
      options.runId,
      options.queues,
      options.listener,
      options.jobId,
      options.earlyKeptMs ?? EARLY_KEPT_MS,
    );
    for (const queue of options.queues.values()) {
      const events = new QueueEvents(queue.name, {
        connection: options.connection,
        prefix: options.prefix,
      });
      events.on("error", () => {});
      events.on("active", ({ jobId }) => watch.#event(jobId, { kind: "active" }));
      events.on("completed", ({ jobId, returnvalue }) =>
        watch.#event(jobId, { kind: "completed", result: parseResult(returnvalue) }),
      );
      events.on("failed", ({ jobId, failedReason }) =>
        watch.#event(jobId, { kind: "failed", error: failedReason || "failed" }),
      );
      watch.#events.push(events);
    }
    await Promise.all(watch.#events.map((events) => events.waitUntilReady()));
    return watch;
  }

  get unfinished(): number {
    return this.#unfinished.size;
  }

  /** Jobs not watched whose events are kept for when they are. */
  get early(): number {
    return this.#early.size;
  }

  isUnfinished(id: string): boolean {
    return this.#unfinished.has(id);
  }

  /** The unfinished jobs (to queue them again after Redis lost them). */
  unfinishedJobs(): WatchedJob[] {
    return [...this.#unfinished.values()].map(({ stage, shard, plan }) => ({ stage, shard, plan }));
  }

  /** Follows a job (added by the coordinator, or about to be by a worker). */
  watch(job: WatchedJob): void {
    const id = this.idOf(job.stage, job.shard);
    if (this.#unfinished.has(id)) return;
    this.#unfinished.set(id, { ...job, active: false });
    const early = this.#early.get(id);
    this.#early.delete(id);
    for (const event of early?.events ?? []) this.#event(id, event);
  }

  /** Resolves when no job is unfinished, or when `stop()` says so; checks for missed events. */
  async untilOver(options: {
    stop: () => boolean;
    everyMs: number;
    /** Called every `everyMs` (did Redis lose the run?). */
    tick: () => Promise<void>;
    /** Jobs Redis no longer knows, found by a reconcile pass: to be queued again. */
    requeue: (jobs: WatchedJob[]) => Promise<void>;
  }): Promise<void> {
    let lastTick = performance.now();
    while (this.#unfinished.size > 0 && !options.stop()) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.everyMs);
        this.#changed = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#changed = undefined;
      if (performance.now() - lastTick < options.everyMs) continue;
      lastTick = performance.now();
      await options.tick();
      if (performance.now() - this.#lastEvent > options.everyMs * 4) {
        const lost = await this.reconcile();
        if (lost.length > 0) await options.requeue(lost);
      }
    }
  }

  /**
   * Reads the states of (a batch of) the unfinished jobs, for events that never came; a job
   * Redis does not know is returned to be queued again.
   */
  async reconcile(): Promise<WatchedJob[]> {
    const lost: WatchedJob[] = [];
    let read = 0;
    for (const [id, job] of [...this.#unfinished]) {
      if (read++ >= RECONCILE_BATCH) break;
      const queue = this.queues.get(job.stage) as Queue;
      const state = await queue.getJobState(id);
      if (state === "unknown") lost.push(job);
      else if (state === "active") this.#event(id, { kind: "active" });
      else if (state === "completed" || state === "failed") {
        const found: Job | undefined = await queue.getJob(id);
        this.#event(
          id,
          state === "completed"
            ? { kind: "completed", result: found?.returnvalue as ShardJobResult | undefined }
            : { kind: "failed", error: found?.failedReason || "failed" },
        );
      }
    }
    this.#lastEvent = performance.now();
    return lost;
  }

  async close(): Promise<void> {
    await Promise.all(this.#events.map((events) => events.close()));
  }

  #event(id: string, event: EarlyEvent): void {
    this.#lastEvent = performance.now();
    const job = this.#unfinished.get(id);
    if (job === undefined) {
      // Another run's job, or one of ours that is not watched yet (a worker added it).
      if (!id.startsWith(`${this.runId}.`)) return;
      this.#dropStaleEarly();
      const early = this.#early.get(id) ?? { since: performance.now(), events: [] };
      early.events.push(event);
      this.#early.set(id, early);
      return;
    }
    if (!job.active) {
      job.active = true;
      this.listener.started(job);
    }
    if (event.kind === "active") return;
    this.#unfinished.delete(id);
    const { stage, shard, plan } = job;
    this.listener.finished(
      event.kind === "completed"
        ? {
            stage,
            shard,
            plan,
            ok: true,
            ...(event.result === undefined ? {} : { result: event.result }),
          }
        : { stage, shard, plan, ok: false, error: event.error },
    );
    this.#changed?.();
  }

  /** Forgets events of jobs not watched for `earlyKeptMs` (looked at most that often). */
  #dropStaleEarly(): void {
    const now = performance.now();
    if (now - this.#earlyDropped < this.earlyKeptMs) return;
    this.#earlyDropped = now;
    for (const [id, early] of this.#early) {
      if (now - early.since >= this.earlyKeptMs) this.#early.delete(id);
    }
  }
}

function parseResult(value: unknown): ShardJobResult | undefined {
  if (typeof value === "string") {
    try {
      return JSON.parse(value) as ShardJobResult;
    } catch {
      return undefined;
    }
  }
  return value as ShardJobResult | undefined;
}
