import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { openIndex } from "../src/formats/index/clip-index.js";
import { type IndexManifest, indexShards } from "../src/formats/index/index-manifest.js";
import { IvfPqIndex } from "../src/formats/index/ivf-pq.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { encodeNpy } from "../src/io/npy.js";
import { type ParquetColumn, writeParquet } from "../src/io/parquet.js";
import { fromFloat16Bits, toFloat16Bits } from "../src/models/float16.js";
import { serve } from "../src/server/serve.js";
import { ShardThreads } from "../src/server/shard-threads.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { indexConfigSchema } from "../src/stages/index/config.js";
import { chooseIndexTier } from "../src/stages/index/index-tier.js";
import { tempDir } from "./support/temp.js";

const DIMENSIONS = 32;

interface Row {
  key: string;
  image: Float32Array;
  text: Float32Array;
  punsafe: number;
}

/** Normalised and rounded to float16, as embed stores vectors. */
function unit(values: Float32Array): Float32Array {
  const norm = Math.sqrt(values.reduce((sum, value) => sum + value * value, 0));
  return fromFloat16Bits(toFloat16Bits(values.map((value) => value / norm)));
}

const dot = (left: Float32Array, right: Float32Array) =>
  left.reduce((sum, value, index) => sum + value * (right[index] as number), 0);

/** CLIP-like rows: around 30 centres shared by every call (the same mixture), not uniform. */
function clusteredRows(shard: string, count: number, seed: number): Row[] {
  const centresRandom = seededUniform(1);
  const centres = Array.from({ length: 30 }, () =>
    unit(Float32Array.from({ length: DIMENSIONS }, () => centresRandom() * 2 - 1)),
  );
  const next = seededUniform(seed);
  const around = () => {
    const centre = centres[Math.floor(next() * centres.length)] as Float32Array;
    return unit(centre.map((value) => value + (next() * 2 - 1) * 0.35));
  };
  return Array.from({ length: count }, (_, index) => ({
    key: `${shard}${String(index).padStart(4, "0")}`,
    image: around(),
    text: around(),
    punsafe: next(),
  }));
}

async function writeEmbeddingShard(root: string, shard: string, rows: readonly Row[]) {
  const storage = new LocalStorage(root);
  const matrix = (side: "image" | "text") => {
    const data = new Float32Array(rows.length * DIMENSIONS);
    rows.forEach((row, index) => {
      data.set(row[side], index * DIMENSIONS);
    });
    return encodeNpy({ dtype: "<f2", shape: [rows.length, DIMENSIONS], data: toFloat16Bits(data) });
  };
  await storage.writeAtomic(layout.imageEmbeddings(shard), matrix("image"));
  await storage.writeAtomic(layout.textEmbeddings(shard), matrix("text"));
  const columns: ParquetColumn<Row>[] = [
    { name: "key", type: "VARCHAR", value: (row) => row.key },
    { name: "url", type: "VARCHAR", value: (row) => `https://img.example/${row.key}.jpg` },
    { name: "caption", type: "VARCHAR", value: (row) => `caption of ${row.key}` },
    { name: "similarity", type: "DOUBLE", value: (row) => dot(row.image, row.text) },
    { name: "language", type: "VARCHAR", value: () => "en" },
    { name: "width", type: "INTEGER", value: () => 256 },
    { name: "height", type: "INTEGER", value: () => 256 },
    { name: "punsafe", type: "DOUBLE", value: (row) => row.punsafe },
    { name: "pwatermark", type: "DOUBLE", value: () => 0.1 },
    { name: "AESTHETIC_SCORE", type: "DOUBLE", value: () => 5 },
  ];
  await writeParquet(storage, layout.embeddingMetadata(shard), columns, rows);
}

function bruteForce(rows: readonly Row[], query: Float32Array, k: number, keep = (_: Row) => true) {
  return rows
    .map((row, id) => ({ id, score: dot(row.image, query), keep: keep(row) }))
    .filter((entry) => entry.keep)
    .sort((a, b) => b.score - a.score)
    .slice(0, k)
    .map((entry) => entry.id);
}

let workDir: string;
let root: string;
let rows: Row[];
let manifest: IndexManifest;

before(async () => {
  workDir = await tempDir("index-compressed");
  root = join(workDir, "root");
  rows = clusteredRows("00000", 3000, 2);
  await writeEmbeddingShard(root, "00000", rows);
  const summary = await buildIndex({ root, config: { threads: 1, tier: "compressed" } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.match(
    summary.tierReason ?? "",
    /^compressed \(IVF\d+,PQ32, .*\): index\.tier is compressed$/,
  );
  manifest = JSON.parse(await new LocalStorage(root).readText(layout.indexManifest()));
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

test("a compressed index answers with recall@10 ≥ 0.9, filtered queries return k, within 150 bytes a row", async () => {
  assert.equal(manifest.params.tier, "compressed");
  assert.ok(manifest.graphBytes / 2 / 3000 <= 150, `${manifest.graphBytes / 2 / 3000} bytes a row`);
  const index = await openIndex(root);
  try {
    const queries = clusteredRows("q", 30, 77);
    let hits = 0;
    for (const query of queries) {
      const report = index.searchWithReport({ vector: query.image, k: 10, modality: "image" });
      assert.equal(report.path, "graph");
      const truth = new Set(bruteForce(rows, query.image, 10));
      for (const result of report.results) if (truth.has(result.id)) hits++;
      const best = report.results[0];
      assert.ok(best !== undefined);
      const exact = dot((rows[best.id] as Row).image, query.image);
      assert.ok(Math.abs(best.similarity - exact) < 1e-3, "similarities are the re-rank's, exact");
    }
    assert.ok(hits / 300 >= 0.9, `recall@10 ${hits / 300}`);

    const query = (queries[0] as Row).image;
    const filtered = index.search({
      vector: query,
      k: 10,
      modality: "image",
      filters: { maxPunsafe: 0.05 },
    });
    assert.equal(filtered.length, 10);
    for (const result of filtered) assert.ok((rows[result.id] as Row).punsafe <= 0.05);
  } finally {
    index.close();
  }
});

test("serve answers k-NN queries from a compressed index", async () => {
  const server = await serve({
    indices: [{ name: "compressed", root, model: null }],
    config: { port: 0, rateLimitPerMinute: 0 },
  });
  try {
    const row = 1234;
    const response = await fetch(`${server.url}/knn-service`, {
      method: "POST",
      body: JSON.stringify({
        embedding_input: [...(rows[row] as Row).image],
        modality: "image",
        num_images: 5,
        indice_name: "compressed",
      }),
    });
    assert.equal(response.status, 200);
    const results = (await response.json()) as { id: number; similarity: number }[];
    assert.equal(results.length, 5);
    assert.equal(results[0]?.id, row);
    assert.ok(Math.abs((results[0]?.similarity ?? 0) - 1) < 1e-3);
  } finally {
    await server.close();
  }
});

test("a compressed index written before shards (its files in files.graphs) still opens and answers", async () => {
  const storage = new LocalStorage(root);
  const original = await storage.readText(layout.indexManifest());
  const { shards: _shards, shardSize: _shardSize, ...rest } = manifest;
  const unsharded: IndexManifest = {
    ...rest,
    files: { ...manifest.files, graphs: indexShards(manifest)[0]?.graphs },
  };

  try {
    await storage.writeAtomic(layout.indexManifest(), Buffer.from(JSON.stringify(unsharded)));
    const index = await openIndex(root);
    try {
      assert.deepEqual(index.heldShards, ["s00000"]);
      assert.equal(index.partial, false);
      const found = index.search({ vector: (rows[42] as Row).image, k: 1, modality: "image" });
      assert.equal(found[0]?.id, 42);
    } finally {
      index.close();
    }
  } finally {
    await storage.writeAtomic(layout.indexManifest(), Buffer.from(original));
  }
});

test("a new shard extends a compressed index without retraining; its rows are found", async () => {
  const dir = join(workDir, "extend");
  const first = clusteredRows("00000", 1500, 3);
  const second = clusteredRows("00001", 500, 4);
  await writeEmbeddingShard(dir, "00000", first);
  const one = await buildIndex({ root: dir, config: { threads: 1, tier: "compressed" } });
  assert.equal(one.ok, true, JSON.stringify(one));
  await writeEmbeddingShard(dir, "00001", second);
  const two = await buildIndex({ root: dir, config: { threads: 1, tier: "compressed" } });
  assert.equal(two.ok, true, JSON.stringify(two));
  assert.equal(two.rebuilt, false);
  assert.equal(two.rows, 2000);
  assert.match(two.tierReason ?? "", /^compressed: extends the existing index \(1500 rows\)/);
  const index = await openIndex(dir);
  try {
    for (const row of [0, 1499, 1500, 1999]) {
      const vector = (row < 1500 ? first[row] : second[row - 1500]) as Row;
      const found = index.search({ vector: vector.text, k: 1, modality: "text" });
      assert.equal(found[0]?.id, row);
    }
  } finally {
    index.close();
  }
});

test("auto chooses the compressed tier when the smallest in-memory graph is over the budget, and says why", () => {
  const config = (values: object) => indexConfigSchema.parse(values);
  const big = chooseIndexTier(config({ memoryBudgetMb: 1000 }), 5_000_000, 512);
  assert.equal(big.tier, "compressed");
  assert.match(big.reason, /IVF4096,PQ128/);
  assert.match(
    big.reason,
    /the smallest in-memory graph, HNSW i8 M=8 needs \d+ MB for 5000000 rows, is over the 1000 MB budget/,
  );
  assert.ok((big.compressedBytes ?? 0) / 2 / 5_000_000 <= 150);
  const fits = chooseIndexTier(config({ memoryBudgetMb: 16_000 }), 1_000_000, 512);
  assert.equal(fits.tier, "memory");
  assert.match(fits.reason, /within the 16000 MB budget/);
  assert.equal(
    chooseIndexTier(config({ memoryBudgetMb: 1, tier: "memory" }), 1e6, 512).tier,
    "memory",
  );
  assert.equal(chooseIndexTier(config({ tier: "compressed" }), 100, 512).tier, "memory");
  assert.equal(chooseIndexTier(config({ memoryBudgetMb: 1 }), 500, 512).tier, "memory");
});

/** The one shard's file of a modality, and why openIndex could not hold it. */
async function unavailableReason(path: string): Promise<string> {
  const index = await openIndex(root);
  try {
    assert.equal(index.partial, true);
    assert.deepEqual(index.heldShards, []);
    const [unavailable] = index.unavailableShards;
    assert.equal(unavailable?.path, path);
    return unavailable?.reason ?? "";
  } finally {
    index.close();
  }
}

test("a damaged compressed index file is reported at load with its path", async () => {
  const storage = new LocalStorage(root);
  const path = await storage.localPath(indexShards(manifest)[0]?.graphs.image as string);
  const original = await readFile(path);
  try {
    const damaged = Buffer.from(original);
    damaged[damaged.length - 3] = (damaged[damaged.length - 3] as number) ^ 0xff;
    await writeFile(path, damaged);
    assert.equal(await unavailableReason(path), "checksum mismatch (damaged)");
    await writeFile(path, original.subarray(0, 1000));
    assert.match(await unavailableReason(path), /^1000 bytes, the header implies/);
  } finally {
    await writeFile(path, original);
  }
});

test("a compressed index file built for another dimension is refused at load with one line", async () => {
  const storage = new LocalStorage(root);
  const path = await storage.localPath(indexShards(manifest)[0]?.graphs.text as string);
  const original = await readFile(path);
  try {
    const other = clusteredRows("x", 300, 9).flatMap((row) => [...row.image.subarray(0, 16)]);
    const foreign = await IvfPqIndex.build(Float32Array.from(other), 16, {
      lists: 2,
      subQuantizers: 8,
      pointsPerList: 100,
      pointsPerCode: 1,
      iterations: 2,
      threads: 1,
    });
    await writeFile(path, foreign.encode());
    assert.equal(await unavailableReason(path), "built for 16-d vectors, the index holds 32-d");
  } finally {
    await writeFile(path, original);
  }
});

test("a compressed index of 3 shards (the last too small to train on) answers with recall@10 ≥ 0.9, the same through serve's shard threads", async () => {
  const dir = join(workDir, "shards");
  const first = clusteredRows("00000", 2000, 5);
  const second = clusteredRows("00001", 100, 6);
  const all = [...first, ...second];
  const config = { threads: 1, tier: "compressed" as const, shardSize: 1000, atlasPoints: 0 };
  await writeEmbeddingShard(dir, "00000", first);
  assert.equal((await buildIndex({ root: dir, config })).ok, true);
  const storage = new LocalStorage(dir);
  const before = JSON.parse(await storage.readText(layout.indexManifest())) as IndexManifest;
  await writeEmbeddingShard(dir, "00001", second);
  const summary = await buildIndex({ root: dir, config });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.rebuilt, false);
  const sharded = JSON.parse(await storage.readText(layout.indexManifest())) as IndexManifest;
  assert.deepEqual(
    sharded.shards?.map((shard) => [shard.name, shard.firstId, shard.rows]),
    [
      ["s00000", 0, 1000],
      ["s00001", 1000, 1000],
      ["s00002", 2000, 100],
    ],
  );
  for (const shard of sharded.shards ?? []) {
    assert.match(shard.graphs.image, new RegExp(`^index/image-${shard.name}-g\\d{6}\\.ivfpq$`));
  }
  // Adding rows never rewrites a full shard: s00000 and s00001 keep their files.
  assert.deepEqual(sharded.shards?.slice(0, 2), before.shards);
  const files = await storage.list(layout.indexFolder());
  assert.equal(files.filter((name) => name.endsWith(".ivfpq")).length, 6, files.join(" "));

  const index = await openIndex(dir);
  const threads = new ShardThreads(2);
  const server = await serve({
    indices: [{ name: "sharded", root: dir, model: null }],
    config: { port: 0, rateLimitPerMinute: 0, shardThreads: 2 },
  });
  try {
    const searcher = threads.searcher(index);
    assert.ok(searcher !== undefined, "3 shards held: searched on threads");
    const queries = clusteredRows("q", 30, 78);
    let hits = 0;
    for (const query of queries) {
      const search = { vector: query.image, k: 10, modality: "image" as const };
      const report = index.searchWithReport(search);
      assert.equal(report.path, "graph");
      const truth = new Set(bruteForce(all, query.image, 10));
      for (const result of report.results) if (truth.has(result.id)) hits++;
      const onThreads = await index.searchWith(search, searcher);
      assert.deepEqual(onThreads.results, report.results);
    }
    assert.ok(hits / 300 >= 0.9, `recall@10 ${hits / 300}`);

    // Rows of every shard, the small one included, are found through serve's shard threads.
    for (const row of [5, 1500, 2050]) {
      const response = await fetch(`${server.url}/knn-service`, {
        method: "POST",
        body: JSON.stringify({
          embedding_input: [...(all[row] as Row).text],
          modality: "text",
          num_images: 3,
          indice_name: "sharded",
        }),
      });
      assert.equal(response.status, 200);
      const results = (await response.json()) as { id: number; similarity: number }[];
      assert.equal(results[0]?.id, row);
      assert.ok(Math.abs((results[0]?.similarity ?? 0) - 1) < 1e-3);
    }
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const shard of ["s00000", "s00001", "s00002"]) {
      assert.match(
        metrics,
        new RegExp(`clipcrawl_shard_duration_seconds_count\\{index="sharded",shard="${shard}"`),
      );
    }
  } finally {
    await server.close();
    await threads.close();
    index.close();
  }
});

test("a compressed index's near-duplicate groups are brute force's: twins in one shard, across shards and across builds", async () => {
  const dir = join(workDir, "twins");
  const config = { threads: 2, tier: "compressed" as const, shardSize: 1000, atlasPoints: 0 };
  const noise = seededUniform(90);
  const twin = (row: Row, key: string): Row => ({
    ...row,
    key,
    image: unit(row.image.map((value) => value + (noise() * 2 - 1) * 0.02)),
  });
  const first = clusteredRows("00000", 1200, 11);
  const second = clusteredRows("00001", 900, 12);
  // In shard s00000; s00000 → s00001 (the same embeddings file); embeddings file 1 → 0.
  first[700] = twin(first[5] as Row, "00000-twin-a");
  first[1100] = twin(first[10] as Row, "00000-twin-b");
  second[400] = twin(first[20] as Row, "00001-twin-c");
  second[401] = twin(second[400] as Row, "00001-twin-d");
  await writeEmbeddingShard(dir, "00000", first);
  assert.equal((await buildIndex({ root: dir, config })).ok, true);
  await writeEmbeddingShard(dir, "00001", second);
  const summary = await buildIndex({ root: dir, config });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.rebuilt, false);

  const all = [...first, ...second];
  const expected = all.map((_, id) => id);
  const root = (id: number): number => (expected[id] === id ? id : root(expected[id] as number));
  for (let a = 0; a < all.length; a++) {
    for (let b = a + 1; b < all.length; b++) {
      if (dot((all[a] as Row).image, (all[b] as Row).image) < 0.96) continue;
      const [ra, rb] = [root(a), root(b)];
      if (ra !== rb) expected[Math.max(ra, rb)] = Math.min(ra, rb);
    }
  }
  const index = await openIndex(dir);
  try {
    const groups = index.metadata(
      all.map((_, id) => id),
      ["dup_group"],
    );
    const found = groups.map((row) => Number(row.dup_group));
    assert.deepEqual(
      found.map((group, id) => [id, group]).filter(([id, group]) => id !== group),
      all.map((_, id) => [id, root(id)]).filter(([id, group]) => id !== group),
    );
    assert.deepEqual(
      [700, 1100, 1600, 1601].map((id) => found[id]),
      [5, 10, 20, 20],
    );
  } finally {
    index.close();
  }
});

test("an index's shards share one training, made once enough rows have come however small the embeddings shards", async () => {
  const dir = join(workDir, "shared-training");
  const config = { threads: 2, tier: "compressed" as const, shardSize: 1000, atlasPoints: 0 };
  const all: Row[] = [];
  for (let shard = 0; shard < 12; shard++) {
    const name = String(shard).padStart(5, "0");
    const rows = clusteredRows(name, 200, 40 + shard);
    all.push(...rows);
    await writeEmbeddingShard(dir, name, rows);
  }
  const summary = await buildIndex({ root: dir, config });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  const storage = new LocalStorage(dir);
  const manifest = JSON.parse(await storage.readText(layout.indexManifest())) as IndexManifest;
  const shards = indexShards(manifest);
  assert.deepEqual(
    shards.map((shard) => shard.rows),
    [1000, 1000, 400],
  );
  const centroidsOf = async (path: string) => {
    const bytes = await readFile(join(dir, path));
    const lists = bytes.readUInt32LE(16);
    return { lists, centroids: bytes.subarray(32, 32 + lists * DIMENSIONS * 2).toString("hex") };
  };
  for (const modality of ["image", "text"] as const) {
    const files = await Promise.all(shards.map((shard) => centroidsOf(shard.graphs[modality])));
    // Trained on the first 1,000 rows (five 200-row files), not on the first file's 200.
    assert.equal(files[0]?.lists, Math.floor(1000 / 39));
    for (const file of files.slice(1)) assert.deepEqual(file, files[0]);
  }
  const index = await openIndex(dir);
  try {
    let hits = 0;
    for (const query of clusteredRows("q", 30, 79)) {
      const truth = new Set(bruteForce(all, query.image, 10));
      const found = index.search({ vector: query.image, k: 10, modality: "image" });
      for (const result of found) if (truth.has(result.id)) hits++;
    }
    assert.ok(hits / 300 >= 0.9, `recall@10 ${hits / 300}`);
  } finally {
    index.close();
  }
});
