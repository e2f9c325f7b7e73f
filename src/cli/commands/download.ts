import type { Command } from "commander";
import type { DownloadConfig } from "../../stages/download/config.js";
import type { DownloadSummary } from "../../stages/download/download.js";
import { addConfigOptions, configOverrides } from "../config-options.js";
import { addRedoOption } from "../redo-option.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface DownloadFlags {
  root: string;
  overwrite?: boolean;
  redo?: string[];
  json?: boolean;
  [key: string]: unknown;
}

export function registerDownload(program: Command): void {
  const command = program
    .command("download")
    .description(
      "candidate shards (or URL lists) → image shards in <root>/images/ (img2dataset's format)",
    )
    .argument(
      "[inputs...]",
      "URL lists (files or folders: txt, csv, tsv, tsv.gz, json, jsonl, parquet); default: <root>/candidates",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--overwrite", "delete images/ and redo every shard (default: skip finished shards)")
    .option("--json", "print the summary as JSON");
  addRedoOption(command);
  addConfigOptions(command, "download");
  command.addHelpText(
    "after",
    "\nExamples:\n  clipcrawl download --root ./data\n" +
      "  clipcrawl download urls.parquet --url-col url --caption-col caption --root ./data\n" +
      "  clipcrawl download list.csv --output-format files --image-size 384 --resize-mode center_crop --root ./data",
  );
  command.action(async (inputs: string[], flags: DownloadFlags) => {
    const { download } = await import("../../stages/download/download.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        download({
          root: flags.root,
          inputs,
          overwrite: flags.overwrite === true,
          redo: flags.redo,
          config: configOverrides(flags, "download") as Partial<DownloadConfig>,
          reporter,
        }),
      describeSummary,
      { root: flags.root, stage: "download" },
    );
  });
}

export function describeSummary(summary: DownloadSummary): string {
  const { totals } = summary;
  const rate = (count: number) =>
    totals.count === 0 ? "0%" : `${((100 * count) / totals.count).toFixed(1)}%`;
  const errors = Object.entries(summary.topStatuses)
    .filter(([label]) => label !== "success")
    .slice(0, 8)
    .map(([label, count]) => `    ${formatCount(count).padStart(7)}  ${label}`);
  return [
    `download (${summary.source}): ${summary.shards} shards (${summary.shardsWritten} written, ${summary.shardsSkipped} already done), ${summary.failedShards.length} failed`,
    `  ${formatCount(totals.count)} samples: ${formatCount(totals.successes)} success (${rate(totals.successes)}), ${formatCount(totals.failed_to_download)} failed_to_download, ${formatCount(totals.failed_to_resize)} failed_to_resize, ${formatCount(totals.opted_out)} opted_out`,
    ...(errors.length === 0 ? [] : ["  most frequent errors:", ...errors]),
    ...summary.failedShards.map((failed) => `  shard ${failed.shard} failed: ${failed.error}`),
    `  ${summary.seconds.toFixed(1)} s, ${summary.samplesPerSecond.toFixed(0)} samples/s, ${(summary.bytesDownloaded / 1e6).toFixed(1)} MB downloaded`,
    "",
  ].join("\n");
}
