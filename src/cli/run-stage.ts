/** What every stage command does around its stage: progress, the summary, the exit code. */
import type { StageReporter } from "../runner/reporter.js";
import { terminalReporter } from "./terminal-reporter.js";

/**
 * Runs a stage with a terminal reporter, prints its summary (JSON with `--json`, else the
 * human description) and sets exit code 1 when the summary says not every input was processed.
 */
export async function runStageCommand<Summary extends { ok: boolean }>(
  json: boolean | undefined,
  run: (reporter: StageReporter) => Promise<Summary>,
  describe: (summary: Summary) => string,
): Promise<Summary> {
  const reporter = terminalReporter({ quiet: json === true });
  let summary: Summary;
  try {
    summary = await run(reporter);
  } finally {
    reporter.stop();
  }
  process.stdout.write(json === true ? `${JSON.stringify(summary, null, 2)}\n` : describe(summary));
  if (!summary.ok) process.exitCode = 1;
  return summary;
}
