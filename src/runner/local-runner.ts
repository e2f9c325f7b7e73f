/**
 * `clipcrawl run`: the whole pipeline on this machine, resumable.
 *
 * extract runs first over every input (its own worker pool; see pipeline-stages.ts for why it is
 * a phase of its own). Then the image shards flow through three lanes at once: several download
 * lanes, one shard per call, and one embed and one filter lane that each take every shard ready
 * for them in one call (one model load for all of them), so shard N+1 downloads while shard N is
 * embedded and N-1 filtered. index runs last, once every shard is filtered.
 *
 * Nothing here writes a dataset file: every shard goes through its stage function, whose atomic
 * writes and done markers make a re-run after a crash (or `kill -9`) redo only unfinished shards
 * and produce the same bytes. Aborting (Ctrl-C) stops starting batches and waits for the running
 * ones.
 */
import { loadConfig } from "../config/config-file.js";
import { openRoot } from "../config/dataset-root.js";
import { ConfigError, errorMessage } from "../errors.js";
import { LocalStorage } from "../io/local-storage.js";
import {
  type PipelineStage,
  plannedImageShards,
  runShardBatch,
  type ShardStage,
  type StageBatchResult,
  WHOLE_DATASET,
} from "../pipeline/pipeline-stages.js";
import { recordRunReport, stageRunFromTotals } from "../pipeline/run-report.js";
import type { ShardEvent, StageReporter } from "../shard/reporter.js";
import { defaultParallelism } from "../shard/worker-pool.js";
import { extract } from "../stages/extract/extract.js";
import {
  type PipelineObserver,
  PipelineProgress,
  type StageSnapshot,
} from "./pipeline-progress.js";
import { expandInputs } from "./run-inputs.js";
import { openRunLog, type RunLogger } from "./run-log.js";
import { type FailedRunShard, RunStateRecorder } from "./run-state.js";

export interface RunOptions {
  /** The dataset root: a directory path, or a LocalStorage. */
  root: string | LocalStorage;
  /**
   * WAT files, globs, URLs or listings, as extract takes them. None: the inputs of the root's
   * previous run, or, when there was none, the candidate shards already in the root.
   */
  inputs?: readonly string[];
  crawl?: string | undefined;
  limit?: number | undefined;
  /** Download shards at once; 0 or unset: download.workers of the config (0 there: one a core). */
  workers?: number;
  observer?: PipelineObserver;
  /** Stops starting new batches; the running ones finish. */
  signal?: AbortSignal;
  /** Default: `<root>/_logs/run.log`. */
  logger?: RunLogger;
  cwd?: string;
}

export interface StageTotals {
  shards: number | null;
  done: number;
  failed: number;
  samples: number;
  successes: number;
  seconds: number;
}

export interface RunSummary {
  /** True when every shard of every stage is done. */
  ok: boolean;
  /** True when the run was stopped before the end. */
  interrupted: boolean;
  root: string;
  logPath: string | null;
  stages: Record<PipelineStage, StageTotals>;
  failed: FailedRunShard[];
  seconds: number;
}

export async function runPipeline(options: RunOptions): Promise<RunSummary> {
  const started = performance.now();
  const startedAt = new Date();
  const storage = typeof options.root === "string" ? new LocalStorage(options.root) : options.root;
  const cwd = options.cwd ?? process.cwd();
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
  const opened = options.logger === undefined ? await openRunLog(storage, "run") : undefined;
  const logger = options.logger ?? (opened as { logger: RunLogger }).logger;
  const observer = options.observer ?? { update: () => {}, warn: () => {} };
  const warn = (line: string) => {
    logger.warn({ event: "warning" }, line);
    observer.warn(line);
  };

  const inputs = await expandInputs(options, storage, config.extract, cwd);
  const recorder = new RunStateRecorder(storage, {
    mode: "local",
    inputs: inputs.expanded,
    queue: null,
  });
  await recorder.flush();
  const progress = new PipelineProgress(observer);
  const aborted = () => options.signal?.aborted === true;
  logger.info({ event: "run started", root: storage.root, inputs: inputs.expanded.length });

  try {
    // extract: one call over every input, on its own pool.
    if (inputs.expanded.length > 0 || inputs.errors.length > 0) {
      for (const error of inputs.errors) {
        warn(error);
        recorder.failed("extract", "inputs", error);
      }
      if (inputs.expanded.length > 0 && !aborted()) {
        recorder.setShards("extract", inputs.expanded.length);
        recorder.started("extract", [WHOLE_DATASET]);
        const summary = await extract({
          root: storage,
          inputs: inputs.expanded,
          reporter: progress.extractReporter(warn),
          cwd,
        });
        progress.extractFinished(summary.failedInputs.length);
        recorder.finished("extract", [{ shard: WHOLE_DATASET, ok: true }]);
        for (const failed of summary.failedInputs) {
          recorder.failed("extract", failed.input, failed.error);
        }
        logger.info({
          event: "stage finished",
          stage: "extract",
          shards: summary.shards,
          written: summary.shardsWritten,
          skipped: summary.shardsSkipped,
          failed: summary.failedInputs,
          pairs: summary.totals.kept,
          seconds: summary.seconds,
        });
      }
    }

    if (!aborted()) {
      const shards = await plannedImageShards(storage);
      for (const stage of ["download", "embed", "filter"] as const) {
        recorder.setShards(stage, shards.length);
        progress.setTotal(stage, shards.length);
      }
      const lanes = Math.max(
        1,
        Math.min(shards.length, defaultParallelism(options.workers || config.download.workers)),
      );
      const context = { storage, progress, recorder, logger, warn, signal: options.signal };
      await new ShardLanes(context, lanes, aborted).run(shards);
    }

    const snapshot = progress.snapshot();
    const filtered = byStage(snapshot).filter;
    if (
      !aborted() &&
      filtered.shardsTotal !== null &&
      filtered.shardsDone === filtered.shardsTotal
    ) {
      // The index stage marks each dataset shard it holds.
      recorder.setShards("index", filtered.shardsTotal);
      progress.setTotal("index", 1);
      await runBatch("index", [WHOLE_DATASET], { storage, progress, recorder, logger, warn });
    }
  } catch (error) {
    logger.error({ event: "run failed", error: errorMessage(error) });
    await recorder.close("failed");
    throw error;
  }

  const stages = byStage(progress.snapshot());
  const interrupted = aborted();
  const failed = recorder.current.failed;
  const complete = stages.index.shardsDone === 1 && failed.length === 0;
  await recorder.close(interrupted ? "interrupted" : complete ? "finished" : "failed");
  const summary: RunSummary = {
    ok: complete && !interrupted,
    interrupted,
    root: storage.root,
    logPath: opened?.logPath ?? null,
    stages: Object.fromEntries(
      Object.entries(stages).map(([stage, item]) => [
        stage,
        {
          shards: item.shardsTotal,
          done: item.shardsDone,
          failed: item.shardsFailed,
          samples: item.samples,
          successes: item.successes,
          seconds: item.seconds,
        },
      ]),
    ) as Record<PipelineStage, StageTotals>,
    failed: [...failed],
    seconds: (performance.now() - started) / 1000,
  };
  await recordRunReport(
    storage,
    "run",
    startedAt,
    summary.ok,
    Object.fromEntries(
      Object.entries(summary.stages).map(([stage, totals]) => [
        stage,
        stageRunFromTotals({
          ...totals,
          errors: failed
            .filter((item) => item.stage === stage)
            .map((item) => `${item.shard}: ${item.error}`),
        }),
      ]),
    ),
    warn,
  );
  logger.info({ event: "run finished", ok: summary.ok, interrupted, seconds: summary.seconds });
  return summary;
}

interface BatchContext {
  storage: LocalStorage;
  progress: PipelineProgress;
  recorder: RunStateRecorder;
  logger: RunLogger;
  warn: (line: string) => void;
  signal?: AbortSignal | undefined;
}

/**
 * Runs one call of a stage on `shards`, `parallel` at once; `onShard` hears each shard as it is
 * over (before the call returns, for stages that report their shards).
 */
async function runBatch(
  stage: ShardStage | "index",
  shards: readonly string[],
  context: BatchContext,
  options: { parallel?: number; onShard?: (event: ShardEvent) => void } = {},
): Promise<StageBatchResult> {
  const { progress, recorder, logger, warn } = context;
  const parallel = options.parallel ?? 1;
  const batch = progress.startBatch(stage, warn, shards.length, parallel);
  const pending = [...shards];
  recorder.setRunning(stage, pending.slice(0, parallel));
  logger.info({ event: "batch started", stage, shards });
  const reporter: StageReporter = {
    ...batch.reporter,
    shardFinished: (event) => {
      batch.reporter.shardFinished?.(event);
      const at = pending.indexOf(event.shard);
      if (at >= 0) pending.splice(at, 1);
      recorder.setRunning(stage, pending.slice(0, parallel));
      const ok = event.outcome !== "failed";
      recorder.finished(stage, [
        ok
          ? { shard: event.shard, ok }
          : { shard: event.shard, ok, error: event.error ?? "failed" },
      ]);
      logger.info({ event: `shard ${event.outcome}`, stage, shard: event.shard, ...event.counts });
      options.onShard?.(event);
    },
  };
  const result = await runShardBatch(stage, {
    storage: context.storage,
    shards,
    reporter,
    downloadWorkers: parallel,
    ...(context.signal === undefined ? {} : { signal: context.signal }),
  });
  // Shards the stage said nothing about: it threw before them (count them by the result), or the
  // run was stopped before they started (they are not done, nor failed).
  const stopped = context.signal?.aborted === true;
  const unreported = stopped
    ? []
    : result.outcomes.filter((outcome) => pending.includes(outcome.shard));
  progress.finishBatch(batch.id, {
    ...result,
    outcomes: result.outcomes.filter(
      (outcome) => !pending.includes(outcome.shard) || unreported.includes(outcome),
    ),
  });
  recorder.finished(stage, unreported);
  recorder.setRunning(stage, []);
  for (const outcome of unreported) {
    if (!outcome.ok) warn(`${stage} shard ${outcome.shard} failed: ${outcome.error}`);
    options.onShard?.({
      stage,
      shard: outcome.shard,
      outcome: outcome.ok ? "written" : "failed",
      ...(outcome.error === undefined ? {} : { error: outcome.error }),
    });
  }
  logger.info({
    event: "batch finished",
    stage,
    shards,
    failed: result.outcomes.filter((outcome) => !outcome.ok),
    skipped: result.skipped,
    samples: result.samples,
    successes: result.successes,
    seconds: result.seconds,
  });
  return result;
}

/**
 * download → embed → filter, overlapping across shards: one download call over every shard on
 * `lanes` threads; each shard it finishes is ready for embed, each shard embed finishes ready for
 * filter. embed and filter take every shard ready for them in one call.
 */
class ShardLanes {
  private readonly ready: Record<"embed" | "filter", string[]> = { embed: [], filter: [] };
  private readonly wakers: Record<"embed" | "filter", (() => void) | undefined> = {
    embed: undefined,
    filter: undefined,
  };
  private readonly over: Record<"download" | "embed", boolean> = { download: false, embed: false };

  constructor(
    private readonly context: BatchContext,
    private readonly lanes: number,
    private readonly aborted: () => boolean,
  ) {}

  async run(shards: readonly string[]): Promise<void> {
    const downloads = runBatch("download", shards, this.context, {
      parallel: this.lanes,
      onShard: (event) => this.pass("embed", event),
    }).finally(() => {
      this.over.download = true;
      this.wake("embed");
    });
    const embeds = this.consume("embed", () => this.over.download).finally(() => {
      this.over.embed = true;
      this.wake("filter");
    });
    const filters = this.consume("filter", () => this.over.embed);
    await Promise.all([downloads, embeds, filters]);
  }

  /** Runs every shard ready for `stage` in one call, until the stage before it is over. */
  private async consume(stage: "embed" | "filter", upstreamOver: () => boolean): Promise<void> {
    for (;;) {
      if (this.aborted()) return;
      const batch = this.ready[stage].splice(0).sort();
      if (batch.length > 0) {
        await runBatch(stage, batch, this.context, {
          onShard: (event) => {
            if (stage === "embed") this.pass("filter", event);
          },
        });
        continue;
      }
      if (upstreamOver()) return;
      await new Promise<void>((resolve) => {
        this.wakers[stage] = resolve;
      });
    }
  }

  private pass(next: "embed" | "filter", event: ShardEvent): void {
    if (event.outcome === "failed" || this.aborted()) return;
    this.ready[next].push(event.shard);
    this.wake(next);
  }

  private wake(stage: "embed" | "filter"): void {
    const waker = this.wakers[stage];
    this.wakers[stage] = undefined;
    waker?.();
  }
}

function byStage(snapshot: readonly StageSnapshot[]): Record<PipelineStage, StageSnapshot> {
  return Object.fromEntries(snapshot.map((item) => [item.stage, item])) as Record<
    PipelineStage,
    StageSnapshot
  >;
}
