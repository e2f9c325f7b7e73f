/**
 * How a stage talks to whoever runs it: one-line warnings (a bad input, a damaged record) and
 * progress counters. The CLI renders them as a progress bar and stderr lines; the library's
 * callers and tests collect them.
 */
export interface StageProgress {
  stage: string;
  shardsDone: number;
  shardsTotal: number;
  /** Samples a pipeline stage has processed so far in this call, as its summary's `samples` counts them. */
  samples?: number;
  /** Running totals shown next to the bar, e.g. records, pairs kept. */
  counters: Record<string, number>;
  /** Values shown as they are after the counters, e.g. `{ success: "93.1%" }`. */
  notes?: Record<string, string>;
}

/** One shard of a stage is over: written (with its done marker's counts), skipped as done, or failed. */
export interface ShardEvent {
  stage: string;
  shard: string;
  outcome: "written" | "skipped" | "failed";
  /** Samples the shard processed and passed on (written shards), as the stage's summary counts them. */
  samples?: number;
  outputs?: number;
  /** The counts of the shard's done marker (written shards). */
  counts?: Record<string, number>;
  /** Why it failed (failed shards). */
  error?: string;
}

export interface StageReporter {
  warn(line: string): void;
  progress(update: StageProgress): void;
  /** Each shard as it is over, so a runner can hand it to the next stage at once. */
  shardFinished?(event: ShardEvent): void;
}

export const silentReporter: StageReporter = {
  warn: () => {},
  progress: () => {},
};

/** Collects warnings in memory; for tests and `--json` summaries. */
export function collectingReporter(): StageReporter & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (line) => warnings.push(line), progress: () => {} };
}
