/**
 * The atlas: `clipcrawl index` writes `_atlas/`, the map of the image embeddings, and `serve`
 * answers the Atlas page's routes from it. The root is built from generated embeddings in three
 * well-separated clusters, each with its own caption words, through the real index stage.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { readAtlas } from "../src/formats/atlas/atlas-files.js";
import { layout, shardName } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { encodeNpy } from "../src/io/npy.js";
import { writeParquet } from "../src/io/parquet.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { tempDir } from "./support/temp.js";

const DIMENSIONS = 16;
const ROWS = 300;
const TOPICS = ["sailing boat harbour", "mountain snow summit", "espresso coffee cup"];
const INDEX = "atlas";

let work: string;
let root: string;
let server: RunningServer;
/** punsafe of each row, in row order. */
const punsafe: number[] = [];

/** A deterministic generator in [0, 1). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648;
    return state / 2_147_483_648;
  };
}

async function writeEmbeddings(folder: string): Promise<void> {
  await writeFile(join(folder, "clipcrawl.json"), "{}\n");
  const storage = new LocalStorage(folder);
  const next = random(7);
  const vectors = new Float32Array(ROWS * DIMENSIONS);
  for (let row = 0; row < ROWS; row++) {
    const topic = row % TOPICS.length;
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      vectors[row * DIMENSIONS + dim] = (dim % TOPICS.length === topic ? 3 : 0) + next() - 0.5;
    }
    punsafe.push(row % 10 === 0 ? 0.9 : 0.1);
  }
  const npy = encodeNpy({
    dtype: "<f2",
    shape: [ROWS, DIMENSIONS],
    data: toFloat16Bits(vectors),
  });
  const shard = shardName(0);
  await storage.writeAtomic(layout.imageEmbeddings(shard), npy);
  await storage.writeAtomic(layout.textEmbeddings(shard), npy);
  await writeParquet(
    storage,
    layout.embeddingMetadata(shard),
    [
      { name: "key", type: "VARCHAR", value: (row: number) => `k${String(row).padStart(4, "0")}` },
      { name: "url", type: "VARCHAR", value: (row: number) => `https://img.test/${row}.jpg` },
      {
        name: "caption",
        type: "VARCHAR",
        value: (row: number) => `a photo of the ${TOPICS[row % TOPICS.length]} number ${row}`,
      },
      { name: "similarity", type: "DOUBLE", value: () => 0.3 },
      { name: "language", type: "VARCHAR", value: (row: number) => (row % 2 ? "en" : "de") },
      { name: "punsafe", type: "DOUBLE", value: (row: number) => punsafe[row] ?? null },
      { name: "AESTHETIC_SCORE", type: "DOUBLE", value: () => 5 },
    ] as const,
    Array.from({ length: ROWS }, (_, row) => row),
  );
}

async function get(path: string): Promise<Response> {
  return fetch(new URL(path, server.url));
}

function decodePoints(buffer: ArrayBuffer): { count: number; rows: number[]; xy: Float32Array } {
  const view = new DataView(buffer);
  assert.equal(view.getUint32(0, true), 0x54414343, "CCAT");
  const count = view.getUint32(8, true);
  return {
    count,
    xy: new Float32Array(buffer, 16, count * 2),
    rows: [...new Uint32Array(buffer, 16 + count * 8, count)],
  };
}

describe("the atlas", () => {
  before(async () => {
    work = await tempDir("atlas");
    root = join(work, "root");
    await mkdir(root, { recursive: true });
    await writeEmbeddings(root);
    const indexed = await buildIndex({ root, config: { atlasLayoutSample: 120 } });
    assert.equal(indexed.ok, true, JSON.stringify(indexed));
    assert.equal(indexed.atlas?.built, true);
    server = await serve({ indices: [{ name: INDEX, root, model: null }], config: { port: 0 } });
  });

  after(async () => {
    await server?.close();
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("every row is on the map; laid-out and placed points keep their clusters apart, labelled by their words", async () => {
    const atlas = await readAtlas(new LocalStorage(root));
    assert.ok(atlas !== undefined);
    assert.equal(atlas.manifest.points, ROWS);
    assert.equal(atlas.manifest.method.layoutSample, 120);
    assert.deepEqual(atlas.keys.slice(0, 2), ["k0000", "k0001"]);
    // Each topic's points (UMAP's and the placed ones) sit nearer their own topic's centre.
    const centres = TOPICS.map((_, topic) => {
      let x = 0;
      let y = 0;
      let n = 0;
      for (let row = topic; row < ROWS; row += TOPICS.length) {
        x += atlas.points[row * 2] as number;
        y += atlas.points[row * 2 + 1] as number;
        n++;
      }
      return [x / n, y / n] as const;
    });
    let nearestOwn = 0;
    for (let row = 0; row < ROWS; row++) {
      const distances = centres.map(([x, y]) =>
        Math.hypot(
          (atlas.points[row * 2] as number) - x,
          (atlas.points[row * 2 + 1] as number) - y,
        ),
      );
      if (distances.indexOf(Math.min(...distances)) === row % TOPICS.length) nearestOwn++;
    }
    assert.ok(nearestOwn >= ROWS * 0.95, `${nearestOwn} of ${ROWS} nearest their own topic`);
    const labels = atlas.manifest.clusters.map((cluster) => cluster.label).join(" | ");
    for (const topic of TOPICS) {
      assert.ok(
        topic.split(" ").some((word) => labels.includes(word)),
        `a region is labelled from "${topic}": ${labels}`,
      );
    }
    assert.ok(!labels.includes("photo"), `"photo" is no label: ${labels}`);
  });

  test("a re-run keeps the atlas; a damaged atlas file is rebuilt", async () => {
    const again = await buildIndex({ root, config: { atlasLayoutSample: 120 } });
    assert.equal(again.atlas?.built, false);
    const atlas = await readAtlas(new LocalStorage(root));
    assert.ok(atlas !== undefined);
    const pointsFile = join(root, atlas.manifest.files.points);
    await truncate(pointsFile, 100);
    const repaired = await buildIndex({ root, config: { atlasLayoutSample: 120 } });
    assert.equal(repaired.atlas?.built, true);
    assert.equal((await readAtlas(new LocalStorage(root)))?.manifest.points, ROWS);
  });

  test("the points answer holds every point; max_punsafe leaves out exactly the flagged ones", async () => {
    const described = (await (await get(`/api/atlas/${INDEX}`)).json()) as {
      points: number;
      languages: string[];
      clusters: unknown[];
    };
    assert.equal(described.points, ROWS);
    assert.deepEqual([...described.languages].sort(), ["de", "en"]);
    const all = decodePoints(await (await get(`/api/atlas/${INDEX}/points`)).arrayBuffer());
    assert.equal(all.count, ROWS);
    assert.deepEqual(all.rows, [...Array(ROWS).keys()]);
    const safe = decodePoints(
      await (await get(`/api/atlas/${INDEX}/points?max_punsafe=0.5`)).arrayBuffer(),
    );
    const expected = [...Array(ROWS).keys()].filter((row) => (punsafe[row] as number) <= 0.5);
    assert.deepEqual(safe.rows, expected);
    const bad = await get(`/api/atlas/${INDEX}/points?max_punsafe=2`);
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { field: string }).field, "max_punsafe");
    assert.equal((await get("/api/atlas/nope")).status, 404);
  });

  test("an export by row ids holds those rows, less the flagged ones in safe mode; bad ids are a 400", async () => {
    const answer = await fetch(new URL("/api/export", server.url), {
      method: "POST",
      body: JSON.stringify({
        indice_name: INDEX,
        ids: [3, 10, 4, 3],
        format: "jsonl",
        max_punsafe: 0.5,
      }),
    });
    assert.equal(answer.status, 200);
    const rows = (await answer.text())
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { url: string; key: string; similarity: number | null });
    // Row 10 is flagged (punsafe 0.9); 3 asked twice is exported once.
    assert.deepEqual(
      rows.map((row) => row.key),
      ["k0003", "k0004"],
    );
    assert.equal(rows[0]?.similarity, null);
    for (const ids of [[-1], [1.5], "3", [], [ROWS]]) {
      const refused = await fetch(new URL("/api/export", server.url), {
        method: "POST",
        body: JSON.stringify({ indice_name: INDEX, ids, format: "csv" }),
      });
      assert.equal(refused.status, 400, JSON.stringify(ids));
      assert.equal(((await refused.json()) as { field: string }).field, "ids");
    }
  });

  test("an atlas of an earlier index is matched by key; a sample gone from the index leaves the map", async () => {
    const manifestPath = join(root, "_atlas", "manifest.json");
    const original = await readFile(manifestPath, "utf8");
    const manifest = JSON.parse(original) as {
      indexGeneration: number;
      files: { keys: string };
    };
    const keysPath = join(root, manifest.files.keys);
    const keys = await readFile(keysPath, "utf8");
    try {
      manifest.indexGeneration += 100;
      await writeFile(keysPath, keys.replace("k0005\n", "removed-sample\n"));
      await writeFile(manifestPath, JSON.stringify(manifest));
      const described = (await (await get(`/api/atlas/${INDEX}`)).json()) as {
        points: number;
        rejoined: boolean;
      };
      assert.equal(described.rejoined, true);
      assert.equal(described.points, ROWS - 1);
      const points = decodePoints(await (await get(`/api/atlas/${INDEX}/points`)).arrayBuffer());
      assert.ok(!points.rows.includes(5));
    } finally {
      await writeFile(keysPath, keys);
      await writeFile(manifestPath, original);
    }
  });

  test("a damaged atlas is a 503 naming the file and the fix; a root without one is a 404", async () => {
    const atlas = await readAtlas(new LocalStorage(root));
    assert.ok(atlas !== undefined);
    const rowsFile = join(root, atlas.manifest.files.rows);
    const bytes = await readFile(rowsFile);
    try {
      await truncate(rowsFile, 10);
      // A new manifest stamp makes the server read the atlas again.
      const manifestPath = join(root, "_atlas", "manifest.json");
      await writeFile(manifestPath, `${await readFile(manifestPath, "utf8")}\n`);
      const damaged = await get(`/api/atlas/${INDEX}`);
      assert.equal(damaged.status, 503);
      const message = ((await damaged.json()) as { error: string }).error;
      assert.match(message, /rows\.u32: 10 bytes/);
      assert.match(message, /run clipcrawl index/);
    } finally {
      await writeFile(rowsFile, bytes);
    }
    await rm(join(root, "_atlas"), { recursive: true, force: true });
    const missing = await get(`/api/atlas/${INDEX}`);
    assert.equal(missing.status, 404);
    assert.match(((await missing.json()) as { error: string }).error, /atlasPoints/);
  });
});
