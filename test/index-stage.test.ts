import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { type ClipIndex, openIndex } from "../src/formats/index/clip-index.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { encodeNpy } from "../src/io/npy.js";
import { writeParquet } from "../src/io/parquet.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { runCli } from "./support/cli.js";
import {
  bruteForce,
  DIMENSIONS,
  dot,
  type FixtureRow,
  near,
  randomRows,
  randomUnit,
  writeEmbeddingShard,
} from "./support/index-fixture.js";
import { tempDir } from "./support/temp.js";

const overlap = (left: readonly number[], right: readonly number[]) =>
  left.filter((id) => right.includes(id)).length / Math.max(1, right.length);

let workDir: string;

before(async () => {
  workDir = await tempDir("index");
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

test("small index: every embedded row, exact nearest neighbours for image and text queries", async () => {
  const root = join(workDir, "small");
  const rows = randomRows("00000", 120, 1);
  await writeEmbeddingShard(root, "00000", rows);
  const summary = await buildIndex({ root, config: { threads: 1 } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.source, "embeddings");
  assert.equal(summary.rows, 120);
  assert.equal(summary.dimensions, DIMENSIONS);
  const index = await openIndex(root);
  try {
    const next = seededUniform(99);
    for (let query = 0; query < 20; query++) {
      const vector = randomUnit(next);
      for (const modality of ["image", "text"] as const) {
        const report = index.searchWithReport({ vector, k: 10, modality });
        assert.equal(report.path, "exact");
        assert.deepEqual(
          report.results.map((result) => result.id),
          bruteForce(rows, vector, 10, () => true, modality),
        );
        const best = report.results[0];
        assert.ok(best !== undefined);
        const expected = dot((rows[best.id] as FixtureRow)[modality], vector);
        assert.ok(Math.abs(best.similarity - expected) < 0.01, `${best.similarity} vs ${expected}`);
      }
    }
    const [first] = index.metadata([5], ["key", "URL", "TEXT", "LANGUAGE", "WIDTH", "dup_group"]);
    assert.deepEqual(first, {
      key: "000000005",
      URL: "https://img.example/000000005.jpg",
      TEXT: "caption of 000000005",
      LANGUAGE: "fr",
      WIDTH: 256,
      dup_group: 5,
    });
    assert.equal(index.metadata([9], ["punsafe"])[0]?.punsafe, null);
  } finally {
    index.close();
  }
});

test("score filters keep exactly the rows at or past the threshold, ties and NULLs included; a column no row has filters nothing", async () => {
  const root = join(workDir, "thresholds");
  const rows = randomRows("00000", 200, 9);
  // Ties at the thresholds: several rows share the exact value asked for.
  for (const id of [3, 40, 41, 150]) (rows[id] as FixtureRow).punsafe = 0.25;
  for (const id of [4, 90, 91]) (rows[id] as FixtureRow).aesthetic = 6.5;
  await writeEmbeddingShard(root, "00000", rows);
  const summary = await buildIndex({ root, config: { threads: 1 } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  const index = await openIndex(root);
  try {
    const vector = randomUnit(seededUniform(12));
    const cases = [
      {
        filters: { maxPunsafe: 0.25 },
        keep: (row: FixtureRow) => row.punsafe === null || row.punsafe <= 0.25,
      },
      { filters: { minAestheticScore: 6.5 }, keep: (row: FixtureRow) => row.aesthetic >= 6.5 },
      {
        filters: { maxPunsafe: 0.25, minAestheticScore: 6.5, languages: ["fr"] },
        keep: (row: FixtureRow) =>
          (row.punsafe === null || row.punsafe <= 0.25) &&
          row.aesthetic >= 6.5 &&
          row.language === "fr",
      },
      // No row has a ptoxic (the column is NULL throughout): every row passes.
      { filters: { maxPtoxic: 0 }, keep: () => true },
      { filters: { maxPunsafe: -1 }, keep: (row: FixtureRow) => row.punsafe === null },
    ];
    for (const { filters, keep } of cases) {
      const found = index.search({ vector, k: 1000, modality: "image", filters });
      assert.deepEqual(
        found.map((result) => result.id).sort((a, b) => a - b),
        rows.flatMap((row, id) => (keep(row) ? [id] : [])),
        JSON.stringify(filters),
      );
    }
  } finally {
    index.close();
  }
});

test("metadata is served from the segments' metadata.rows, and an index built before them still serves the same from its parquet", async () => {
  const root = join(workDir, "rows-on-disk");
  await writeEmbeddingShard(root, "00000", randomRows("00000", 150, 4));
  await writeEmbeddingShard(root, "00001", randomRows("00001", 90, 5));
  const summary = await buildIndex({ root, config: { threads: 1 } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  const storage = new LocalStorage(root);
  const manifest = JSON.parse(await storage.readText(layout.indexManifest()));
  const segments = manifest.segments as { name: string }[];
  assert.equal(segments.length, 2);
  const ids = [0, 31, 32, 149, 150, 239];
  const removed = { keys: new Set(["000000031", "000010002"]), removals: ["r"] };
  const read = async () => {
    const index = await openIndex(root);
    try {
      const values = index.metadata(ids);
      const count = index.applyTombstones(removed);
      return { values, count, removed: ids.map((id) => index.isRemoved(id)) };
    } finally {
      index.close();
    }
  };
  const fromRows = await read();
  assert.equal(fromRows.values[4]?.key, "000010000");
  assert.equal(fromRows.count, 2);
  assert.deepEqual(fromRows.removed, [false, true, false, false, false, false]);
  const damaged = join(root, layout.indexSegmentRows(segments[1]?.name ?? ""));
  const bytes = await readFile(damaged);
  await writeFile(damaged, bytes.subarray(0, bytes.length - 1));
  await assert.rejects(openIndex(root), (error: Error) => error.message.startsWith(damaged));
  await writeFile(damaged, bytes);

  for (const segment of segments) {
    await rm(join(root, layout.indexSegmentRows(segment.name)));
  }
  assert.deepEqual(await read(), fromRows);
});

let large: { root: string; rows: FixtureRow[]; index: ClipIndex };

async function largeIndex(): Promise<typeof large> {
  if (large !== undefined) return large;
  const root = join(workDir, "large");
  const rows = randomRows("00000", 5000, 2);
  await writeEmbeddingShard(root, "00000", rows);
  const summary = await buildIndex({ root, config: { threads: 2, flatMaxVectors: 0 } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  large = { root, rows, index: await openIndex(root) };
  return large;
}

test("graph search: recall@10 against exact search above 0.9 with no filter", async () => {
  const { rows, index } = await largeIndex();
  const next = seededUniform(7);
  let recall = 0;
  for (let query = 0; query < 30; query++) {
    const vector = randomUnit(next);
    const report = index.searchWithReport({ vector, k: 10, modality: "image" });
    assert.equal(report.path, "graph");
    assert.equal(report.results.length, 10);
    recall += overlap(
      report.results.map((result) => result.id),
      bruteForce(rows, vector, 10),
    );
  }
  assert.ok(recall / 30 >= 0.9, `recall ${recall / 30}`);
});

test("filters are applied inside the search: a filtered query still returns k passing rows", async () => {
  const { rows, index } = await largeIndex();
  const next = seededUniform(8);
  const vector = randomUnit(next);
  const cases = [
    {
      filters: { maxPunsafe: 0.8 },
      keep: (row: FixtureRow) => row.punsafe === null || row.punsafe <= 0.8,
    },
    {
      filters: { maxPunsafe: 0.3, maxPwatermark: 0.5, minAestheticScore: 5 },
      keep: (row: FixtureRow) =>
        (row.punsafe === null || row.punsafe <= 0.3) && row.pwatermark <= 0.5 && row.aesthetic >= 5,
    },
    { filters: { languages: ["sw"] }, keep: (row: FixtureRow) => row.language === "sw" },
    {
      filters: { languages: ["en", "sw"], minAestheticScore: 7.5 },
      keep: (row: FixtureRow) => ["en", "sw"].includes(row.language) && row.aesthetic >= 7.5,
    },
  ];
  const paths = new Set<string>();
  for (const { filters, keep } of cases) {
    const report = index.searchWithReport({ vector, k: 20, modality: "image", filters });
    paths.add(report.path);
    assert.equal(report.results.length, 20, JSON.stringify(filters));
    for (const result of report.results) {
      assert.ok(
        keep(rows[result.id] as FixtureRow),
        `row ${result.id} fails ${JSON.stringify(filters)}`,
      );
    }
    const expected = bruteForce(rows, vector, 20, keep);
    const found = report.results.map((result) => result.id);
    assert.ok(
      overlap(found, expected) >= 0.85,
      `${JSON.stringify(filters)}: ${found} vs ${expected}`,
    );
  }
  assert.deepEqual([...paths].sort(), ["exact", "graph"], "both plans were exercised");

  const rare = index.search({ vector, k: 1000, modality: "text", filters: { languages: ["sw"] } });
  assert.equal(rare.length, rows.filter((row) => row.language === "sw").length);
  const none = index.search({ vector, k: 5, modality: "image", filters: { languages: ["xx"] } });
  assert.deepEqual(none, []);
});

test("a filter that removes the query's whole neighbourhood still returns k rows", async () => {
  const root = join(workDir, "neighbourhood");
  const next = seededUniform(3);
  const rows = randomRows("00000", 4000, 4);
  const centre = randomUnit(next);
  // 300 rows around the query, all unsafe: the graph's first candidates all fail the filter.
  for (let index = 0; index < 300; index++) {
    const row = rows[index] as FixtureRow;
    row.image = near(centre, next, 0.15);
    row.punsafe = 0.99;
  }
  await writeEmbeddingShard(root, "00000", rows);
  const summary = await buildIndex({
    root,
    config: { threads: 2, flatMaxVectors: 0, duplicateThreshold: 0.999 },
  });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  const index = await openIndex(root);
  try {
    const keep = (row: FixtureRow) => row.punsafe === null || row.punsafe <= 0.5;
    const report = index.searchWithReport({
      vector: centre,
      k: 10,
      modality: "image",
      filters: { maxPunsafe: 0.5 },
    });
    assert.equal(report.results.length, 10);
    assert.ok(report.rounds > 1, `over-fetch adapted: ${JSON.stringify(report)}`);
    for (const result of report.results) assert.ok(keep(rows[result.id] as FixtureRow));
    assert.ok(
      overlap(
        report.results.map((result) => result.id),
        bruteForce(rows, centre, 10, keep),
      ) >= 0.8,
    );
  } finally {
    index.close();
  }
});

test("planted near-duplicates share a group, across shards too; deduplicate keeps one per group", async () => {
  const root = join(workDir, "duplicates");
  const next = seededUniform(5);
  const first = randomRows("00000", 300, 6);
  const second = randomRows("00001", 300, 7);
  // A pair within shard 0, a chain of three across both shards, and a far pair below the threshold.
  first[10] = {
    ...(first[10] as FixtureRow),
    image: near((first[3] as FixtureRow).image, next, 0.02),
  };
  first[20] = {
    ...(first[20] as FixtureRow),
    image: near((first[4] as FixtureRow).image, next, 0.02),
  };
  second[5] = {
    ...(second[5] as FixtureRow),
    image: near((first[20] as FixtureRow).image, next, 0.02),
  };
  first[30] = {
    ...(first[30] as FixtureRow),
    image: near((first[6] as FixtureRow).image, next, 0.2),
  };
  await writeEmbeddingShard(root, "00000", first);
  await writeEmbeddingShard(root, "00001", second);
  assert.ok(dot((first[30] as FixtureRow).image, (first[6] as FixtureRow).image) < 0.96);

  const summary = await buildIndex({ root, config: { threads: 1, flatMaxVectors: 0 } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.duplicateGroups, 600 - 3);
  const index = await openIndex(root);
  try {
    const group = (id: number) => index.metadata([id], ["dup_group"])[0]?.dup_group;
    assert.equal(group(10), 3);
    assert.equal(group(3), 3);
    assert.equal(group(20), 4);
    assert.equal(group(300 + 5), 4);
    assert.equal(group(30), 30);
    assert.equal(group(6), 6);

    const query = (first[4] as FixtureRow).image;
    const plain = index.search({ vector: query, k: 5, modality: "image" }).map((r) => r.id);
    assert.deepEqual(
      plain.slice(0, 3).sort((a, b) => a - b),
      [4, 20, 305],
    );
    const deduplicated = index.search({
      vector: query,
      k: 5,
      modality: "image",
      filters: { deduplicate: true },
    });
    assert.equal(deduplicated.length, 5);
    const groups = deduplicated.map((result) => group(result.id));
    assert.equal(new Set(groups).size, 5);
    assert.equal(groups.filter((value) => value === 4).length, 1);
  } finally {
    index.close();
  }
});

test("a new shard is added without a rebuild; a re-run skips; ids and groups carry over", async () => {
  const root = join(workDir, "incremental");
  const next = seededUniform(11);
  const first = randomRows("00000", 400, 12);
  const second = randomRows("00001", 400, 13);
  second[7] = {
    ...(second[7] as FixtureRow),
    image: near((first[9] as FixtureRow).image, next, 0.02),
  };
  await writeEmbeddingShard(root, "00000", first);
  const reporter = collectingReporter();
  const one = await buildIndex({ root, config: { threads: 1, flatMaxVectors: 0 }, reporter });
  assert.equal(one.ok, true, JSON.stringify(one));
  assert.equal(one.rebuilt, true);
  const storage = new LocalStorage(root);
  const manifestOne = JSON.parse(await storage.readText(layout.indexManifest()));

  await writeEmbeddingShard(root, "00001", second);
  const two = await buildIndex({ root, config: { threads: 1, flatMaxVectors: 0 } });
  assert.equal(two.ok, true, JSON.stringify(two));
  assert.equal(two.rebuilt, false);
  assert.equal(two.shardsWritten, 1);
  assert.equal(two.shardsSkipped, 1);
  assert.equal(two.rows, 800);
  assert.equal(two.rowsAdded, 400);
  const manifestTwo = JSON.parse(await storage.readText(layout.indexManifest()));
  assert.deepEqual(manifestTwo.segments[0], manifestOne.segments[0], "shard 0's segment is kept");
  assert.equal(manifestTwo.generation, manifestOne.generation + 1);
  assert.equal(
    await storage.exists(manifestOne.shards[0].graphs.image),
    false,
    "old graph removed",
  );

  const index = await openIndex(root);
  try {
    const found = index.search({
      vector: (second[100] as FixtureRow).image,
      k: 1,
      modality: "image",
    });
    assert.equal(found[0]?.id, 500);
    assert.equal(index.metadata([500], ["key"])[0]?.key, "000010100");
    assert.equal(index.metadata([400 + 7], ["dup_group"])[0]?.dup_group, 9);
  } finally {
    index.close();
  }

  const three = await buildIndex({ root, config: { threads: 1, flatMaxVectors: 0 } });
  assert.equal(three.ok, true);
  assert.equal(three.shardsWritten, 0);
  assert.equal(three.shardsSkipped, 2);
  const manifestThree = JSON.parse(await storage.readText(layout.indexManifest()));
  assert.equal(manifestThree.generation, manifestTwo.generation);
  for (const shard of ["00000", "00001"]) {
    assert.ok(await storage.exists(layout.doneMarker("index", shard)));
  }

  // The near-duplicate search list is how pairs are looked for, not what the index is: a new
  // one alone rebuilds nothing (the next rows added are searched with it).
  assert.equal(manifestThree.params.duplicateExpansion, 32);
  const searchList = await buildIndex({
    root,
    config: { threads: 1, flatMaxVectors: 0, duplicateExpansion: 16 },
  });
  assert.equal(searchList.ok, true, JSON.stringify(searchList));
  assert.equal(searchList.rebuilt, false);
  assert.equal(searchList.shardsWritten, 0);

  // A changed parameter (the duplicate threshold) rebuilds from scratch.
  const four = await buildIndex({
    root,
    config: { threads: 1, flatMaxVectors: 0, duplicateThreshold: 0.9 },
  });
  assert.equal(four.rebuilt, true);
  assert.equal(four.shardsWritten, 2);
});

test("a corrupt npy or a row count that differs from the metadata fails that shard with one line; the others are indexed", async () => {
  const root = join(workDir, "damaged");
  await writeEmbeddingShard(root, "00000", randomRows("00000", 50, 21));
  await writeEmbeddingShard(root, "00001", randomRows("00001", 50, 22));
  await writeEmbeddingShard(root, "00002", randomRows("00002", 50, 23));
  await writeEmbeddingShard(root, "00003", randomRows("00003", 50, 24));
  const storage = new LocalStorage(root);
  const corrupt = await storage.localPath(layout.imageEmbeddings("00001"));
  const bytes = await readFile(corrupt);
  await writeFile(corrupt, bytes.subarray(0, bytes.length - 100));
  const fewer = randomRows("00002", 49, 23);
  await new LocalStorage(root).writeAtomic(
    layout.textEmbeddings("00002"),
    encodeNpy({
      dtype: "<f2",
      shape: [49, DIMENSIONS],
      data: toFloat16Bits(new Float32Array(49 * DIMENSIONS).fill(0.1)),
    }),
  );
  await new LocalStorage(root).writeAtomic(
    layout.imageEmbeddings("00002"),
    encodeNpy({
      dtype: "<f2",
      shape: [49, DIMENSIONS],
      data: toFloat16Bits(Float32Array.from(fewer.flatMap((row) => [...row.image]))),
    }),
  );
  const reporter = collectingReporter();
  const summary = await buildIndex({ root, config: { threads: 1 }, reporter });
  assert.equal(summary.ok, false);
  assert.equal(summary.rows, 100);
  assert.deepEqual(
    summary.failedShards.map((failed) => failed.shard),
    ["00001", "00002"],
  );
  const [npyError, countError] = summary.failedShards.map((failed) => failed.error);
  assert.match(npyError as string, /img_emb_00001\.npy: .npy data is \d+ bytes/);
  assert.match(
    countError as string,
    /metadata_00002\.parquet: 50 rows, .*img_emb_00002\.npy has 49/,
  );
  assert.equal(reporter.warnings.length, 2);
  for (const line of reporter.warnings) assert.equal(line.includes("\n"), false);

  // The repaired shards are added on the next run, without a rebuild.
  await writeEmbeddingShard(root, "00001", randomRows("00001", 50, 22));
  await writeEmbeddingShard(root, "00002", randomRows("00002", 50, 23));
  const again = await buildIndex({ root, config: { threads: 1 } });
  assert.equal(again.ok, true, JSON.stringify(again));
  assert.equal(again.rebuilt, false);
  assert.equal(again.rows, 200);
});

test("with a dataset, the index holds the dataset's rows with their vectors found by key", async () => {
  const root = join(workDir, "dataset");
  const rows = randomRows("00000", 200, 31);
  await writeEmbeddingShard(root, "00000", rows);
  await writeEmbeddingShard(root, "00001", randomRows("00001", 50, 32));
  // The filter kept every third row, in reverse order (the index follows the dataset's order).
  const kept = rows.filter((_, index) => index % 3 === 0).reverse();
  const storage = new LocalStorage(root);
  await writeParquet(
    storage,
    layout.datasetShard("00000"),
    [
      {
        name: "URL",
        type: "VARCHAR",
        value: (row: FixtureRow) => `https://img.example/${row.key}.jpg`,
      },
      { name: "TEXT", type: "VARCHAR", value: (row: FixtureRow) => `caption of ${row.key}` },
      { name: "punsafe", type: "DOUBLE", value: (row: FixtureRow) => row.punsafe },
      { name: "LANGUAGE", type: "VARCHAR", value: (row: FixtureRow) => row.language },
      { name: "key", type: "VARCHAR", value: (row: FixtureRow) => row.key },
    ],
    kept,
  );
  const summary = await buildIndex({ root, config: { threads: 1 } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.source, "dataset");
  assert.equal(summary.rows, kept.length);
  assert.deepEqual(summary.waiting, ["00001"]);
  const index = await openIndex(root);
  try {
    for (const position of [0, 17, kept.length - 1]) {
      const row = kept[position] as FixtureRow;
      const [best] = index.search({ vector: row.text, k: 1, modality: "text" });
      assert.equal(best?.id, position);
      assert.equal(index.metadata([position], ["key"])[0]?.key, row.key);
    }
  } finally {
    index.close();
  }
});

test("clipcrawl index builds from the command line and prints a JSON summary", async () => {
  const root = join(workDir, "cli");
  await writeEmbeddingShard(root, "00000", randomRows("00000", 80, 41));
  const result = await runCli(["index", "--root", root, "--json", "--threads", "1"]);
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout);
  assert.equal(summary.rows, 80);
  assert.equal(summary.params.quantization, "f32");
});

after(() => {
  large?.index.close();
});
