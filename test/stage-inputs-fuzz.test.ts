/**
 * A fuzz sweep over every stage's inputs, as serve-fuzz.test.ts does for the API: a seeded random
 * source (printed; FUZZ_SEED=N replays another) damages valid WAT files, image tars, images, HTTP
 * answers, Parquet files and .npy embeddings, including the hostile cases found by hand (gzip
 * bombs, pixel bombs, an SVG named .jpg, a tar header claiming 8 GB, LF-only WARC, Envelope
 * before Container), and feeds them to the stages' own code. For every case: no crash (no
 * exception out of a stage, no reason that is a programming error or more than one line), every
 * row the generator put in accounted for (kept, dropped with a reason, or failed with one; a
 * damaged file reported by name rather than giving fewer rows in silence), and peak memory under
 * PEAK_RSS_BOUND. A table of counts per input kind is printed at the end.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { extract } from "../src/stages/extract/extract.js";
import {
  FuzzLedger,
  FuzzRandom,
  fuzzSeed,
  peakRssBytes,
  resetPeakRss,
  unclearMessage,
} from "./support/fuzz-mutations.js";
import { WAT_MAX_RECORD_BYTES, watCase } from "./support/fuzz-wat.js";
import { tempDir } from "./support/temp.js";

/** Node, tsx, DuckDB, sharp, onnxruntime and the tiny model: about 500 MiB here, whatever the input. */
const PEAK_RSS_BOUND = 1.5 * 2 ** 30;
const SEED = fuzzSeed();
const ledger = new FuzzLedger();
let workDir: string;

before(async () => {
  workDir = await tempDir("stage-fuzz");
  console.log(`stage-inputs fuzz: seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
});

after(async () => {
  console.log(`stage-inputs fuzz, seed ${SEED}:\n${ledger.table()}`);
  await rm(workDir, { recursive: true, force: true });
});

/** Runs one kind's sweep with a fresh peak-memory reading, then asserts its counts. */
async function sweep(kind: string, body: (random: FuzzRandom) => Promise<void>): Promise<void> {
  resetPeakRss();
  // Each kind draws from its own stream, so that changing one kind's cases leaves the others'.
  await body(new FuzzRandom(SEED ^ [...kind].reduce((hash, c) => hash * 31 + c.charCodeAt(0), 7)));
  ledger.peak(kind, peakRssBytes());
  const counts = ledger.kinds.get(kind);
  const findings = ledger.findings.filter((line) => line.startsWith(`${kind}:`));
  assert.deepEqual(findings, [], `seed ${SEED}`);
  assert.ok(counts !== undefined && counts.cases > 0);
  assert.equal(counts.crashes, 0);
  assert.equal(counts.unaccountedRows, 0);
  assert.ok(
    counts.peakRssBytes < PEAK_RSS_BOUND,
    `${kind}: peak RSS ${Math.round(counts.peakRssBytes / 2 ** 20)} MiB, bound ${PEAK_RSS_BOUND / 2 ** 20} MiB`,
  );
}

const WAT_CASES = 60;

test("WAT files, damaged: extract reads what is whole, reports the rest by file, loses no pair in silence", async () => {
  await sweep("WAT", async (random) => {
    const dir = join(workDir, "wat");
    await mkdir(dir);
    const cases = Array.from({ length: WAT_CASES }, (_, index) => watCase(index, random));
    const inputs: string[] = [];
    for (const item of cases) {
      const path = join(dir, item.fileName);
      await writeFile(path, item.bytes);
      inputs.push(path);
    }
    const root = join(dir, "root");
    const reporter = collectingReporter();
    let summary: Awaited<ReturnType<typeof extract>>;
    try {
      summary = await extract({
        root,
        inputs,
        config: { workers: 1, maxRecordBytes: WAT_MAX_RECORD_BYTES, bloomCapacity: 20_000 },
        reporter,
      });
    } catch (error) {
      for (const item of cases) ledger.outcome("WAT", "crash", `${item.mutation}: extract threw ${String(error)}`);
      return;
    }
    const storage = new LocalStorage(root);
    for (const [index, item] of cases.entries()) {
      const path = inputs[index] as string;
      const shard = String(index).padStart(5, "0");
      const what = `${item.fileName} (${item.mutation})`;
      const failure = summary.failedShards.find((failed) => failed.input === path)?.error;
      const lines = [
        ...reporter.warnings.filter((line) => line.includes(item.fileName)),
        ...(failure === undefined ? [] : [failure]),
      ];
      const unclear = lines.map((line) => unclearMessage(line, [path])).find((why) => why !== undefined);
      if (unclear !== undefined) {
        ledger.outcome("WAT", "crash", `${what}: ${unclear}`);
        continue;
      }
      const statsText = await storage.readText(layout.candidateStats(shard)).catch(() => undefined);
      const stats = statsText === undefined ? undefined : JSON.parse(statsText);
      const rows =
        stats === undefined
          ? []
          : await readParquet(storage, layout.candidates(shard), ["url", "text"]);
      const kept = new Set(rows.map((row) => `${row.url} ${row.text}`));
      const badRecords =
        stats === undefined
          ? 0
          : Object.values(stats.badRecords as Record<string, number>).reduce((a, b) => a + b, 0);
      const reported = failure !== undefined || badRecords > 0;
      if (stats !== undefined) {
        const dropped = Object.values(stats.dropped as Record<string, number>).reduce((a, b) => a + b, 0);
        ledger.unaccounted(
          "WAT",
          Math.abs(stats.kept - rows.length) + Math.abs(stats.imageLinks - stats.kept - dropped),
          `${what}: ${rows.length} rows, kept ${stats.kept}, links ${stats.imageLinks}, dropped ${dropped}`,
        );
      } else if (failure === undefined) {
        ledger.unaccounted("WAT", 2 * item.pairs.length, `${what}: no shard and no failure`);
      }
      item.pairs.forEach((pairs, record) => {
        if (item.touched.has(record)) return;
        const missing = pairs.filter(([url, text]) => !kept.has(`${url} ${text}`));
        if (missing.length === 0) return;
        if (item.before.has(record))
          ledger.unaccounted("WAT", missing.length, `${what}: record ${record}, before the damage, lost`);
        else if (!reported)
          ledger.unaccounted("WAT", missing.length, `${what}: record ${record} lost with nothing reported`);
      });
      ledger.outcome("WAT", reported ? "rejected" : "accepted", what);
    }
  });
});
