import type { Command } from "commander";
import type { FilterConfig } from "../../stages/filter/config.js";
import type { FilterSummary } from "../../stages/filter/filter.js";
import { addConfigOptions, configOverrides } from "../config-options.js";
import { addRedoOption } from "../redo-option.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface FilterFlags {
  root: string;
  overwrite?: boolean;
  redo?: string[];
  json?: boolean;
  [key: string]: unknown;
}

export function registerFilter(program: Command): void {
  const command = program
    .command("filter")
    .description(
      "embeddings → the final dataset in <root>/dataset/ (LAION's columns), every dropped pair counted by reason",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--overwrite", "redo every shard (default: skip finished shards)")
    .option("--json", "print the summary as JSON");
  addRedoOption(command);
  addConfigOptions(command, "filter");
  command.addHelpText(
    "after",
    "\nExamples:\n  clipcrawl filter --root ./data\n" +
      "  clipcrawl filter --root ./data --min-similarity-en 0.3 --min-image-width 256 --min-image-height 256\n" +
      "  clipcrawl filter --root ./data --sha256-blocklist takedown.txt --domain-blocklist domains.txt --max-punsafe 0.5",
  );
  command.action(async (flags: FilterFlags) => {
    const { filter } = await import("../../stages/filter/filter.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        filter({
          root: flags.root,
          overwrite: flags.overwrite === true,
          redo: flags.redo,
          config: configOverrides(flags, "filter") as Partial<FilterConfig>,
          reporter,
        }),
      describeSummary,
      { root: flags.root, stage: "filter" },
    );
  });
}

export function describeSummary(summary: FilterSummary): string {
  const { totals, blocklists } = summary;
  const reasons = Object.entries(totals.dropped_by_reason)
    .filter(([, count]) => count > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([reason, count]) => `    ${formatCount(count).padStart(7)}  ${reason}`);
  const tiers = Object.entries(totals.kept_by_tier)
    .map(([tier, count]) => `${formatCount(count)} ${tier}`)
    .join(", ");
  const listed =
    blocklists.urls + blocklists.domains + blocklists.sha256 + blocklists.md5 + blocklists.sha1;
  return [
    `filter: ${summary.shards} shards (${summary.shardsWritten} written, ${summary.shardsSkipped} already done), ${summary.failedShards.length} failed`,
    `  ${formatCount(totals.samples)} pairs: ${formatCount(totals.kept)} kept (${tiers}), ${formatCount(totals.dropped)} dropped`,
    ...(reasons.length === 0 ? [] : ["  dropped by reason:", ...reasons]),
    ...(listed === 0 && blocklists.badLines === 0
      ? []
      : [
          `  blocklists: ${formatCount(blocklists.urls)} URLs, ${formatCount(blocklists.domains)} domains, ${formatCount(blocklists.sha256)} SHA-256, ${formatCount(blocklists.md5)} MD5, ${formatCount(blocklists.sha1)} SHA-1 digests${blocklists.badLines === 0 ? "" : ` (${blocklists.badLines} bad ${blocklists.badLines === 1 ? "line" : "lines"} ignored)`}`,
        ]),
    ...summary.failedShards.map((failed) => `  shard ${failed.shard} failed: ${failed.error}`),
    `  ${summary.seconds.toFixed(1)} s, ${summary.samplesPerSecond.toFixed(0)} pairs/s`,
    "",
  ].join("\n");
}
