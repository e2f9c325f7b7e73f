import type { Command } from "commander";
import type { ExtractConfig } from "../../stages/extract/config.js";
import type { ExtractSummary } from "../../stages/extract/extract.js";
import { addConfigOptions, configOverrides } from "../config-options.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface ExtractFlags {
  root: string;
  crawl?: string;
  limit?: string;
  json?: boolean;
  [key: string]: unknown;
}

export function registerExtract(program: Command): void {
  const command = program
    .command("extract")
    .description("WAT files → candidate (image URL, alt text) shards in <root>/candidates/")
    .argument(
      "[inputs...]",
      "WAT files, globs, http(s) URLs, s3:// objects, prefixes (ending in /) or wildcards, or wat.paths(.gz) listings",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--crawl <id>", "a Common Crawl id, e.g. CC-MAIN-2024-10: reads its wat.paths.gz")
    .option("--limit <n>", "only the first n WAT files (after expanding globs and listings)")
    .option("--json", "print the summary as JSON");
  addConfigOptions(command, "extract");
  command.addHelpText(
    "after",
    "\nExamples:\n  clipcrawl extract 'crawl/*.warc.wat.gz' --root ./data\n" +
      "  clipcrawl extract --crawl CC-MAIN-2024-10 --limit 10 --base-url https://mirror.example/ --root ./data\n" +
      "  clipcrawl extract --crawl CC-MAIN-2024-10 --limit 10 --base-url s3://commoncrawl/ --root ./data   # AWS credentials needed\n" +
      "  clipcrawl extract 's3://my-bucket/wat/*.warc.wat.gz' --root s3://my-bucket/datasets/cc",
  );
  command.action(async (inputs: string[], flags: ExtractFlags) => {
    if (inputs.length === 0 && flags.crawl === undefined) {
      command.error("error: give WAT files, URLs or listings to read, or --crawl CC-MAIN-…");
    }
    const limit = flags.limit === undefined ? undefined : Number(flags.limit);
    if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
      command.error(
        `error: --limit takes a positive whole number, got ${JSON.stringify(flags.limit)}`,
      );
    }
    const { extract } = await import("../../stages/extract/extract.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        extract({
          root: flags.root,
          inputs,
          crawl: flags.crawl,
          limit,
          config: configOverrides(flags, "extract") as Partial<ExtractConfig>,
          reporter,
        }),
      describeSummary,
      { root: flags.root, stage: "extract" },
    );
  });
}

function describeDedupState(state: ExtractSummary["dedupState"]): string {
  const from =
    state.restoredShards > 0
      ? `${state.restoredShards} earlier shards from the saved filter`
      : "no saved filter";
  const replayed =
    state.replayedShards > 0 ? `, ${state.replayedShards} done shards read again` : "";
  const saved = state.savedShards > 0 ? `; saved, covering ${state.savedShards} shards` : "";
  return `${from}${replayed}${saved}`;
}

export function describeSummary(summary: ExtractSummary): string {
  const { totals, bloomFilter } = summary;
  const dropped = Object.entries(totals.dropped)
    .filter(([, count]) => count > 0)
    .map(([reason, count]) => `${reason} ${formatCount(count)}`)
    .join(", ");
  const bad = Object.entries(totals.badRecords)
    .filter(([, count]) => count > 0)
    .map(([kind, count]) => `${kind} ${count}`)
    .join(", ");
  const rate = totals.compressedBytes / 1e6 / Math.max(summary.seconds, 0.001);
  return [
    `extract: ${summary.shards} shards (${summary.shardsWritten} written, ${summary.shardsSkipped} already done), ${summary.failedShards.length} inputs failed`,
    `  ${formatCount(totals.records)} records, ${formatCount(totals.htmlPages)} HTML pages, ${formatCount(totals.imageLinks)} image links → ${formatCount(totals.kept)} candidate pairs`,
    `  languages: en ${formatCount(totals.languageTiers.en)}, multi ${formatCount(totals.languageTiers.multi)}, nolang ${formatCount(totals.languageTiers.nolang)}`,
    `  dropped: ${dropped || "none"}`,
    ...(bad === "" ? [] : [`  bad records skipped: ${bad}`]),
    `  dedup Bloom filter: ${formatCount(bloomFilter.items)} pairs in ${bloomFilter.layers} filter${bloomFilter.layers === 1 ? "" : "s"} (first sized for ${formatCount(bloomFilter.capacity)}), false-positive rate now ${bloomFilter.estimatedFalsePositiveRate.toExponential(1)} (target ${bloomFilter.targetFalsePositiveRate})`,
    `  dedup state: ${describeDedupState(summary.dedupState)}`,
    `  ${summary.seconds.toFixed(1)} s, ${rate.toFixed(1)} MB/s compressed`,
    "",
  ].join("\n");
}
