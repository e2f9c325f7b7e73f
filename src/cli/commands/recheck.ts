import type { Command } from "commander";
import type { DownloadConfig } from "../../stages/download/config.js";
import type { RecheckSummary } from "../../stages/recheck/recheck.js";
import { addConfigOptions, configOverrides } from "../config-options.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface RecheckFlags {
  root: string;
  sample?: string;
  seed?: string;
  date?: string;
  json?: boolean;
  [key: string]: unknown;
}

export function registerRecheck(program: Command): void {
  const command = program
    .command("recheck")
    .summary("fetch a dataset's URLs again: how many are alive, changed, gone or opted out")
    .description(
      "fetch a dataset's URLs again (all, or a --sample fraction) with download's limits, opt-out headers and network guard; records each URL's status in <root>/_recheck/<date>.parquet, per domain in <date>.json, the rows still available in <date>.available.parquet (for clipcrawl download) and the URLs that opted out since in <date>.opted-out.txt (for clipcrawl remove --urls); resumable",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option(
      "--sample <fraction>",
      "fetch this fraction of each shard's rows (0–1], picked by key",
      "1",
    )
    .option("--seed <n>", "which rows a fraction picks: the same seed, the same rows", "0")
    .option(
      "--date <YYYY-MM-DD>",
      "the recheck's name (default: today, UTC); the same date resumes",
    )
    .option("--json", "print the summary as JSON");
  addConfigOptions(command, "download");
  command.addHelpText(
    "after",
    "\nExamples:\n  clipcrawl recheck --root ./data --sample 0.05\n" +
      "  clipcrawl remove --root ./data --urls ./data/_recheck/2026-12-06.opted-out.txt --reason 'opted out since'",
  );
  command.action(async (flags: RecheckFlags) => {
    const { recheck } = await import("../../stages/recheck/recheck.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        recheck({
          root: flags.root,
          sample: Number(flags.sample ?? "1"),
          seed: Number(flags.seed ?? "0"),
          ...(flags.date === undefined ? {} : { date: flags.date }),
          config: configOverrides(flags, "download") as Partial<DownloadConfig>,
          reporter,
        }),
      describeRecheck,
    );
  });
}

export function describeRecheck(summary: RecheckSummary): string {
  const share = (count: number) =>
    summary.overall === null || summary.overall.urls === 0
      ? "–"
      : `${((100 * count) / summary.overall.urls).toFixed(1)}%`;
  const lines = [
    `recheck ${summary.date}: ${summary.shards} shards (${summary.shardsWritten} checked now, ${summary.shardsSkipped} already done), ${summary.failedShards.length} failed`,
  ];
  if (summary.overall !== null) {
    const o = summary.overall;
    lines.push(
      `  ${formatCount(o.urls)} URLs: ${share(o.alive)} alive, ${share(o.changed)} changed, ${share(o.gone)} gone, ${share(o.opted_out)} opted out, ${share(o.error)} unreachable`,
    );
    for (const domain of summary.domains.slice(0, 5)) {
      lines.push(
        `    ${domain.domain}: ${formatCount(domain.urls)} URLs, ${((100 * domain.alive) / Math.max(1, domain.urls)).toFixed(1)}% alive`,
      );
    }
  }
  for (const failed of summary.failedShards)
    lines.push(`  shard ${failed.shard} failed: ${failed.error}`);
  if (summary.files !== null) {
    lines.push(`  rows: ${summary.files.rows}; still available: ${summary.files.available}`);
    lines.push(`  opted out since (for clipcrawl remove --urls): ${summary.files.optedOut}`);
  }
  lines.push(`  ${summary.seconds.toFixed(1)} s`, "");
  return lines.join("\n");
}
