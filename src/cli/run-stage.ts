/** What every stage command does around its stage: progress, the summary, the exit code. */
import { openRoot } from "../io/open-root.js";
import { PIPELINE, stageNamed } from "../pipeline/pipeline.js";
import { recordRunReport, stageRunFromSummary } from "../pipeline/run-report.js";
import type { StageReporter } from "../shard/reporter.js";
import type { StageSummary } from "../shard/stage-definition.js";
import { terminalReporter } from "./terminal-reporter.js";

/**
 * Runs a stage with a terminal reporter, prints its summary (JSON with `--json`, else the
 * human description) and sets exit code 1 when the summary says not every input was processed.
 * With `report`, the run report of the stage goes into its root (src/pipeline/run-report.ts).
 */
export async function runStageCommand<Summary extends StageSummary>(
  json: boolean | undefined,
  run: (reporter: StageReporter) => Promise<Summary>,
  describe: (summary: Summary) => string,
  report: { root: string; stage: string },
): Promise<Summary>;
export async function runStageCommand<Summary extends { ok: boolean }>(
  json: boolean | undefined,
  run: (reporter: StageReporter) => Promise<Summary>,
  describe: (summary: Summary) => string,
): Promise<Summary>;
export async function runStageCommand<Summary extends { ok: boolean }>(
  json: boolean | undefined,
  run: (reporter: StageReporter) => Promise<Summary>,
  describe: (summary: Summary) => string,
  report?: { root: string; stage: string },
): Promise<Summary> {
  const reporter = terminalReporter({ quiet: json === true });
  const started = new Date();
  let summary: Summary;
  try {
    summary = await run(reporter);
    if (report !== undefined) {
      await recordRunReport(
        openRoot(report.root),
        report.stage,
        started,
        summary.ok,
        // The overloads admit a report only for a stage's summary.
        {
          [report.stage]: stageRunFromSummary(
            summary as unknown as StageSummary,
            stageNamed(PIPELINE, report.stage).reportDetails?.(summary),
          ),
        },
        (line) => reporter.warn(line),
      );
    }
  } finally {
    reporter.stop();
  }
  process.stdout.write(json === true ? `${JSON.stringify(summary, null, 2)}\n` : describe(summary));
  if (!summary.ok) process.exitCode = 1;
  return summary;
}
