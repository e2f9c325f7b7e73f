import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { copyFile, cp, readFile, rename, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { openIndex } from "../src/formats/index/clip-index.js";
import type { IndexManifest } from "../src/formats/index/index-manifest.js";
import { layout } from "../src/io/layout.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { runCliUntilKilled } from "./support/cli.js";
import {
  bruteForce,
  type FixtureRow,
  near,
  randomRows,
  randomUnit,
  writeEmbeddingShard,
} from "./support/index-fixture.js";
import { tempDir } from "./support/temp.js";

const NO_ATLAS = { threads: 1, flatMaxVectors: 0, atlasPoints: 0 };

let workDir: string;

before(async () => {
  workDir = await tempDir("index-shards");
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

async function manifestOf(root: string): Promise<IndexManifest> {
  return JSON.parse(await readFile(join(root, layout.indexManifest()), "utf8")) as IndexManifest;
}

/** Three embedding shards of 150 rows: 450 rows, in id order. */
async function writeRows(root: string): Promise<FixtureRow[]> {
  const rows: FixtureRow[] = [];
  for (const [position, shard] of ["00000", "00001", "00002"].entries()) {
    const part = randomRows(shard, 150, 40 + position);
    await writeEmbeddingShard(root, shard, part);
    rows.push(...part);
  }
  return rows;
}

test("an index built in shards of 100 rows answers the exact top-k, as the one built whole", async () => {
  const shardedRoot = join(workDir, "sharded");
  const wholeRoot = join(workDir, "whole");
  const rows = await writeRows(shardedRoot);
  await writeRows(wholeRoot);
  const sharded = await buildIndex({ root: shardedRoot, config: { ...NO_ATLAS, shardSize: 100 } });
  assert.equal(sharded.ok, true, JSON.stringify(sharded));
  const whole = await buildIndex({ root: wholeRoot, config: NO_ATLAS });
  const manifest = await manifestOf(shardedRoot);
  assert.deepEqual(
    manifest.shards?.map((shard) => [shard.name, shard.firstId, shard.rows]),
    [
      ["s00000", 0, 100],
      ["s00001", 100, 100],
      ["s00002", 200, 100],
      ["s00003", 300, 100],
      ["s00004", 400, 50],
    ],
  );
  assert.equal((await manifestOf(wholeRoot)).shards?.length, 1, JSON.stringify(whole));

  const shardedIndex = await openIndex(shardedRoot);
  const wholeIndex = await openIndex(wholeRoot);
  try {
    const next = seededUniform(5);
    const safe = (row: FixtureRow) => row.punsafe === null || row.punsafe <= 0.5;
    for (let query = 0; query < 20; query++) {
      const vector = randomUnit(next);
      for (const modality of ["image", "text"] as const) {
        const truth = bruteForce(rows, vector, 10, () => true, modality);
        const fromShards = shardedIndex.search({ vector, k: 10, modality }).map((hit) => hit.id);
        const fromWhole = wholeIndex.search({ vector, k: 10, modality }).map((hit) => hit.id);
        assert.deepEqual(fromShards, truth, `query ${query} ${modality}, sharded`);
        assert.deepEqual(fromShards, fromWhole, `query ${query} ${modality}, sharded vs whole`);
      }
      const filters = { maxPunsafe: 0.5 };
      const filtered = shardedIndex.search({ vector, k: 10, modality: "image", filters });
      assert.deepEqual(
        filtered.map((hit) => hit.id),
        bruteForce(rows, vector, 10, safe),
        `query ${query}, safe mode`,
      );
    }
  } finally {
    shardedIndex.close();
    wholeIndex.close();
  }
});

test("new embeddings fill the last shard and start new ones; the full shards' files are kept; groups cross shards", async () => {
  const root = join(workDir, "grow");
  const first = randomRows("00000", 150, 61);
  const second = randomRows("00001", 150, 62);
  second[20] = {
    ...(second[20] as FixtureRow),
    image: near((first[3] as FixtureRow).image, seededUniform(9), 0.02),
  };
  await writeEmbeddingShard(root, "00000", first);
  const config = { ...NO_ATLAS, shardSize: 100 };
  assert.equal((await buildIndex({ root, config })).ok, true);
  const before = await manifestOf(root);
  assert.deepEqual(
    before.shards?.map((shard) => shard.rows),
    [100, 50],
  );

  await writeEmbeddingShard(root, "00001", second);
  const grown = await buildIndex({ root, config });
  assert.equal(grown.rebuilt, false);
  assert.equal(grown.rowsAdded, 150);
  const after = await manifestOf(root);
  assert.deepEqual(
    after.shards?.map((shard) => [shard.name, shard.rows]),
    [
      ["s00000", 100],
      ["s00001", 100],
      ["s00002", 100],
    ],
  );
  assert.deepEqual(after.shards?.[0], before.shards?.[0], "the full shard is not rebuilt");
  assert.notEqual(after.shards?.[1]?.graphs.image, before.shards?.[1]?.graphs.image);

  const index = await openIndex(root);
  try {
    const groups = index.metadata([3, 170], ["dup_group"]);
    assert.equal(groups[0]?.dup_group, groups[1]?.dup_group, "row 170 joins row 3's group");
    const all = [...first, ...second];
    const vector = (second[120] as FixtureRow).image;
    assert.deepEqual(
      index.search({ vector, k: 10, modality: "image" }).map((hit) => hit.id),
      bruteForce(all, vector, 10),
    );
  } finally {
    index.close();
  }
});

test("an index written before shards (one graph a modality) is read, and grows as its one shard", async () => {
  const root = join(workDir, "unsharded");
  const rows = randomRows("00000", 150, 71);
  await writeEmbeddingShard(root, "00000", rows);
  assert.equal((await buildIndex({ root, config: NO_ATLAS })).ok, true);
  const manifest = await manifestOf(root);
  const shard = manifest.shards?.[0];
  assert.ok(shard !== undefined);
  // The layout of the first index format: index/{image,text}-gNNNNNN.usearch, no shards.
  const graphs = { image: "index/image-g000001.usearch", text: "index/text-g000001.usearch" };
  await rename(join(root, shard.graphs.image), join(root, graphs.image));
  await rename(join(root, shard.graphs.text), join(root, graphs.text));
  const { shards: _shards, shardSize: _size, ...old } = manifest;
  await writeFile(
    join(root, layout.indexManifest()),
    JSON.stringify({ ...old, files: { ...old.files, graphs } }),
  );

  const vector = (rows[33] as FixtureRow).text;
  const index = await openIndex(root);
  try {
    assert.deepEqual(index.heldShards, ["s00000"]);
    assert.deepEqual(
      index.search({ vector, k: 5, modality: "text" }).map((hit) => hit.id),
      bruteForce(rows, vector, 5, () => true, "text"),
    );
  } finally {
    index.close();
  }

  await writeEmbeddingShard(root, "00001", randomRows("00001", 30, 72));
  const grown = await buildIndex({ root, config: NO_ATLAS });
  assert.equal(grown.rebuilt, false, JSON.stringify(grown));
  const after = await manifestOf(root);
  assert.deepEqual(
    after.shards?.map((entry) => [entry.name, entry.rows]),
    [["s00000", 180]],
  );
});

test("a truncated shard graph is reported at load with its path; the other shards answer, marked partial", async () => {
  const root = join(workDir, "truncated");
  const rows = randomRows("00000", 300, 81);
  await writeEmbeddingShard(root, "00000", rows);
  assert.equal((await buildIndex({ root, config: { ...NO_ATLAS, shardSize: 100 } })).ok, true);
  const manifest = await manifestOf(root);
  const damaged = manifest.shards?.[1]?.graphs.text as string;
  await truncate(join(root, damaged), 5000);

  const index = await openIndex(root);
  try {
    assert.equal(index.partial, true);
    assert.deepEqual(index.heldShards, ["s00000", "s00002"]);
    const [unavailable] = index.unavailableShards;
    assert.equal(unavailable?.name, "s00001");
    assert.equal(unavailable?.path, join(root, damaged));
    assert.match(unavailable?.reason ?? "", /truncated/);
    const vector = (rows[150] as FixtureRow).image;
    const found = index.search({ vector, k: 10, modality: "image" }).map((hit) => hit.id);
    const held = rows.map((row, id) => (id >= 100 && id < 200 ? undefined : row));
    const truth = bruteForce(rows, vector, 10, (row) => held.includes(row));
    assert.deepEqual(found, truth, "the best rows of the shards held");
  } finally {
    index.close();
  }
});

test("a shard graph of another dimension is refused at load with one line naming the model", async () => {
  const root = join(workDir, "wrong-dimension");
  const other = join(workDir, "sixteen");
  await writeEmbeddingShard(root, "00000", randomRows("00000", 200, 91));
  await writeEmbeddingShard(other, "00000", randomRows("00000", 200, 92, 16));
  assert.equal((await buildIndex({ root, config: { ...NO_ATLAS, shardSize: 100 } })).ok, true);
  assert.equal(
    (await buildIndex({ root: other, config: { ...NO_ATLAS, shardSize: 100 } })).ok,
    true,
  );
  const target = (await manifestOf(root)).shards?.[0]?.graphs.image as string;
  await copyFile(
    join(other, (await manifestOf(other)).shards?.[0]?.graphs.image as string),
    join(root, target),
  );

  const index = await openIndex(root);
  try {
    assert.deepEqual(index.heldShards, ["s00001"]);
    const reason = index.unavailableShards[0]?.reason ?? "";
    assert.match(reason, /16-d f32 vectors, the index is 32-d: built with another model/);
    assert.equal(reason.includes("\n"), false);
  } finally {
    index.close();
  }
});

test("a process holding some shards answers for their rows only; the merge of two halves is the whole answer", async () => {
  const root = join(workDir, "halves");
  const rows = randomRows("00000", 400, 101);
  await writeEmbeddingShard(root, "00000", rows);
  assert.equal((await buildIndex({ root, config: { ...NO_ATLAS, shardSize: 100 } })).ok, true);
  const left = await openIndex(root, { shards: ["s00000", "s00001"] });
  const right = await openIndex(root, { shards: ["s00002", "s00003"] });
  try {
    const next = seededUniform(3);
    for (let query = 0; query < 10; query++) {
      const vector = randomUnit(next);
      const filters = { minAestheticScore: 5 };
      const a = left.search({ vector, k: 10, modality: "image", filters });
      const b = right.search({ vector, k: 10, modality: "image", filters });
      assert.ok(a.every((hit) => hit.id < 200));
      assert.ok(b.every((hit) => hit.id >= 200));
      assert.equal(a.length, 10);
      const merged = [...a, ...b]
        .sort((x, y) => y.similarity - x.similarity)
        .slice(0, 10)
        .map((hit) => hit.id);
      assert.deepEqual(
        merged,
        bruteForce(rows, vector, 10, (row) => row.aesthetic >= 5),
      );
    }
  } finally {
    left.close();
    right.close();
  }
  await assert.rejects(openIndex(root, { shards: ["s00009"] }), /no shard s00009/);
});

test("index killed while it adds to a sharded index (segment, shard graph, groups, manifest written) leaves an index that opens and answers exactly", async () => {
  const base = join(workDir, "killed-base");
  const first = randomRows("00000", 250, 111);
  const second = randomRows("00001", 3000, 112);
  await writeEmbeddingShard(base, "00000", first);
  const config = { ...NO_ATLAS, shardSize: 100 };
  assert.equal((await buildIndex({ root: base, config })).ok, true);
  await writeEmbeddingShard(base, "00001", second);
  const all = [...first, ...second];
  const indexFiles = (root: string) => [
    ...readdirSync(join(root, "index")),
    ...readdirSync(join(root, "index", "segments")),
  ];
  const killPoints: [string, (files: string[]) => boolean][] = [
    ["a new segment", (files) => files.some((file) => file.startsWith("g000002-"))],
    ["a new shard graph", (files) => files.some((file) => /-s\d{5}-g000002/.test(file))],
    ["the new groups", (files) => files.some((file) => file.startsWith("dup_groups-g000002"))],
  ];
  for (const [position, [what, reached]] of killPoints.entries()) {
    const root = join(workDir, `killed-${position}`);
    await cp(base, root, { recursive: true });
    const ended = await runCliUntilKilled(
      [
        "index",
        "--root",
        root,
        "--shard-size",
        "100",
        "--flat-max-vectors",
        "0",
        "--atlas-points",
        "0",
        "--threads",
        "1",
      ],
      () => reached(indexFiles(root)),
      5,
    );
    assert.equal(ended, "SIGKILL", `killed after ${what}`);
    const manifest = await manifestOf(root);
    assert.ok([250, 3250].includes(manifest.rows), `${what} (${ended}): ${manifest.rows} rows`);
    const index = await openIndex(root);
    try {
      assert.equal(index.partial, false, what);
      const held = all.slice(0, manifest.rows);
      const vector = (second[5] as FixtureRow).image;
      assert.deepEqual(
        index.search({ vector, k: 10, modality: "image" }).map((hit) => hit.id),
        bruteForce(held, vector, 10),
        `${what} (${ended})`,
      );
    } finally {
      index.close();
    }
    const resumed = await buildIndex({ root, config });
    assert.equal(resumed.ok, true, what);
    assert.equal(resumed.rows, 3250, what);
  }
});
