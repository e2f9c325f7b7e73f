/**
 * The run report (docs/run-report.md): after `clipcrawl run` (local or distributed) and after each
 * stage command, one JSON file in the root, `_reports/run-<timestamp>.json`, and the same bytes as
 * `_reports/latest.json`, both written atomically. Per stage it holds what the command did (its
 * summary: shards, samples, seconds, samples/s, errors) and the stage's totals over the whole
 * root, summed from the per-shard stats files the stages already write (`*_stats.json`): inputs,
 * outputs, drops by reason, errors by kind. `clipcrawl stats` reads the latest one for the
 * throughput of each stage.
 *
 * Nothing here runs a stage: it is built from what the stages returned and wrote.
 */
import { mergedCounts, readStatsFiles, type StatsFile } from "../formats/dataset-stats.js";
import type { DatasetStorage } from "../io/storage.js";
import type { StageSummary, StatsFileTotals } from "../shard/stage-definition.js";
import { type PerStage, PIPELINE, perStage, type Stages } from "./pipeline.js";

export const RUN_REPORT_VERSION = 1;
export const RUN_REPORTS_FOLDER = "_reports";
export const LATEST_RUN_REPORT = `${RUN_REPORTS_FOLDER}/latest.json`;
/** Errors listed per stage; the rest are counted in `errorsOmitted`. */
const MAX_ERRORS = 50;

/** What one command did in one stage, from its summary. */
export interface StageRun {
  /** Shards (or inputs) the stage had to account for; null when unknown. */
  shards: number | null;
  shardsDone: number;
  shardsSkipped: number;
  shardsFailed: number;
  /** Samples the stage processed in this run (written shards only). */
  samples: number;
  /** Samples it passed on (downloaded, embedded, kept...). */
  outputs: number | null;
  seconds: number;
  samplesPerSecond: number;
  errors: string[];
  errorsOmitted: number;
  /** What the stage tells of the run beyond its counts (extract: `dedupState`, `bloomFilter`). */
  details?: Record<string, unknown>;
}

/** A stage's totals over every shard of the root, from its `*_stats.json` files. */
export interface StageTotals {
  shards: number;
  inputs: number;
  outputs: number;
  drops: Record<string, number>;
  /** Error messages (download's status_dict, embed's) and their counts, largest first. */
  errors: Record<string, number>;
  /** From the first shard's start to the last shard's end, when the files have the times. */
  wallSeconds: number | null;
  /** Sum of the shards' own durations (the work, whatever ran in parallel). */
  busySeconds: number | null;
}

export interface StageReport {
  stage: string;
  run: StageRun | null;
  totals: StageTotals | null;
}

export interface RunReport {
  version: typeof RUN_REPORT_VERSION;
  /** `run`, `run --queue`, or the stage command (`download`, `filter`...). */
  command: string;
  ok: boolean;
  startedAt: string;
  finishedAt: string;
  seconds: number;
  stages: StageReport[];
}

/** What one call of a stage function did, from its summary, as a StageRun. */
export function stageRunFromSummary(
  summary: StageSummary,
  details?: Record<string, unknown>,
): StageRun {
  const failures = summary.failedShards.map(
    (failure) => `${failure.shard || "inputs"}: ${failure.error}`,
  );
  return {
    shards: summary.shards,
    shardsDone: summary.shardsWritten,
    shardsSkipped: summary.shardsSkipped,
    shardsFailed: failures.length,
    samples: summary.samples,
    outputs: summary.outputs,
    seconds: summary.seconds,
    samplesPerSecond: perSecond(summary.samples, summary.seconds),
    ...cappedErrors(failures),
    ...(details === undefined ? {} : { details }),
  };
}

/** The local runner's or coordinator's per-stage numbers as a StageRun. */
export function stageRunFromTotals(totals: {
  shards: number | null;
  done: number;
  failed: number;
  samples?: number;
  successes?: number;
  seconds?: number;
  errors: string[];
  details?: Record<string, unknown> | undefined;
}): StageRun {
  const samples = totals.samples ?? 0;
  const seconds = totals.seconds ?? 0;
  return {
    shards: totals.shards,
    shardsDone: totals.done,
    shardsSkipped: 0,
    shardsFailed: totals.failed,
    samples,
    outputs: totals.successes ?? null,
    seconds,
    samplesPerSecond: perSecond(samples, seconds),
    ...cappedErrors(totals.errors),
    ...(totals.details === undefined ? {} : { details: totals.details }),
  };
}

/** Every stage's totals over the root's stats files (null for a stage with none). */
export async function readStageTotals(
  storage: DatasetStorage,
  stages: Stages = PIPELINE,
): Promise<PerStage<StageTotals | null>> {
  const totals = new Map<string, StageTotals | null>();
  for (const stage of stages) {
    const files = stage.statsFiles;
    totals.set(
      stage.name,
      files === undefined ? null : totalsOf(await readStatsFiles(storage, files.folder), files),
    );
  }
  return perStage(stages, (stage) => totals.get(stage.name) ?? null);
}

/** The report of one command: its stages' runs, and the root's totals for every stage. */
export async function buildRunReport(
  storage: DatasetStorage,
  command: string,
  started: Date,
  ok: boolean,
  runs: Partial<Record<string, StageRun>>,
  stages: Stages = PIPELINE,
): Promise<RunReport> {
  const finished = new Date();
  const totals = await readStageTotals(storage, stages);
  return {
    version: RUN_REPORT_VERSION,
    command,
    ok,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    seconds: (finished.getTime() - started.getTime()) / 1000,
    stages: stages.map(({ name }) => ({
      stage: name,
      run: runs[name] ?? null,
      totals: totals[name] ?? null,
    })),
  };
}

/** Writes the report as `_reports/run-<timestamp>.json` and `_reports/latest.json`; returns the first. */
export async function writeRunReport(storage: DatasetStorage, report: RunReport): Promise<string> {
  const text = `${JSON.stringify(report, null, 2)}\n`;
  const stamp = report.finishedAt.replace(/[:.]/g, "-");
  const path = `${RUN_REPORTS_FOLDER}/run-${stamp}.json`;
  // Two copies of the same bytes, neither depending on the other: written side by side.
  await Promise.all([
    storage.writeAtomic(path, text),
    storage.writeAtomic(LATEST_RUN_REPORT, text),
  ]);
  return path;
}

/** Builds and writes the report; a failure to write it is a warning, never the command's failure. */
export async function recordRunReport(
  storage: DatasetStorage,
  command: string,
  started: Date,
  ok: boolean,
  runs: Partial<Record<string, StageRun>>,
  warn: (line: string) => void,
  stages: Stages = PIPELINE,
): Promise<string | null> {
  try {
    return await writeRunReport(
      storage,
      await buildRunReport(storage, command, started, ok, runs, stages),
    );
  } catch (error) {
    warn(`could not write the run report: ${error instanceof Error ? error.message : error}`);
    return null;
  }
}

/** The latest run report of the root, or undefined when there is none (or it is unreadable). */
export async function readLatestRunReport(storage: DatasetStorage): Promise<RunReport | undefined> {
  try {
    const report = JSON.parse(await storage.readText(LATEST_RUN_REPORT)) as RunReport;
    return report.version === RUN_REPORT_VERSION && Array.isArray(report.stages)
      ? report
      : undefined;
  } catch {
    return undefined;
  }
}

function totalsOf(files: readonly StatsFile[], spec: StatsFileTotals): StageTotals | null {
  if (files.length === 0) return null;
  const { inputs, outputs, drops: dropFields, errors: errorFields, seconds } = spec;
  const drops: Record<string, number> = {};
  const add = (name: string, count: number) => {
    if (count > 0) drops[name] = (drops[name] ?? 0) + count;
  };
  for (const file of files) {
    for (const field of dropFields) {
      const value = file[field];
      if (typeof value === "number") add(field, value);
      else if (value !== null && typeof value === "object") {
        for (const [name, count] of Object.entries(value)) {
          if (typeof count === "number") add(name, count);
        }
      }
    }
  }
  const errors = Object.fromEntries(
    errorFields.flatMap((field) => mergedCounts(files, field, (name) => name !== "success")),
  );
  return {
    shards: files.length,
    inputs: sumField(files, inputs),
    outputs: sumField(files, outputs),
    drops,
    errors,
    wallSeconds: wallSeconds(files),
    busySeconds: busySeconds(files, seconds),
  };
}

function sumField(files: readonly StatsFile[], field: string): number {
  return files.reduce((sum, file) => sum + (typeof file[field] === "number" ? file[field] : 0), 0);
}

function wallSeconds(files: readonly StatsFile[]): number | null {
  const starts = files.map((file) => file.start_time).filter(isPositive);
  const ends = files.map((file) => file.end_time).filter(isPositive);
  if (starts.length === 0 || ends.length === 0) return null;
  return Math.max(0, Math.max(...ends) - Math.min(...starts));
}

function busySeconds(files: readonly StatsFile[], field: string): number | null {
  let total = 0;
  let found = false;
  for (const file of files) {
    const value = file[field];
    // embed keeps its per-step timings in an object whose `total` is the shard's.
    const seconds =
      typeof value === "number"
        ? value
        : value !== null && typeof value === "object"
          ? (value as Record<string, unknown>).total
          : undefined;
    if (typeof seconds === "number") {
      total += seconds;
      found = true;
    }
  }
  return found ? total : null;
}

function isPositive(value: unknown): value is number {
  return typeof value === "number" && value > 0;
}

function perSecond(count: number, seconds: number): number {
  return seconds > 0 ? count / seconds : 0;
}

function cappedErrors(errors: readonly string[]): { errors: string[]; errorsOmitted: number } {
  return {
    errors: errors.slice(0, MAX_ERRORS),
    errorsOmitted: Math.max(0, errors.length - MAX_ERRORS),
  };
}
