import type { Command } from "commander";
import type { IndexSummary } from "../../stages/index/build-index.js";
import type { IndexConfig } from "../../stages/index/config.js";
import { addConfigOptions, configOverrides } from "../config-options.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface IndexFlags {
  root: string;
  overwrite?: boolean;
  json?: boolean;
  [key: string]: unknown;
}

export function registerIndex(program: Command): void {
  const command = program
    .command("index")
    .description(
      "dataset (or embeddings) → image and text kNN indices in <root>/index/, with the metadata queries filter on and near-duplicate groups",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--overwrite", "rebuild from scratch (default: add new shards to the index)")
    .option("--json", "print the summary as JSON");
  addConfigOptions(command, "index");
  command.addHelpText(
    "after",
    "\nExamples:\n  clipcrawl index --root ./data\n" +
      "  clipcrawl index --root ./data --memory-budget-mb 16000 --duplicate-threshold 0.95\n" +
      "  clipcrawl index --root ./data --quantization f16 --connectivity 32 --overwrite",
  );
  command.action(async (flags: IndexFlags) => {
    const { buildIndex } = await import("../../stages/index/build-index.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        buildIndex({
          root: flags.root,
          overwrite: flags.overwrite === true,
          config: configOverrides(flags, "index") as Partial<IndexConfig>,
          reporter,
        }),
      describeSummary,
      { root: flags.root, stage: "index" },
    );
  });
}

export function describeSummary(summary: IndexSummary): string {
  const params = summary.params;
  const { timings } = summary;
  return [
    `index (${summary.source}): ${summary.shards} shards (${summary.shardsWritten} added${summary.rebuilt ? ", rebuilt" : ""}, ${summary.shardsSkipped} already in), ${summary.failedShards.length} failed`,
    `  ${formatCount(summary.rows)} rows (${formatCount(summary.rowsAdded)} added)${summary.dimensions === null ? "" : `, ${summary.dimensions}-d`}, ${formatCount(summary.duplicateGroups)} near-duplicate groups`,
    ...(params === null
      ? []
      : [
          ...(summary.tierReason === null ? [] : [`  tier ${summary.tierReason}`]),
          params.compressed === undefined
            ? `  HNSW ${params.quantization}, connectivity ${params.connectivity}, expansion ${params.expansionAdd}/${params.expansionSearch}, exact search up to ${formatCount(params.flatMaxVectors)} rows; graphs ≈ ${(summary.graphBytes / 1e6).toFixed(0)} MB${summary.overBudget ? " (over the memory budget)" : ""}`
            : `  IVF${params.compressed.lists},PQ${params.compressed.subQuantizers}, ${params.compressed.probes} lists probed, ${params.compressed.rerank} candidates re-ranked; ≈ ${(summary.graphBytes / 1e6).toFixed(0)} MB${summary.overBudget ? " (over the memory budget)" : ""}`,
        ]),
    ...(summary.waiting.length === 0
      ? []
      : [`  ${summary.waiting.length} embedding shards not filtered yet (not indexed)`]),
    ...summary.failedShards.map((failed) => `  shard ${failed.shard} failed: ${failed.error}`),
    `  ${timings.total.toFixed(1)} s (read ${timings.read.toFixed(1)}, graphs ${timings.graph.toFixed(1)}, duplicates ${timings.duplicates.toFixed(1)}, write ${timings.write.toFixed(1)}), ${summary.rowsPerSecond.toFixed(0)} rows/s`,
    "",
  ].join("\n");
}
