/**
 * `clipcrawl run`: the whole pipeline on this machine, resumable.
 *
 * The stages come from the pipeline registry, cut into chains (src/pipeline/pipeline.ts): a
 * chain starts with a stage that plans its own shards once the chain before it is over, and
 * goes on through the stages that take its shards one by one. Within a chain the shards flow
 * through lanes at once: the first stage runs as one call over every shard (several shards at a
 * time where the stage allows), and each later stage takes, in one call, every shard ready for
 * it (one model load for all of them), so shard N+1 downloads while shard N is embedded and N-1
 * filtered.
 *
 * Nothing here writes a dataset file: every shard goes through its stage function, whose atomic
 * writes and done markers make a re-run after a crash (or `kill -9`) redo only unfinished shards
 * and produce the same bytes. Aborting (Ctrl-C) stops starting calls and waits for the running
 * ones.
 */
import { loadConfig } from "../config/config-file.js";
import { startOrOpenRoot } from "../config/dataset-root.js";
import { errorMessage } from "../errors.js";
import { openRoot } from "../io/open-root.js";
import type { DatasetStorage } from "../io/storage.js";
import {
  type PerStage,
  PIPELINE,
  perStage,
  type StageChain,
  type Stages,
  stageChains,
} from "../pipeline/pipeline.js";
import { recordRunReport, stageRunFromTotals } from "../pipeline/run-report.js";
import type { ShardEvent, StageReporter } from "../shard/reporter.js";
import type { AnyStageDefinition, ConfigSections } from "../shard/stage-definition.js";
import {
  type PipelineObserver,
  PipelineProgress,
  type StageSnapshot,
} from "./pipeline-progress.js";
import { expandInputs } from "./run-inputs.js";
import { openRunLog, type RunLog, type RunLogger } from "./run-log.js";
import { type FailedRunShard, RunStateRecorder } from "./run-state.js";
import { recordDatasetVersion } from "./run-version.js";
import { callStage, type StageCallResult } from "./stage-call.js";

export interface RunOptions {
  /** The dataset root: a directory path, or a LocalStorage. */
  root: string | DatasetStorage;
  /**
   * WAT files, globs, URLs or listings, as extract takes them. None: the inputs of the root's
   * previous run, or, when there was none, the candidate shards already in the root.
   */
  inputs?: readonly string[];
  crawl?: string | undefined;
  limit?: number | undefined;
  /**
   * Shards of a chain's first stage run at once (download's); 0 or unset: what the stage's
   * config says (download.workers; 0 there: one a core).
   */
  workers?: number;
  /** Values that override the root's clipcrawl.json for every stage of this run. */
  config?: ConfigSections;
  observer?: PipelineObserver;
  /** Stops starting new calls; the running ones finish. */
  signal?: AbortSignal;
  /** Default: `<root>/_logs/run.log`. */
  logger?: RunLogger;
  cwd?: string;
  /** The stages to run (default: the pipeline registry's). */
  stages?: Stages;
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
  stages: PerStage<StageTotals>;
  failed: FailedRunShard[];
  seconds: number;
}

export async function runPipeline(options: RunOptions): Promise<RunSummary> {
  const started = performance.now();
  const startedAt = new Date();
  const stages = options.stages ?? PIPELINE;
  const storage = openRoot(options.root);
  const cwd = options.cwd ?? process.cwd();
  await startOrOpenRoot(
    storage,
    (options.inputs ?? []).length > 0 || options.crawl !== undefined,
    "give WAT files to run on a new root",
  );
  const config = await loadConfig(storage, options.config);
  for (const stage of stages) stage.checkConfig?.(config);
  const opened = options.logger === undefined ? await openRunLog(storage, "run") : undefined;
  const logger = options.logger ?? (opened as RunLog).logger;
  const observer = options.observer ?? { update: () => {}, warn: () => {} };
  const warn = (line: string) => {
    logger.warn({ event: "warning" }, line);
    observer.warn(line);
  };

  const inputs = await expandInputs(stages, { ...options, cwd }, storage, config);
  const recorder = new RunStateRecorder(storage, {
    mode: "local",
    inputs: inputs.expanded,
    queue: null,
  });
  await recorder.flush();
  const progress = new PipelineProgress(stages, observer);
  const aborted = () => options.signal?.aborted === true;
  logger.info({ event: "run started", root: storage.root, inputs: inputs.expanded.length });
  const context: LaneContext = {
    storage,
    progress,
    recorder,
    logger,
    warn,
    signal: options.signal,
    inputs: inputs.expanded,
    cwd,
    config: options.config,
  };

  try {
    for (const error of inputs.errors) {
      warn(error);
      recorder.failed((stages[0] as AnyStageDefinition).name, "inputs", error);
    }
    for (const [index, chain] of stageChains(stages).entries()) {
      if (aborted()) break;
      // With no inputs the chain that takes them has nothing to do: the others read the root.
      const takesInputs = (chain.stages[0] as AnyStageDefinition).expandInputs !== undefined;
      if (index === 0 && takesInputs && inputs.expanded.length === 0) continue;
      if (index > 0 && !chainMayStart(chain, progress.snapshot(), stages)) break;
      await runChain(chain, context, options.workers);
    }
  } catch (error) {
    logger.error({ event: "run failed", error: errorMessage(error) });
    await recorder.close("failed");
    await opened?.close();
    throw error;
  }

  const snapshots = new Map(progress.snapshot().map((item) => [item.stage, item]));
  const interrupted = aborted();
  const failed = recorder.current.failed;
  const last = snapshots.get((stages.at(-1) as AnyStageDefinition).name);
  const complete =
    last !== undefined &&
    last.shardsTotal !== null &&
    last.shardsDone === last.shardsTotal &&
    failed.length === 0;
  if (complete && !interrupted) await recordDatasetVersion(storage, "run", warn);
  await recorder.close(interrupted ? "interrupted" : complete ? "finished" : "failed");
  const summary: RunSummary = {
    ok: complete && !interrupted,
    interrupted,
    root: storage.root,
    logPath: opened?.logPath ?? null,
    stages: perStage(stages, (stage) => {
      const item = snapshots.get(stage.name) as StageSnapshot;
      return {
        shards: item.shardsTotal,
        done: item.shardsDone,
        failed: item.shardsFailed,
        samples: item.samples,
        successes: item.successes,
        seconds: item.seconds,
      };
    }),
    failed: [...failed],
    seconds: (performance.now() - started) / 1000,
  };
  await recordRunReport(
    storage,
    "run",
    startedAt,
    summary.ok,
    perStage(stages, (stage) =>
      stageRunFromTotals({
        ...(summary.stages[stage.name] as StageTotals),
        errors: failed
          .filter((item) => item.stage === stage.name)
          .map((item) => `${item.shard}: ${item.error}`),
      }),
    ),
    warn,
    stages,
  );
  logger.info({ event: "run finished", ok: summary.ok, interrupted, seconds: summary.seconds });
  await opened?.close();
  return summary;
}

/**
 * Whether a chain after the first may start: an `all shards done` chain only once every shard
 * of the stage before it is done; an `all shards` one once that stage is over, whatever failed.
 */
function chainMayStart(
  chain: StageChain,
  snapshot: readonly StageSnapshot[],
  stages: Stages,
): boolean {
  if (chain.link !== "all shards done") return true;
  const first = chain.stages[0] as AnyStageDefinition;
  const before = stages[stages.indexOf(first) - 1];
  const previous = snapshot.find((item) => item.stage === before?.name);
  return (
    previous !== undefined &&
    previous.shardsTotal !== null &&
    previous.shardsDone === previous.shardsTotal
  );
}

async function runChain(
  chain: StageChain,
  context: LaneContext,
  workers: number | undefined,
): Promise<void> {
  const [head] = chain.stages as [AnyStageDefinition, ...AnyStageDefinition[]];
  const shards = (
    (await head.plan?.({
      storage: context.storage,
      inputs: context.inputs,
      cwd: context.cwd,
      ...(context.config === undefined ? {} : { config: context.config }),
    })) ?? []
  ).map((entry) => entry.shard);
  for (const stage of chain.stages) {
    context.recorder.setShards(stage.name, shards.length);
    context.progress.setTotal(stage.name, shards.length);
  }
  if (shards.length === 0) return;
  const parallel =
    head.parallelism === undefined
      ? undefined
      : Math.max(1, Math.min(shards.length, workers || (await head.parallelism(context.storage))));
  await new ShardLanes(context, chain.stages, parallel).run(shards);
}

interface LaneContext {
  storage: DatasetStorage;
  progress: PipelineProgress;
  recorder: RunStateRecorder;
  logger: RunLogger;
  warn: (line: string) => void;
  signal?: AbortSignal | undefined;
  inputs: readonly string[];
  cwd: string;
  config: ConfigSections | undefined;
}

/**
 * Runs one call of a stage on `shards`, `parallel` at once; `onShard` hears each shard as it is
 * over (before the call returns, for stages that report their shards).
 */
async function runStageCall(
  stage: AnyStageDefinition,
  shards: readonly string[],
  context: LaneContext,
  options: { parallel?: number | undefined; onShard?: (event: ShardEvent) => void } = {},
): Promise<StageCallResult> {
  const { progress, recorder, logger, warn } = context;
  const running = options.parallel ?? 1;
  const batch = progress.startBatch(stage.name, warn, shards.length, running);
  const pending = [...shards];
  recorder.setRunning(stage.name, pending.slice(0, running));
  logger.info({ event: "batch started", stage: stage.name, shards });
  const reporter: StageReporter = {
    ...batch.reporter,
    shardFinished: (event) => {
      batch.reporter.shardFinished?.(event);
      const at = pending.indexOf(event.shard);
      if (at >= 0) pending.splice(at, 1);
      recorder.setRunning(stage.name, pending.slice(0, running));
      const ok = event.outcome !== "failed";
      recorder.finished(stage.name, [
        ok
          ? { shard: event.shard, ok }
          : { shard: event.shard, ok, error: event.error ?? "failed" },
      ]);
      logger.info({
        event: `shard ${event.outcome}`,
        stage: stage.name,
        shard: event.shard,
        ...event.counts,
      });
      options.onShard?.(event);
    },
  };
  const result = await callStage(stage, {
    storage: context.storage,
    shards,
    reporter,
    inputs: context.inputs,
    cwd: context.cwd,
    ...(context.config === undefined ? {} : { config: context.config }),
    ...(options.parallel === undefined ? {} : { parallel: options.parallel }),
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
  recorder.finished(stage.name, unreported);
  recorder.setRunning(stage.name, []);
  for (const outcome of unreported) {
    if (!outcome.ok) warn(`${stage.name} shard ${outcome.shard} failed: ${outcome.error}`);
    options.onShard?.({
      stage: stage.name,
      shard: outcome.shard,
      outcome: outcome.ok ? "written" : "failed",
      ...(outcome.error === undefined ? {} : { error: outcome.error }),
    });
  }
  logger.info({
    event: "batch finished",
    stage: stage.name,
    shards,
    failed: result.outcomes.filter((outcome) => !outcome.ok),
    skipped: result.skipped,
    samples: result.samples,
    outputs: result.outputs,
    seconds: result.seconds,
  });
  return result;
}

/**
 * A chain's stages, overlapping across shards: one call of the first stage over every shard
 * (`parallel` at a time); each shard it finishes is ready for the next stage, and so on. Every
 * later stage takes every shard ready for it in one call.
 */
class ShardLanes {
  private readonly ready: string[][];
  private readonly wakers: ((() => void) | undefined)[];
  private readonly over: boolean[];

  constructor(
    private readonly context: LaneContext,
    private readonly stages: readonly AnyStageDefinition[],
    private readonly parallel: number | undefined,
  ) {
    this.ready = stages.map(() => []);
    this.wakers = stages.map(() => undefined);
    this.over = stages.map(() => false);
  }

  async run(shards: readonly string[]): Promise<void> {
    const head = runStageCall(this.stages[0] as AnyStageDefinition, shards, this.context, {
      parallel: this.parallel,
      onShard: (event) => this.pass(1, event),
    }).finally(() => this.finish(0));
    const followers = this.stages.slice(1).map((_, index) => this.consume(index + 1));
    await Promise.all([head, ...followers]);
  }

  /** Runs every shard ready for stage `at` in one call, until the stage before it is over. */
  private async consume(at: number): Promise<void> {
    try {
      for (;;) {
        if (this.aborted()) return;
        const batch = (this.ready[at] as string[]).splice(0).sort();
        if (batch.length > 0) {
          await runStageCall(this.stages[at] as AnyStageDefinition, batch, this.context, {
            onShard: (event) => this.pass(at + 1, event),
          });
          continue;
        }
        if (this.over[at - 1]) return;
        await new Promise<void>((resolve) => {
          this.wakers[at] = resolve;
        });
      }
    } finally {
      this.finish(at);
    }
  }

  private pass(next: number, event: ShardEvent): void {
    if (next >= this.stages.length || event.outcome === "failed" || this.aborted()) return;
    (this.ready[next] as string[]).push(event.shard);
    this.wake(next);
  }

  private finish(at: number): void {
    this.over[at] = true;
    this.wake(at + 1);
  }

  private wake(at: number): void {
    const waker = this.wakers[at];
    this.wakers[at] = undefined;
    waker?.();
  }

  private aborted(): boolean {
    return this.context.signal?.aborted === true;
  }
}
