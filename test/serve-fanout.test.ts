import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { openIndex, type SearchFilters } from "../src/formats/index/clip-index.js";
import { serve } from "../src/server/serve.js";
import { ShardThreads } from "../src/server/shard-threads.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { type CliServer, startCliServer } from "./support/cli.js";
import {
  bruteForce,
  type FixtureRow,
  near,
  randomRows,
  randomUnit,
  writeEmbeddingShard,
} from "./support/index-fixture.js";
import { tempDir } from "./support/temp.js";

let workDir: string;
let root: string;
let rows: FixtureRow[];
const started: CliServer[] = [];

before(async () => {
  workDir = await tempDir("serve-fanout");
  root = join(workDir, "root");
  rows = randomRows("00000", 400, 17);
  await writeEmbeddingShard(root, "00000", rows);
  const summary = await buildIndex({
    root,
    config: { threads: 1, flatMaxVectors: 0, atlasPoints: 0, shardSize: 100 },
  });
  assert.equal(summary.ok, true, JSON.stringify(summary));
});

after(async () => {
  await Promise.all(started.map((server) => server.stop("SIGKILL")));
  const { rm } = await import("node:fs/promises");
  await rm(workDir, { recursive: true, force: true });
});

async function startServe(args: string[]): Promise<CliServer> {
  const server = await startCliServer(["serve", "--root", root, "--no-model", ...args]);
  started.push(server);
  return server;
}

async function knn(
  url: string,
  body: Record<string, unknown>,
): Promise<{
  status: number;
  partial: string | null;
  ids: number[];
  rows: Record<string, unknown>[];
}> {
  const response = await fetch(`${url}/knn-service`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = (await response.json()) as Record<string, unknown>[];
  return {
    status: response.status,
    partial: response.headers.get("x-clipcrawl-partial"),
    ids: Array.isArray(answer) ? answer.map((row) => Number(row.id)) : [],
    rows: answer,
  };
}

test("3 serve processes: a front fans out to two shard holders and merges the exact top-k; one stopped gives partial answers, never a 5xx; restarted, full again", async () => {
  const left = await startServe(["--index-shards", "s00000,s00001", "--port", "0"]);
  const right = await startServe(["--index-shards", "s00002,s00003", "--port", "0"]);
  const front = await startServe([
    "--index-shards",
    "none",
    "--shard",
    left.url,
    "--shard",
    right.url,
    "--shard-deadline-ms",
    "3000",
    "--port",
    "0",
  ]);
  const next = seededUniform(23);
  const queries = Array.from({ length: 5 }, () => randomUnit(next));
  const safe = (row: FixtureRow) => row.punsafe === null || row.punsafe <= 0.5;
  for (const vector of queries) {
    const body = { embedding_input: Array.from(vector), modality: "image", num_images: 10 };
    const full = await knn(front.url, body);
    assert.equal(full.status, 200);
    assert.equal(full.partial, null);
    assert.deepEqual(full.ids, bruteForce(rows, vector, 10));
    assert.equal(typeof full.rows[0]?.url, "string", "results carry their metadata");
    const filtered = await knn(front.url, { ...body, use_safety_model: true });
    assert.deepEqual(filtered.ids, bruteForce(rows, vector, 10, safe), "safe mode, k rows");
    const page = await knn(front.url, { ...body, offset: 10 });
    assert.deepEqual(page.ids, bruteForce(rows, vector, 20).slice(10), "the second page");
  }
  const metrics = await (await fetch(`${front.url}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`clipcrawl_shard_duration_seconds_count\\{[^}]*shard="${right.url}"`),
  );

  const port = new URL(right.url).port;
  await right.stop();
  const vector = queries[0] as Float32Array;
  const body = { embedding_input: Array.from(vector), modality: "image", num_images: 10 };
  const partial = await knn(front.url, body);
  assert.equal(partial.status, 200);
  assert.equal(partial.partial, right.url);
  assert.deepEqual(
    partial.ids,
    bruteForce(rows, vector, 10, (row) => rows.indexOf(row) < 200),
    "the best rows of the shards that answered",
  );

  const restarted = await startServe(["--index-shards", "s00002,s00003", "--port", port]);
  assert.equal(restarted.url, right.url);
  const again = await knn(front.url, body);
  assert.equal(again.partial, null);
  assert.deepEqual(again.ids, bruteForce(rows, vector, 10));
});

test("a shard slower than the deadline is left out and named; a shard of another width is refused at start with one line", async () => {
  const holding: import("node:http").ServerResponse[] = [];
  const slow = createServer((_request, response) => {
    holding.push(response);
  });
  await new Promise<void>((resolve) => slow.listen(0, "127.0.0.1", resolve));
  const slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
  const server = await serve({
    indices: [{ name: "local", root, model: null, remoteShards: [slowUrl] }],
    config: { port: 0, shardDeadlineMs: 300 },
    onWarning: () => {},
  });
  try {
    const vector = randomUnit(seededUniform(5));
    const begun = performance.now();
    const answer = await knn(server.url, {
      embedding_input: Array.from(vector),
      modality: "text",
      num_images: 10,
    });
    assert.ok(performance.now() - begun < 2000, "answered at the deadline");
    assert.equal(answer.status, 200);
    assert.equal(answer.partial, slowUrl);
    assert.deepEqual(
      answer.ids,
      bruteForce(rows, vector, 10, () => true, "text"),
    );
  } finally {
    await server.close();
    for (const response of holding) response.destroy();
    slow.close();
  }

  const otherRoot = join(workDir, "sixteen");
  await writeEmbeddingShard(otherRoot, "00000", randomRows("00000", 50, 3, 16));
  await buildIndex({ root: otherRoot, config: { threads: 1, atlasPoints: 0 } });
  const other = await serve({
    indices: [{ name: "other", root: otherRoot, model: null }],
    config: { port: 0 },
  });
  try {
    await assert.rejects(
      serve({
        indices: [{ name: "local", root, model: null, remoteShards: [other.url] }],
        config: { port: 0 },
      }),
      (error: Error) =>
        /shard http:\/\/127\.0\.0\.1:\d+ serves 16-d embeddings, index local is 32-d: built with another model/.test(
          error.message,
        ) && !error.message.includes("\n"),
    );
  } finally {
    await other.close();
  }
});

test("the shards a server holds are searched at once on worker threads, with the same answers as on one thread, filters included", async () => {
  const index = await openIndex(root);
  const threads = new ShardThreads(2);
  try {
    const searcher = threads.searcher(index);
    assert.ok(searcher !== undefined, "4 shards held: searched on threads");
    const next = seededUniform(31);
    const filterSets: SearchFilters[] = [
      {},
      { maxPunsafe: 0.5 },
      { minAestheticScore: 7, deduplicate: true },
      { maxPwatermark: 0.3, languages: ["fr"] },
    ];
    for (let query = 0; query < 5; query++) {
      const vector = randomUnit(next);
      for (const filters of filterSets) {
        for (const modality of ["image", "text"] as const) {
          const search = { vector, k: 10, modality, filters };
          const onThreads = await index.searchWith(search, searcher);
          assert.deepEqual(onThreads.results, index.search(search), JSON.stringify(filters));
          assert.equal(onThreads.results.length, 10);
        }
      }
    }
  } finally {
    await threads.close();
    index.close();
  }

  const server = await serve({
    indices: [{ name: "local", root, model: null }],
    config: { port: 0, shardThreads: 2 },
  });
  try {
    const vector = randomUnit(seededUniform(8));
    const answer = await knn(server.url, {
      embedding_input: Array.from(vector),
      modality: "image",
      num_images: 10,
      use_safety_model: true,
    });
    assert.equal(answer.partial, null);
    assert.deepEqual(
      answer.ids,
      bruteForce(rows, vector, 10, (row) => row.punsafe === null || row.punsafe <= 0.5),
    );
    // Unfiltered, the graph answers (the filtered one may be answered by exact search).
    await knn(server.url, { embedding_input: Array.from(vector), modality: "image" });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    for (const shard of ["s00000", "s00001", "s00002", "s00003"]) {
      assert.match(
        metrics,
        new RegExp(`clipcrawl_shard_duration_seconds_count\\{index="local",shard="${shard}"`),
      );
    }
  } finally {
    await server.close();
  }
});

test("deduplicate holds across processes: near-duplicates held by two shard servers give one result, the best", async () => {
  const dupRoot = join(workDir, "duplicates");
  const dupRows = randomRows("00000", 200, 41);
  const next = seededUniform(42);
  // Row 150 (shard s00001) is a near-copy of row 20 (shard s00000).
  dupRows[150] = {
    ...(dupRows[150] as FixtureRow),
    image: near((dupRows[20] as FixtureRow).image, next, 0.02),
  };
  await writeEmbeddingShard(dupRoot, "00000", dupRows);
  const built = await buildIndex({
    root: dupRoot,
    config: { threads: 1, flatMaxVectors: 0, atlasPoints: 0, shardSize: 100 },
  });
  assert.equal(built.ok, true);
  const holders = await Promise.all(
    ["s00000", "s00001"].map((shard) =>
      serve({
        indices: [{ name: "part", root: dupRoot, model: null, shards: [shard] }],
        config: { port: 0 },
      }),
    ),
  );
  const front = await serve({
    indices: [
      {
        name: "front",
        root: dupRoot,
        model: null,
        shards: [],
        remoteShards: holders.map((holder) => holder.url),
      },
    ],
    config: { port: 0 },
  });
  try {
    const vector = (dupRows[20] as FixtureRow).image;
    const body = { embedding_input: Array.from(vector), modality: "image", num_images: 5 };
    const plain = await knn(front.url, body);
    assert.deepEqual(
      plain.ids.slice(0, 2).sort((a, b) => a - b),
      [20, 150],
      "both copies",
    );
    const deduplicated = await knn(front.url, { ...body, deduplicate: true });
    assert.equal(deduplicated.partial, null);
    assert.equal(deduplicated.ids[0], 20);
    assert.equal(deduplicated.ids.includes(150), false, "the copy on the other server is hidden");
    assert.equal(deduplicated.ids.length, 5, "still k results");
  } finally {
    await front.close();
    await Promise.all(holders.map((holder) => holder.close()));
  }
});
