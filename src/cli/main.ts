#!/usr/bin/env node
/** The `clipcrawl` command: commander wiring only; each command calls a library function. */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { ClipcrawlError, errorMessage } from "../errors.js";
import { VERSION } from "../version.js";
import { registerIndex } from "./commands/build-index.js";
import { registerCompact } from "./commands/compact.js";
import { registerDashboard } from "./commands/dashboard.js";
import { registerDemo } from "./commands/demo.js";
import { registerDownload } from "./commands/download.js";
import { registerEmbed } from "./commands/embed.js";
import { registerExtract } from "./commands/extract.js";
import { registerFilter } from "./commands/filter.js";
import { registerInit } from "./commands/init.js";
import { registerModel } from "./commands/model.js";
import { registerRecheck } from "./commands/recheck.js";
import { registerRemove } from "./commands/remove.js";
import { registerRun } from "./commands/run.js";
import { registerServe } from "./commands/serve.js";
import { registerShow } from "./commands/show.js";
import { registerStats } from "./commands/stats.js";
import { registerStatus } from "./commands/status.js";
import { registerSubset } from "./commands/subset.js";
import { registerVersions } from "./commands/versions.js";
import { registerWorker } from "./commands/worker.js";
import { addStorageOptions } from "./storage-options.js";

export function buildProgram(): Command {
  const program = new Command("clipcrawl")
    .description(
      "Common Crawl WAT files → a CLIP-filtered image–text dataset, kNN indices and a search UI",
    )
    .version(VERSION)
    .showSuggestionAfterError(true)
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText(
      "after",
      "\nEvery command's --help shows its options, their defaults and config keys, and examples.\n" +
        "\nExamples:\n  clipcrawl demo                                      # every stage on a bundled sample, then its search UI\n" +
        "  clipcrawl run 'crawl/*.warc.wat.gz' --root ./data   # a dataset from your WAT files\n" +
        "  clipcrawl extract --help",
    );
  addStorageOptions(program);
  registerInit(program);
  registerExtract(program);
  registerDownload(program);
  registerEmbed(program);
  registerFilter(program);
  registerSubset(program);
  registerRemove(program);
  registerCompact(program);
  registerRecheck(program);
  registerShow(program);
  registerStats(program);
  registerVersions(program);
  registerIndex(program);
  registerRun(program);
  registerServe(program);
  registerWorker(program);
  registerStatus(program);
  registerDashboard(program);
  registerModel(program);
  registerDemo(program);
  return program;
}

/** Runs the command line of this process; bin/clipcrawl.js calls it. */
export async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    // A config error may list several bad values, one a line; anything else is one line.
    const lines =
      error instanceof ClipcrawlError
        ? error.message.split("\n")
        : [`unexpected error: ${errorMessage(error)}`];
    for (const line of lines) process.stderr.write(`clipcrawl: ${line}\n`);
    process.exitCode = error instanceof ClipcrawlError && error.code === "CC_CONFIG" ? 2 : 1;
  }
}

/** True when this file is the program node runs (through npm's bin link too), not an import. */
function isProgram(): boolean {
  try {
    return realpathSync(process.argv[1] ?? "") === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

// Only as the program: scripts/cli-reference.ts imports buildProgram to write the CLI reference.
if (isProgram()) await main();
