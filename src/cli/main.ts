#!/usr/bin/env node
/** The `clipcrawl` command: commander wiring only; each command calls a library function. */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { ClipcrawlError, errorMessage } from "../errors.js";
import { VERSION } from "../version.js";
import { addStorageOptions } from "./storage-options.js";

/**
 * Each command's module and the commands it adds, in the order help lists them, loaded only when needed: a command line
 * that names one loads that one alone (the others' modules take longer to load than a small
 * command takes to run).
 */
const COMMANDS: readonly (readonly [names: readonly string[], load: () => Promise<Register>])[] = [
  [["init"], async () => (await import("./commands/init.js")).registerInit],
  [["extract"], async () => (await import("./commands/extract.js")).registerExtract],
  [["download"], async () => (await import("./commands/download.js")).registerDownload],
  [["embed"], async () => (await import("./commands/embed.js")).registerEmbed],
  [["filter"], async () => (await import("./commands/filter.js")).registerFilter],
  [["subset"], async () => (await import("./commands/subset.js")).registerSubset],
  [["remove"], async () => (await import("./commands/remove.js")).registerRemove],
  [["compact"], async () => (await import("./commands/compact.js")).registerCompact],
  [["recheck"], async () => (await import("./commands/recheck.js")).registerRecheck],
  [["show"], async () => (await import("./commands/show.js")).registerShow],
  [["stats"], async () => (await import("./commands/stats.js")).registerStats],
  [["versions", "diff"], async () => (await import("./commands/versions.js")).registerVersions],
  [["index"], async () => (await import("./commands/build-index.js")).registerIndex],
  [["run"], async () => (await import("./commands/run.js")).registerRun],
  [["serve"], async () => (await import("./commands/serve.js")).registerServe],
  [["worker"], async () => (await import("./commands/worker.js")).registerWorker],
  [["status"], async () => (await import("./commands/status.js")).registerStatus],
  [["dashboard"], async () => (await import("./commands/dashboard.js")).registerDashboard],
  [["model"], async () => (await import("./commands/model.js")).registerModel],
  [["demo"], async () => (await import("./commands/demo.js")).registerDemo],
];

type Register = (program: Command) => void;

/** Options of the program itself that take a value (storage-options.ts). */
const PROGRAM_OPTIONS_WITH_VALUES = new Set(["--s3-endpoint", "--cache-dir"]);

/**
 * The program with every command, or, given a command line (`process.argv`) that names one,
 * with that command alone: it parses that line exactly as the whole program would.
 */
export async function buildProgram(commandLine?: readonly string[]): Promise<Command> {
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
  const named = commandLine === undefined ? undefined : commandNamed(commandLine.slice(2));
  // Help, `help NAME`, a mistyped name (suggestions) and no name at all need every command.
  const wanted = COMMANDS.filter(([names]) => named === undefined || names.includes(named));
  for (const register of await Promise.all(wanted.map(([, load]) => load()))) register(program);
  return program;
}

/** The command the arguments name: their first operand, when it is a command's name. */
function commandNamed(args: readonly string[]): string | undefined {
  for (let at = 0; at < args.length; at++) {
    const arg = args[at] as string;
    if (arg === "--") return undefined;
    if (PROGRAM_OPTIONS_WITH_VALUES.has(arg)) at++;
    else if (!arg.startsWith("-")) {
      return COMMANDS.some(([names]) => names.includes(arg)) ? arg : undefined;
    }
  }
  return undefined;
}

/** Runs the command line of this process; bin/clipcrawl.js calls it. */
export async function main(): Promise<void> {
  try {
    await (await buildProgram(process.argv)).parseAsync(process.argv);
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
