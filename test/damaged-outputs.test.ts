/**
 * A finished output damaged afterwards (a dataset shard overwritten with random bytes): the done
 * markers see it, `status` names it, filter redoes it, `--redo` forces it, and the readers
 * (subset, stats, index) name the shard with the command that redoes it and go on with the rest.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { encodeNpy } from "../src/io/npy.js";
import { type ParquetColumn, readParquet, writeParquet } from "../src/io/parquet.js";
import { describeStatus, runStatus } from "../src/runner/run-status.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { filter } from "../src/stages/filter/filter.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { stats } from "../src/stages/stats/stats.js";
import { subset } from "../src/stages/subset/subset.js";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

const SHARDS = ["00000", "00001", "00002", "00003", "00004"];
const ROWS = 6;
const DIMENSIONS = 8;

let workDir: string;

before(async () => {
  workDir = await tempDir("damaged-outputs");
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

interface Row {
  key: string;
  shard: number;
  index: number;
}

const METADATA: ParquetColumn<Row>[] = [
  { name: "key", type: "VARCHAR", value: (row) => row.key },
  { name: "url", type: "VARCHAR", value: (row) => `https://img.example/${row.key}.jpg` },
  { name: "caption", type: "VARCHAR", value: (row) => `a red circle number ${row.key}` },
  { name: "similarity", type: "DOUBLE", value: () => 0.35 },
  { name: "caption_truncated", type: "BOOLEAN", value: () => false },
  { name: "status", type: "VARCHAR", value: () => "embedded" },
  { name: "error_message", type: "VARCHAR", value: () => null },
  { name: "width", type: "INTEGER", value: () => 256 },
  { name: "height", type: "INTEGER", value: () => 256 },
  { name: "original_width", type: "INTEGER", value: () => 640 },
  { name: "original_height", type: "INTEGER", value: () => 480 },
  { name: "sha256", type: "VARCHAR", value: (row) => row.key.padStart(64, "a") },
  { name: "language", type: "VARCHAR", value: () => "en" },
  { name: "language_tier", type: "VARCHAR", value: () => "en" },
  { name: "page_url", type: "VARCHAR", value: (row) => `https://pages.example/${row.key}` },
  { name: "source", type: "VARCHAR", value: (row) => `crawl.wat.gz:${row.index * 100}` },
];

/** Five embeddings shards of six pairs that pass filter's default rules, with their vectors. */
async function embeddedRoot(name: string): Promise<LocalStorage> {
  const storage = new LocalStorage(join(workDir, name));
  for (const [shardIndex, shard] of SHARDS.entries()) {
    const rows = Array.from({ length: ROWS }, (_, index) => ({
      key: `${shard}${String(index).padStart(4, "0")}`,
      shard: shardIndex,
      index,
    }));
    await writeParquet(storage, layout.embeddingMetadata(shard), METADATA, rows);
    await writeParquet(
      storage,
      layout.embeddingFailures(shard),
      METADATA.filter((column) => ["key", "url", "status", "error_message"].includes(column.name)),
      [],
    );
    for (const path of [layout.imageEmbeddings(shard), layout.textEmbeddings(shard)]) {
      const data = new Float32Array(ROWS * DIMENSIONS);
      rows.forEach((row, index) => {
        data[index * DIMENSIONS + ((row.shard + index) % DIMENSIONS)] = 1;
      });
      await storage.writeAtomic(path, encodeNpy({ dtype: "<f4", shape: [ROWS, DIMENSIONS], data }));
    }
  }
  return storage;
}

/** Overwrites a file with random bytes of the same size, as a bad disk or a stray copy would. */
async function scramble(storage: LocalStorage, path: string): Promise<void> {
  const local = await storage.localPath(path);
  const size = (await readFile(local)).length;
  await writeFile(local, randomBytes(size));
}

const STATS_SCRIPT = async () => {
  const path = join(workDir, "stats-report.js");
  await writeFile(path, "/* charts */");
  return path;
};

test("a dataset shard overwritten with random bytes of its size: status names it damaged and filter redoes it", async () => {
  const storage = await embeddedRoot("redo-root");
  const first = await filter({ root: storage });
  assert.equal(first.shardsWritten, 5);
  const original = await readFile(await storage.localPath(layout.datasetShard("00002")));
  await scramble(storage, layout.datasetShard("00002"));

  const status = await runStatus(storage);
  const filterStatus = status.stages.find((stage) => stage.stage === "filter");
  assert.equal(filterStatus?.done, 4);
  assert.deepEqual(
    filterStatus?.damaged.map((damaged) => damaged.shard),
    ["00002"],
  );
  assert.match(filterStatus?.damaged[0]?.reason ?? "", /dataset\/00002\.parquet has changed/);
  const described = describeStatus(status);
  assert.match(described, /filter\s+4\/\? done, 1 damaged/);
  assert.ok(
    described.includes(`redo: clipcrawl filter --root ${storage.root} --redo 00002`),
    described,
  );

  const again = await filter({ root: storage });
  assert.equal(again.ok, true);
  assert.equal(again.shardsWritten, 1);
  assert.equal(again.shardsSkipped, 4);
  assert.deepEqual(await readFile(await storage.localPath(layout.datasetShard("00002"))), original);
  const clean = (await runStatus(storage)).stages.find((stage) => stage.stage === "filter");
  assert.equal(clean?.done, 5);
  assert.deepEqual(clean?.damaged, []);
});

test("subset, stats and index name the damaged shard with the command that redoes it, and read the other four", async () => {
  const storage = await embeddedRoot("readers-root");
  await filter({ root: storage });
  await scramble(storage, layout.datasetShard("00002"));
  const fix = `clipcrawl filter --root ${storage.root} --redo 00002`;

  const reporter = collectingReporter();
  const output = join(workDir, "subset.parquet");
  const selected = await subset({ root: storage, output, reporter });
  assert.equal(selected.ok, false);
  assert.equal(selected.rows, 4 * ROWS);
  assert.equal((await readParquet(new LocalStorage(workDir), "subset.parquet")).length, 4 * ROWS);
  assert.deepEqual(
    selected.damagedShards.map((damaged) => damaged.shard),
    ["00002"],
  );
  assert.equal(reporter.warnings.length, 1);
  assert.match(
    reporter.warnings[0] as string,
    /dataset\/00002\.parquet is damaged: not a Parquet file/,
  );
  assert.ok((reporter.warnings[0] as string).endsWith(fix), reporter.warnings[0]);

  const report = await stats({
    root: storage,
    html: join(workDir, "stats.html"),
    script: await STATS_SCRIPT(),
  });
  assert.equal(report.ok, false);
  assert.equal(report.report.funnel.kept, 4 * ROWS);
  assert.deepEqual(
    report.report.damagedShards.map((damaged) => damaged.shard),
    ["00002"],
  );
  assert.equal(report.warnings.length, 1);
  assert.ok((report.warnings[0] as string).endsWith(fix), report.warnings[0]);

  const index = await buildIndex({ root: storage, reporter: collectingReporter() });
  assert.equal(index.ok, false);
  assert.equal(index.rows, 4 * ROWS);
  assert.deepEqual(
    index.failedShards.map((failed) => failed.shard),
    ["00002"],
  );
  assert.ok(index.failedShards[0]?.error.endsWith(fix), index.failedShards[0]?.error);

  // The fix the lines name, through the CLI; then every reader is whole again.
  const redo = await runCli(["filter", "--root", storage.root, "--redo", "2", "--json"]);
  assert.equal(redo.code, 0, redo.stderr);
  assert.equal(JSON.parse(redo.stdout).shardsWritten, 1);
  const whole = await subset({ root: storage, output, reporter: collectingReporter() });
  assert.equal(whole.ok, true);
  assert.equal(whole.rows, 5 * ROWS);
});

test("the subset CLI writes the good shards' rows, prints the fix on one line and exits 1", async () => {
  const storage = await embeddedRoot("cli-root");
  await filter({ root: storage });
  await scramble(storage, layout.datasetShard("00001"));
  const output = join(workDir, "cli-subset.csv");
  const result = await runCli(["subset", "--root", storage.root, "-o", output, "--json"]);
  assert.equal(result.code, 1, result.stderr);
  assert.equal(JSON.parse(result.stdout).rows, 4 * ROWS);
  const lines = result.stderr.split("\n").filter((line) => /00001/.test(line));
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0] as string, /--redo 00001$/);
});

test("--redo redoes a shard whose marker cannot see the damage (one written before checksums); a shard not planned fails", async () => {
  const storage = await embeddedRoot("legacy-root");
  await filter({ root: storage });
  // A marker as written before checksums: sizes only.
  const markerPath = layout.doneMarker("filter", "00003");
  const marker = JSON.parse(await storage.readText(markerPath)) as {
    outputs: { path: string; bytes: number; checksum?: string }[];
  };
  for (const output of marker.outputs) {
    assert.match(output.checksum ?? "", /^ends-sha256:[0-9a-f]{64}$/);
    delete output.checksum;
  }
  await storage.writeAtomic(markerPath, JSON.stringify(marker));
  await scramble(storage, layout.datasetShard("00003"));

  const sizeOnly = await filter({ root: storage });
  assert.equal(sizeOnly.shardsSkipped, 5, "an old marker is checked by size, as before");

  const redone = await filter({ root: storage, redo: ["00003"] });
  assert.equal(redone.ok, true);
  assert.equal(redone.shardsWritten, 1);
  assert.equal(redone.shardsSkipped, 4);
  assert.equal((await readParquet(storage, layout.datasetShard("00003"))).length, ROWS);

  const unknown = await filter({ root: storage, redo: ["00042"] });
  assert.equal(unknown.ok, false);
  assert.deepEqual(unknown.failedShards, [
    { shard: "00042", error: "not among the 5 shards filter planned (its input is missing)" },
  ]);
});

test("a dataset shard damaged inside, its PAR1 magic and footer length intact: subset, stats and index name it and read the other four", async () => {
  const storage = await embeddedRoot("inside-root");
  await filter({ root: storage });
  const local = await storage.localPath(layout.datasetShard("00002"));
  const bytes = await readFile(local);
  // The first column chunk's page, just past the magic: the footer still parses.
  for (let at = 8; at < 40; at += 3) bytes[at] = (bytes[at] as number) ^ 0x5a;
  await writeFile(local, bytes);
  const fix = `clipcrawl filter --root ${storage.root} --redo 00002`;

  const reporter = collectingReporter();
  const selected = await subset({ root: storage, output: join(workDir, "inside.csv"), reporter });
  assert.equal(selected.rows, 4 * ROWS);
  assert.deepEqual(
    selected.damagedShards.map((damaged) => damaged.shard),
    ["00002"],
  );
  assert.match(
    reporter.warnings[0] as string,
    /dataset\/00002\.parquet is damaged: not a readable Parquet file/,
  );
  assert.ok((reporter.warnings[0] as string).endsWith(fix), reporter.warnings[0]);

  const report = await stats({
    root: storage,
    html: join(workDir, "inside-stats.html"),
    script: await STATS_SCRIPT(),
  });
  assert.equal(report.report.funnel.kept, 4 * ROWS);
  assert.equal(report.warnings.length, 1);
  assert.ok((report.warnings[0] as string).endsWith(fix), report.warnings[0]);

  const index = await buildIndex({ root: storage, reporter: collectingReporter() });
  assert.equal(index.rows, 4 * ROWS);
  assert.deepEqual(
    index.failedShards.map((failed) => failed.shard),
    ["00002"],
  );
  assert.match(
    index.failedShards[0]?.error ?? "",
    /^dataset\/00002\.parquet is damaged: not a readable Parquet file/,
  );
  assert.ok(index.failedShards[0]?.error.endsWith(fix), index.failedShards[0]?.error);
});
