/**
 * A dataset that grows crawl by crawl when runs are distributed: the (url, text) dedup filter
 * saved in the root (`_state/pair-filter.bin`) seeds a distributed run's Redis filter, and the
 * Redis filter is saved back once the run's extract is over. Crawl 1, then crawl 2 (which shares
 * about 30 % of its pairs with crawl 1), run locally or through real worker processes in any
 * mix, give the candidates and the filter of one run over both crawls, and the second run reads
 * none of crawl 1's shards again.
 */
import assert from "node:assert/strict";
import { copyFile, readdir, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { readLatestRunReport } from "../src/pipeline/run-report.js";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { extract } from "../src/stages/extract/extract.js";
import type { DedupState } from "../src/stages/extract/pair-filter-state.js";
import { extractStage } from "../src/stages/extract/stage.js";
import { runCli } from "./support/cli.js";
import { startWorker, stopWorkers, type WorkerProcess } from "./support/queue-workers.js";
import {
  deletePrefix,
  PrivateRedis,
  REDIS_URL,
  redisSkipReason,
  uniquePrefix,
} from "./support/redis.js";
import { tempDir } from "./support/temp.js";

const skip = await redisSkipReason();
/** The smallest allowed, so the filter grows past its first size within crawl 1. */
const CONFIG = { bloomCapacity: 1000 };

let dir: string;
let crawl1: string[];
let crawl2: string[];
let prefix: string;
let workers: WorkerProcess[] = [];
/** One local extract over both crawls: its candidate files and its saved filter. */
let reference: { candidates: Buffer[]; filter: Buffer };

before(async () => {
  if (skip !== undefined) return;
  dir = await tempDir("incremental-distributed");
  const inputs: string[] = [];
  for (let index = 0; index < 5; index++) {
    const path = join(dir, `in-${index}.warc.wat.gz`);
    await writeWatFile(path, { seed: 11, fileIndex: index, pages: 80 });
    inputs.push(path);
  }
  // Crawl 2: two new files, and a third that holds the same pages as one of crawl 1's.
  const copy = join(dir, "in-1-again.warc.wat.gz");
  await copyFile(inputs[1] as string, copy);
  crawl1 = inputs.slice(0, 3);
  crawl2 = [...inputs.slice(3, 5), copy];
  const once = join(dir, "once");
  const both = await extract({ root: once, inputs: [...crawl1, ...crawl2], config: CONFIG });
  assert.deepEqual(both.dedupState, { restoredShards: 0, replayedShards: 0, savedShards: 6 });
  reference = await rootState(once);
  const crawl1Only = await extract({ root: join(dir, "crawl-1"), inputs: crawl1, config: CONFIG });
  assert.ok(crawl1Only.bloomFilter.layers >= 2, "crawl 1's filter is a series of filters");

  prefix = uniquePrefix("grow");
  workers = ["g1", "g2"].map((name) =>
    startWorker(dir, REDIS_URL, prefix, name, ["--stages", "extract"]),
  );
});

after(async () => {
  if (skip !== undefined) return;
  await stopWorkers(workers);
  await deletePrefix(REDIS_URL, prefix);
});

async function rootState(root: string): Promise<{ candidates: Buffer[]; filter: Buffer }> {
  const folder = join(root, "candidates");
  const files = (await readdir(folder)).filter((name) => name.endsWith(".parquet")).sort();
  return {
    candidates: await Promise.all(files.map((file) => readFile(join(folder, file)))),
    filter: await readFile(join(root, "_state", "pair-filter.bin")),
  };
}

/** A distributed extract of `inputs` into `root`; its dedup state as the run report tells it. */
async function distributed(
  root: string,
  inputs: string[],
  extractConfig: Record<string, unknown> = {},
): Promise<{ dedupState: DedupState; warnings: string[] }> {
  const warnings: string[] = [];
  const summary = await runDistributed({
    root,
    inputs,
    queue: { url: REDIS_URL, prefix },
    pipeline: [extractStage],
    config: { extract: { ...CONFIG, ...extractConfig } },
    pollMs: 200,
    observer: { update: () => {}, warn: (line) => warnings.push(line) },
  });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  const report = await readLatestRunReport(new LocalStorage(root));
  const run = report?.stages.find((stage) => stage.stage === "extract")?.run;
  assert.ok(run?.details !== undefined, "the run report has extract's details");
  return { dedupState: run.details.dedupState as DedupState, warnings };
}

const local = (root: string, inputs: string[]) => extract({ root, inputs, config: CONFIG });

test("crawl 1 extracted locally, crawl 2 distributed: one run's candidates and filter, crawl 1 not read again", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "local-then-distributed");
  assert.equal((await local(root, crawl1)).dedupState.savedShards, 3);
  const second = await distributed(root, crawl2);
  assert.deepEqual(second.dedupState, { restoredShards: 3, replayedShards: 0, savedShards: 6 });
  assert.deepEqual(second.warnings, []);
  assert.deepEqual(await rootState(root), reference);
});

test("crawl 1 and crawl 2 both distributed: the second run starts from the first's saved filter", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "distributed-twice");
  const first = await distributed(root, crawl1);
  assert.deepEqual(first.dedupState, { restoredShards: 0, replayedShards: 0, savedShards: 3 });
  const second = await distributed(root, crawl2);
  assert.deepEqual(second.dedupState, { restoredShards: 3, replayedShards: 0, savedShards: 6 });
  assert.deepEqual(await rootState(root), reference);
});

test("crawl 1 distributed, crawl 2 extracted locally: the local run restores what Redis held", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "distributed-then-local");
  await distributed(root, crawl1);
  const cli = await runCli(["extract", ...crawl2, "--root", root, "--bloom-capacity", "1000"], {
    timeoutMs: 240_000,
  });
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(
    cli.stdout,
    /dedup state: 3 earlier shards from the saved filter; saved, covering 6/,
  );
  const report = await readLatestRunReport(new LocalStorage(root));
  const details = report?.stages.find((stage) => stage.stage === "extract")?.run?.details;
  assert.deepEqual(details?.dedupState, { restoredShards: 3, replayedShards: 0, savedShards: 6 });
  assert.deepEqual(await rootState(root), reference);
});

test("a cut-off saved filter is said in one line and the distributed run replays the done shards", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "cut-off");
  await distributed(root, crawl1);
  const path = join(root, "_state", "pair-filter.bin");
  await truncate(path, (await readFile(path)).byteLength - 100);
  const second = await distributed(root, crawl2);
  assert.deepEqual(second.dedupState, { restoredShards: 0, replayedShards: 3, savedShards: 6 });
  assert.equal(second.warnings.length, 1, second.warnings.join("\n"));
  assert.match(
    second.warnings[0] as string,
    /pair-filter\.bin: the snapshot's filter \d+ is cut off; the dedup filter is rebuilt/,
  );
  assert.deepEqual(await rootState(root), reference);
});

test("a saved filter whose label does not match the root's shards is not used", {
  skip,
  timeout: 300_000,
}, async () => {
  // The filter of another root, whose first shards are crawl 2's: right bytes, wrong shards.
  const other = join(dir, "other");
  await local(other, crawl2);
  const root = join(dir, "mismatched");
  await local(root, crawl1);
  await writeFile(
    join(root, "_state", "pair-filter.bin"),
    await readFile(join(other, "_state", "pair-filter.bin")),
  );
  const second = await distributed(root, crawl2);
  assert.deepEqual(second.dedupState, { restoredShards: 0, replayedShards: 3, savedShards: 6 });
  assert.deepEqual(second.warnings, []);
  assert.deepEqual(await rootState(root), reference);
});

test("crawl 2 distributed over two --dedup-redis instances: one run's candidates, crawl 1 replayed, the saved filter kept", {
  skip,
  timeout: 300_000,
}, async () => {
  const instances = [await PrivateRedis.start(), await PrivateRedis.start()];
  try {
    // Split, the filter has other bits, so other false positives: none, at this rate.
    const exact = { ...CONFIG, bloomFalsePositiveRate: 1e-9 };
    await extract({
      root: join(dir, "split-once"),
      inputs: [...crawl1, ...crawl2],
      config: exact,
    });
    const root = join(dir, "split-filter");
    await extract({ root, inputs: crawl1, config: exact });
    const saved = await readFile(join(root, "_state", "pair-filter.bin"));
    const second = await distributed(root, crawl2, {
      ...exact,
      dedupRedis: instances.map((instance) => instance.url),
    });
    // A split filter cannot start from the saved one (other bits): crawl 1's shards replay.
    assert.deepEqual(second.dedupState, { restoredShards: 0, replayedShards: 3, savedShards: 0 });
    assert.deepEqual(second.warnings, []);
    const state = await rootState(root);
    assert.deepEqual(state.candidates, (await rootState(join(dir, "split-once"))).candidates);
    assert.deepEqual(state.filter, saved, "the root keeps the filter it had");
  } finally {
    for (const instance of instances) await instance.stop();
  }
});

test("crawl 2 distributed in the parallel mode: no pair crawl 1 kept is kept again", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "parallel");
  await local(root, crawl1);
  const second = await distributed(root, crawl2, { dedupMode: "parallel" });
  assert.equal(second.dedupState.replayedShards, 3);
  const seen = new Set<string>();
  let rows = 0;
  const storage = new LocalStorage(root);
  const files = (await readdir(join(root, "candidates"))).filter((name) =>
    name.endsWith(".parquet"),
  );
  assert.equal(files.length, 6);
  for (const name of files) {
    for (const row of await readParquet(storage, `candidates/${name}`, ["url", "text"])) {
      const pair = `${String(row.url)}\t${String(row.text)}`;
      assert.ok(!seen.has(pair), `${pair} is kept twice (${name})`);
      seen.add(pair);
      rows++;
    }
  }
  assert.ok(rows > 0);
  // The copy of crawl 1's file adds nothing new.
  assert.equal((await readParquet(storage, "candidates/00005.parquet", ["url"])).length, 0);
});
