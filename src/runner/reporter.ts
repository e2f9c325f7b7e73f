/**
 * How a stage talks to whoever runs it: one-line warnings (a bad input, a damaged record) and
 * progress counters. The CLI renders them as a progress bar and stderr lines; the library's
 * callers and tests collect them.
 */
export interface StageProgress {
  stage: string;
  shardsDone: number;
  shardsTotal: number;
  /** Running totals shown next to the bar, e.g. records, pairs kept. */
  counters: Record<string, number>;
  /** Values shown as they are after the counters, e.g. `{ success: "93.1%" }`. */
  notes?: Record<string, string>;
}

export interface StageReporter {
  warn(line: string): void;
  progress(update: StageProgress): void;
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
