/**
 * Extract throughput against zcat on the same WAT files, in the same run.
 *
 * - one core, the headline: one ≥100 MB file whose alt texts are as varied as the web's (the
 *   generator's `captions: "web"`, see bench/README.md), `clipcrawl extract` with one worker (the
 *   full stage: parse, language id, dedup, Parquet) vs `zcat FILE > /dev/null`. Target: ≥ 0.5 of
 *   zcat's rate.
 * - one core on the sample's captions, which repeat (about 5 % of alt texts distinct): the old
 *   figure, kept to show what the repeats flattered.
 * - all cores: one web-caption file per core, one worker each, vs as many zcat processes at once.
 * - what limits the headline: the worker's time by part, from a CPU profile of one more, untimed
 *   run (bench/cpu-profile.ts), written into the headline row.
 *
 *   npm run bench -- extract [--size-mb 120]
 */
import { spawnSync } from "node:child_process";
import { rm } from "node:fs/promises";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type CaptionSource, writeWatFile } from "../src/demo/sample/wat-generator.js";
import { extract } from "../src/stages/extract/extract.js";
import { busiestProfile, profileShares } from "./cpu-profile.js";
import {
  type BenchRow,
  benchDataPath,
  fileBytes,
  megabytes,
  printTable,
  timeShell,
} from "./support.js";

const MIB = 1024 * 1024;

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: { "size-mb": { type: "string", default: "120" } },
  });
  const sizeMb = Number(values["size-mb"]);
  const cores = cpus().length;
  const single = await ensureWatFile(`web-${sizeMb}mb.warc.wat.gz`, sizeMb, 1, "web");
  const dense = await ensureWatFile(`single-${sizeMb}mb.warc.wat.gz`, sizeMb, 1, "sample");
  const perCore: string[] = [];
  for (let index = 0; index < cores; index++) {
    perCore.push(
      await ensureWatFile(
        `web-core${index}-${Math.ceil(sizeMb / 2)}mb.warc.wat.gz`,
        Math.ceil(sizeMb / 2),
        100 + index,
        "web",
      ),
    );
  }

  const singleBytes = (await fileBytes(single)) ?? 0;
  const zcatSingle = timeShell(`zcat '${single}' > /dev/null`);
  const oneCore = await runExtract([single], 1);
  const denseBytes = (await fileBytes(dense)) ?? 0;
  const zcatDense = timeShell(`zcat '${dense}' > /dev/null`);
  const oneCoreDense = await runExtract([dense], 1);

  const allBytes = (await Promise.all(perCore.map(fileBytes))).reduce<number>(
    (sum, bytes) => sum + (bytes ?? 0),
    0,
  );
  const zcatParallel = timeShell(
    `${perCore.map((path) => `zcat '${path}' > /dev/null &`).join(" ")} wait`,
  );
  const allCores = await runExtract(perCore, cores);
  const shares = await profileOneWorker(single);
  const limit = shares
    .slice(0, 5)
    .map(({ part, share }) => `${part} ${(100 * share).toFixed(0)} %`)
    .join(", ");
  console.log(`the worker's CPU profile (untimed run of the headline file): ${limit}`);

  const rows: (string | number)[][] = [
    ["run", "input MB", "seconds", "MB/s compressed", "records/s", "pairs/s", "vs zcat"],
    ...comparison("1 process", "1 worker, web captions", singleBytes, zcatSingle, oneCore),
    ...comparison("1 process", "1 worker, sample captions", denseBytes, zcatDense, oneCoreDense),
    ...comparison(`${cores} processes`, `${cores} workers`, allBytes, zcatParallel, allCores),
  ];
  printTable(rows);
  const oneCoreRatio = rate(singleBytes, oneCore.seconds) / rate(singleBytes, zcatSingle);
  console.log(`target: one-core extract ≥ 0.5 of zcat's rate → ${oneCoreRatio.toFixed(2)}`);
  const allRatio = rate(allBytes, allCores.seconds) / rate(allBytes, zcatParallel);
  const denseRatio = rate(denseBytes, oneCoreDense.seconds) / rate(denseBytes, zcatDense);
  return [
    {
      stage: `extract, 1 worker, ${megabytes(singleBytes).toFixed(0)} MB WAT, web-like captions (limit, the worker's CPU profile: ${limit})`,
      unit: "MB/s",
      clipcrawl: rate(singleBytes, oneCore.seconds),
      peer: { name: "zcat", value: rate(singleBytes, zcatSingle) },
      ratio: oneCoreRatio,
      target: "≥ 0.5× zcat",
      met: oneCoreRatio >= 0.5,
    },
    {
      stage: `extract, 1 worker, ${megabytes(denseBytes).toFixed(0)} MB WAT, sample captions (repeating)`,
      unit: "MB/s",
      clipcrawl: rate(denseBytes, oneCoreDense.seconds),
      peer: { name: "zcat", value: rate(denseBytes, zcatDense) },
      ratio: denseRatio,
      target: "none (the headline row is the web-like file)",
    },
    {
      stage: `extract, ${cores} workers, ${megabytes(allBytes).toFixed(0)} MB WAT, web-like captions`,
      unit: "MB/s",
      clipcrawl: rate(allBytes, allCores.seconds),
      peer: { name: `zcat × ${cores}`, value: rate(allBytes, zcatParallel) },
      ratio: allRatio,
      target: "none (one-core target above)",
    },
  ];
}

interface ExtractRun {
  seconds: number;
  records: number;
  pairs: number;
}

/** Two table rows: zcat on the input, then clipcrawl on the same input with its ratio. */
function comparison(
  zcatLabel: string,
  extractLabel: string,
  bytes: number,
  zcatSeconds: number | undefined,
  run: ExtractRun,
): (string | number)[][] {
  const zcatRate = rate(bytes, zcatSeconds);
  const extractRate = rate(bytes, run.seconds);
  const size = megabytes(bytes).toFixed(0);
  return [
    [`zcat, ${zcatLabel}`, size, fmt(zcatSeconds), zcatRate.toFixed(1), "", "", "1.00"],
    [
      `clipcrawl extract, ${extractLabel}`,
      size,
      fmt(run.seconds),
      extractRate.toFixed(1),
      Math.round(run.records / run.seconds),
      Math.round(run.pairs / run.seconds),
      (extractRate / zcatRate).toFixed(2),
    ],
  ];
}

function rate(bytes: number, seconds: number | undefined): number {
  return seconds === undefined ? Number.NaN : megabytes(bytes) / seconds;
}

async function ensureWatFile(
  name: string,
  sizeMb: number,
  seed: number,
  captions: CaptionSource,
): Promise<string> {
  const path = await benchDataPath(name);
  if ((await fileBytes(path)) === undefined) {
    console.log(`generating ${name} (${sizeMb} MiB, once; kept in bench/.data/)`);
    await writeWatFile(path, { seed, minBytes: sizeMb * MIB, captions });
  }
  return path;
}

async function runExtract(inputs: string[], workers: number): Promise<ExtractRun> {
  const root = await benchDataPath(`root-${workers}`);
  await rm(root, { recursive: true, force: true });
  const summary = await extract({ root, inputs, config: { workers } });
  await rm(root, { recursive: true, force: true });
  if (!summary.ok) throw new Error(`extract failed: ${JSON.stringify(summary.failedShards)}`);
  return { seconds: summary.seconds, records: summary.totals.records, pairs: summary.totals.kept };
}

/** The extract modules, by the part of the work they do (their callees' time included). */
const EXTRACT_PARTS: Record<string, string> = {
  "gzip-members.ts": "inflate",
  "warc-stream.ts": "WARC records",
  "warc-records.ts": "WARC records",
  "wat-file.ts": "finding and parsing the link objects",
  "wat-page.ts": "finding and parsing the link objects",
  "wat-source.ts": "finding and parsing the link objects",
  "json-object-scan.ts": "finding and parsing the link objects",
  "language.ts": "language",
  "language-ngrams.ts": "language",
  "candidate-pairs.ts": "URL resolution, clean-up, hashing, dedup",
  "pair-filter-state.ts": "URL resolution, clean-up, hashing, dedup",
  "pair-hash.ts": "URL resolution, clean-up, hashing, dedup",
  "candidate-shard-writer.ts": "spooling and Parquet (DuckDB)",
  "parquet.ts": "spooling and Parquet (DuckDB)",
  "extract-task.ts": "the worker's own loop",
  "extract-worker.ts": "the worker's own loop",
};

/**
 * Where one worker's time goes on `input`: `clipcrawl extract --workers 1` run again under
 * `node --cpu-prof` (not timed: profiling slows it), its worker thread's profile summarised.
 */
async function profileOneWorker(input: string): Promise<{ part: string; share: number }[]> {
  const folder = await benchDataPath("extract-profile");
  const root = await benchDataPath("root-profile");
  await rm(folder, { recursive: true, force: true });
  await rm(root, { recursive: true, force: true });
  const cli = fileURLToPath(new URL("../bin/clipcrawl.js", import.meta.url));
  const run = spawnSync(
    process.execPath,
    [
      "--cpu-prof",
      "--cpu-prof-dir",
      folder,
      cli,
      "extract",
      input,
      "--root",
      root,
      "--workers",
      "1",
    ],
    { stdio: ["ignore", "ignore", "inherit"] },
  );
  await rm(root, { recursive: true, force: true });
  if (run.status !== 0) throw new Error(`profiled extract exited with ${run.status}`);
  const shares = profileShares(await busiestProfile(folder, "extract-task.ts"), EXTRACT_PARTS);
  await rm(folder, { recursive: true, force: true });
  return shares;
}

function fmt(seconds: number | undefined): string {
  return seconds === undefined ? "failed" : seconds.toFixed(2);
}
