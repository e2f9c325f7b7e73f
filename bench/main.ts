/**
 * `npm run bench -- <name> [args]`: runs bench/<name>.ts, whose `main(args)` prints its figures
 * next to the peer or limit it is compared with, measured in the same run on the same input, and
 * returns its headline rows, which replace that bench's rows in bench/RESULTS.md.
 *
 * `npm run bench` with no name runs every bench in BENCH_ORDER, one after another, each with its
 * defaults, and writes bench/RESULTS.md after each (a bench that throws gets a row saying why,
 * and the rest still run).
 */
import { readdir } from "node:fs/promises";
import { loadavg } from "node:os";
import { type BenchResult, type BenchRow, currentMachine, recordResults } from "./support.js";

/** The stages' order: the pipeline's, then serving, the whole run, the UI, subsets and takedowns. */
const BENCH_ORDER = [
  "extract",
  "language",
  "download",
  "embed",
  "index",
  "index-engines",
  "index-queue",
  "near-duplicates",
  "index-metric",
  "serve",
  "serve-s3",
  "serve-fanout",
  "run",
  "scale",
  "dedup",
  "s3",
  "s3-inputs",
  "ui",
  "atlas",
  "subset",
  "remove",
  "semdedup",
];

type BenchMain = (args: string[]) => Promise<BenchRow[] | undefined>;

const [name, ...args] = process.argv.slice(2);
const available = (await readdir(new URL(".", import.meta.url)))
  .filter((file) => file.endsWith(".ts") && file !== "main.ts" && file !== "support.ts")
  .map((file) => file.slice(0, -3));
const order = [
  ...BENCH_ORDER.filter((bench) => available.includes(bench)),
  ...available.filter((bench) => !BENCH_ORDER.includes(bench)).sort(),
];

if (name === undefined) {
  for (const bench of order) {
    console.log(`\n=== npm run bench -- ${bench}`);
    await runBench(bench, [], true);
  }
  console.log("\nwritten: bench/RESULTS.md");
} else if (available.includes(name)) {
  await runBench(name, args, false);
} else {
  process.stderr.write(`usage: npm run bench [-- <${available.join("|")}> [args]]\n`);
  process.exit(2);
}

/**
 * Runs one bench and records its rows. Alone, a bench that throws fails the command as before;
 * in a run of every bench, its error is recorded and the next one starts.
 */
async function runBench(bench: string, benchArgs: string[], keepGoing: boolean): Promise<void> {
  const loadStart = loadavg();
  const { main, resultName } = (await import(`./${bench}.ts`)) as {
    main?: BenchMain;
    /** A bench with variants (index --tier compressed) records each under its own name. */
    resultName?: (args: string[]) => string;
  };
  if (typeof main !== "function") return;
  const recordedAs = resultName?.(benchArgs) ?? bench;
  let result: BenchResult;
  try {
    const rows = await main(benchArgs);
    // A bench that returns nothing (a helper mode, a missing peer it has already explained)
    // leaves its earlier rows as they are when run alone; a run of every bench says so instead.
    if (rows === undefined && !keepGoing) return;
    result =
      rows === undefined
        ? {
            bench: recordedAs,
            machine: currentMachine(loadStart),
            rows: [],
            error: "no figures (see its output)",
          }
        : { bench: recordedAs, machine: currentMachine(loadStart), rows };
  } catch (error) {
    if (!keepGoing) throw error;
    const message = (error instanceof Error ? error.message : String(error)).split("\n")[0] ?? "";
    console.error(`bench ${bench} failed: ${message}`);
    process.exitCode = 1;
    result = { bench: recordedAs, machine: currentMachine(loadStart), rows: [], error: message };
  }
  await recordResults([result], order);
}
