import type { Command } from "commander";
import type { SubsetSummary } from "../../stages/subset/subset.js";
import { SUBSET_FORMATS, type SubsetFormat } from "../../stages/subset/subset-formats.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface SubsetFlags {
  root: string;
  output: string;
  format?: string;
  where?: string;
  query: string[];
  queryFile?: string;
  imageQuery: string[];
  k: string;
  modality: string;
  model?: string;
  dedup?: boolean;
  recipe?: string;
  version?: string;
  columns?: string;
  webdataset?: string;
  webdatasetShardSize: string;
  overwrite?: boolean;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

export function registerSubset(program: Command): void {
  const command = program
    .command("subset")
    .description(
      "a slice of the dataset (SQL condition and/or kNN queries) → a URL list that clipcrawl download and img2dataset fetch",
    )
    .requiredOption("-o, --output <file>", "the URL list to write (.parquet, .csv or .jsonl)")
    .option("--root <dir>", "the dataset root", ".")
    .option(
      "--format <format>",
      `output format: ${SUBSET_FORMATS.join(", ")} (default: by extension)`,
    )
    .option(
      "--where <sql>",
      "DuckDB condition on the dataset's columns (URL, TEXT, LANGUAGE, punsafe, …)",
    )
    .option("--query <text>", "a text query: the k rows nearest to it (repeatable)", collect, [])
    .option("--query-file <file>", "text queries, one a line")
    .option("--image-query <file>", "an image query (repeatable)", collect, [])
    .option("--k <n>", "rows per query", "100")
    .option("--modality <m>", "compare queries with the image or the text embeddings", "image")
    .option(
      "--model <dir>",
      "CLIP model folder for the queries (default: embed.model, else the one embed used)",
    )
    .option("--dedup", "one row per near-duplicate group (the index's groups)")
    .option(
      "--recipe <list>",
      "DataComp / SemDeDup recipes over the dataset, NAME[:PARAM=VALUE]... comma-separated (docs/recipes.md)",
    )
    .option(
      "--version <id>",
      "--where selects from an older dataset version instead of the dataset now (e.g. v1; `clipcrawl versions` lists them)",
    )
    .option("--columns <list>", "dataset columns to add after url and caption, comma-separated")
    .option("--webdataset <dir>", "also copy the selected samples from the root's image tars here")
    .option("--webdataset-shard-size <n>", "samples per webdataset tar", "10000")
    .option("--overwrite", "replace tars already in the --webdataset folder")
    .option("--json", "print the summary as JSON");
  command.addHelpText(
    "after",
    "\nExamples:\n" +
      `  clipcrawl subset --root ./data --where "LANGUAGE = 'en' AND punsafe < 0.1 AND AESTHETIC_SCORE > 5" -o en-safe.parquet\n` +
      `  clipcrawl subset --root ./data --query "a red bicycle" --k 5000 --dedup -o bicycles.csv --columns similarity,LANGUAGE\n` +
      '  clipcrawl subset --root ./data --query-file queries.txt --where "WIDTH >= 512" -o hits.jsonl --webdataset ./hits-wds\n' +
      "  clipcrawl subset --root ./data --recipe clip-score-top:percent=30,semdedup:epsilon=0.05 -o curated.parquet\n" +
      `  clipcrawl subset --root ./data --version v1 --where "LANGUAGE = 'de'" -o de-as-of-v1.parquet\n` +
      "\nThen: clipcrawl download en-safe.parquet --caption-col caption --root ./new  (or img2dataset --url_list en-safe.parquet --input_format parquet --caption_col caption)",
  );
  command.action(async (flags: SubsetFlags) => {
    if (
      flags.format !== undefined &&
      !(SUBSET_FORMATS as readonly string[]).includes(flags.format)
    ) {
      command.error(
        `error: --format takes ${SUBSET_FORMATS.join(", ")}, got ${JSON.stringify(flags.format)}`,
      );
    }
    if (flags.modality !== "image" && flags.modality !== "text") {
      command.error(`error: --modality takes image or text, got ${JSON.stringify(flags.modality)}`);
    }
    const k = positiveInteger(command, "--k", flags.k);
    const shardSize = positiveInteger(
      command,
      "--webdataset-shard-size",
      flags.webdatasetShardSize,
    );
    const { subset } = await import("../../stages/subset/subset.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        subset({
          root: flags.root,
          output: flags.output,
          format: flags.format as SubsetFormat | undefined,
          where: flags.where,
          queries: flags.query,
          queryFile: flags.queryFile,
          imageQueries: flags.imageQuery,
          k,
          modality: flags.modality as "image" | "text",
          model: flags.model,
          dedup: flags.dedup === true,
          ...(flags.recipe === undefined ? {} : { recipes: [flags.recipe] }),
          ...(flags.version === undefined ? {} : { version: flags.version }),
          columns: flags.columns
            ?.split(",")
            .map((column) => column.trim())
            .filter((column) => column !== ""),
          webdataset: flags.webdataset,
          webdatasetShardSize: shardSize,
          overwrite: flags.overwrite === true,
          reporter,
        }),
      describeSummary,
    );
  });
}

function positiveInteger(command: Command, flag: string, value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) {
    command.error(`error: ${flag} takes a positive whole number, got ${JSON.stringify(value)}`);
  }
  return number;
}

export function describeSummary(summary: SubsetSummary): string {
  const languages = Object.entries(summary.languages)
    .map(([language, count]) => `${language === "" ? "(none)" : language} ${formatCount(count)}`)
    .join(", ");
  const ranges = Object.entries(summary.ranges).map(([column, range]) => {
    const number = (value: number | null) =>
      value === null ? "–" : Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(3);
    return `    ${column.padEnd(16)} ${number(range.min).padStart(8)} … ${number(range.max).padEnd(8)} mean ${number(range.mean)}${range.nulls > 0 ? `, ${formatCount(range.nulls)} missing` : ""}`;
  });
  const lines = [
    `subset: ${formatCount(summary.rows)} rows → ${summary.output} (${summary.format}: ${summary.columns.join(", ")})`,
    `  scanned ${summary.shards} dataset shards, ${formatCount(summary.rowsScanned)} rows, ${(summary.bytesScanned / 1e6).toFixed(1)} MB`,
  ];
  if (summary.knn !== null) {
    lines.push(
      `  ${summary.knn.queries} queries × k ${summary.knn.k} against the ${summary.knn.modality} index: ${formatCount(summary.knn.rows)} hits`,
    );
  }
  const recipeDrops = Object.entries(summary.recipeDrops).sort((a, b) => b[1] - a[1]);
  if (recipeDrops.length > 0) {
    lines.push("  left out by the recipes:");
    for (const [reason, count] of recipeDrops) {
      lines.push(`    ${formatCount(count).padStart(7)}  ${reason}`);
    }
  }
  if (summary.duplicatesDropped > 0) {
    lines.push(`  ${formatCount(summary.duplicatesDropped)} near-duplicates left out`);
  }
  if (languages !== "") lines.push(`  languages: ${languages}`);
  if (ranges.length > 0) lines.push("  ranges:", ...ranges);
  if (summary.webdataset !== null) {
    const copy = summary.webdataset;
    lines.push(
      `  webdataset: ${formatCount(copy.samples)} samples in ${copy.shards} tars → ${copy.folder}${copy.missing > 0 ? ` (${formatCount(copy.missing)} not in the local tars)` : ""}`,
    );
  }
  lines.push(
    `  ${summary.seconds.toFixed(1)} s, ${formatCount(summary.rowsPerSecond)} rows/s scanned`,
    "",
  );
  return lines.join("\n");
}
