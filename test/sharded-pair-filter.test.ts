import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { GrowingBloomFilter } from "../src/formats/bloom-filter.js";
import { HASH_LANES, hashPair } from "../src/formats/pair-hash.js";
import { PIPELINE, stageNamed } from "../src/pipeline/pipeline.js";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { RunKeys } from "../src/runner/distributed/queue-names.js";
import { startShardWorker } from "../src/runner/distributed/shard-worker.js";
import {
  ShardedPairFilter,
  splitByInstance,
} from "../src/runner/distributed/sharded-pair-filter.js";
import { extract } from "../src/stages/extract/extract.js";
import { runCli } from "./support/cli.js";
import { PrivateRedis, redisSkipReason, uniquePrefix } from "./support/redis.js";
import { parquetRows } from "./support/run-root.js";
import { tempDir } from "./support/temp.js";

// Only the private instances are used; the skip says when redis-server is missing.
const skip = await redisSkipReason();
const instances: PrivateRedis[] = [];
const clients: Redis[] = [];

before(async () => {
  if (skip !== undefined) return;
  instances.push(await PrivateRedis.start(), await PrivateRedis.start());
});

after(async () => {
  for (const client of clients) client.disconnect();
  for (const instance of instances) await instance.stop();
});

function connect(url: string): Redis {
  const client = new Redis(url);
  clients.push(client);
  return client;
}

/** Shard `index` of a made-up crawl: pairs that repeat within and across shards. */
function shardPairs(index: number, rows: number): Uint32Array {
  const lanes = new Uint32Array(rows * HASH_LANES);
  for (let row = 0; row < rows; row++) {
    const key =
      row % 3 === 0 ? `${index - 1}:${row}` : row % 7 === 0 ? `all:${row % 50}` : `${index}:${row}`;
    hashPair(`https://img.example/${key}.jpg`, `a caption for ${key}`, lanes, row * HASH_LANES);
  }
  return lanes;
}

test("pairs are split between instances by hash, evenly, each pair always to the same one", () => {
  const lanes = shardPairs(0, 10_000);
  const split = splitByInstance(lanes, 2);
  const [a, b] = split.map((part) => part.rows.length) as [number, number];
  assert.equal(a + b, 10_000);
  assert.ok(Math.abs(a - b) < 400, `even split (${a} / ${b})`);
  const again = splitByInstance(shardPairs(1, 10_000), 2);
  // Row 7 of every shard is the same pair: same instance.
  const instanceOfRow = (parts: typeof split, row: number) =>
    parts.findIndex((part) => part.rows.includes(row));
  assert.equal(instanceOfRow(split, 7), instanceOfRow(again, 7));
});

test("deterministic mode over two instances drops exactly the rows the local filter drops, shard by shard, as it grows", {
  skip,
}, async () => {
  const [a, b] = instances as [PrivateRedis, PrivateRedis];
  const prefix = uniquePrefix("sharded-det");
  const keys = new RunKeys(prefix, "/data/a", "r1");
  // Grows past its first filter (2 × 5,000 pairs), at a rate that leaves no false positive here.
  const capacity = 10_000;
  const rate = 1e-9;
  const bloom = GrowingBloomFilter.forCapacity(capacity, rate);
  const filter = new ShardedPairFilter([connect(a.url), connect(b.url)], connect(a.url), keys, {
    capacity,
    falsePositiveRate: rate,
    batchPairs: 700,
    mode: "deterministic",
  });
  // Shard 1 waits for shard 0's turn even when it asks first.
  const order: number[] = [];
  const early = filter.duplicates(1, shardPairs(1, 4000)).then((rows) => {
    order.push(1);
    return rows;
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  const expected: number[][] = [];
  for (let index = 0; index < 4; index++) {
    const lanes = shardPairs(index, 4000);
    const local: number[] = [];
    for (let row = 0; row < 4000; row++) {
      if (!bloom.addHash(lanes, row * HASH_LANES)) local.push(row);
    }
    expected.push(local);
  }
  assert.equal(order.length, 0, "shard 1 waits");
  const first = await filter.duplicates(0, shardPairs(0, 4000));
  order.push(0);
  assert.deepEqual([...first], expected[0]);
  assert.deepEqual([...(await early)], expected[1]);
  assert.deepEqual(order, [0, 1]);
  for (const index of [2, 3]) {
    assert.deepEqual(
      [...(await filter.duplicates(index, shardPairs(index, 4000)))],
      expected[index],
    );
  }
  const report = await filter.report();
  assert.equal(report.items, bloom.report().items);
  assert.ok(report.layers >= 2, `each instance's filter grew (${report.layers} filters)`);
  const held = await Promise.all(
    [a, b].map(async (instance) =>
      Number(await connect(instance.url).hget(keys.bloomLayers(), "items:0")),
    ),
  );
  assert.ok(
    held.every((items) => items > 0),
    `both instances hold pairs (${held.join(", ")})`,
  );
  // A retry of shard 2 (its worker died after its turn) gets its first answer back.
  const again = new ShardedPairFilter([connect(a.url), connect(b.url)], connect(a.url), keys, {
    capacity,
    falsePositiveRate: rate,
    batchPairs: 700,
    mode: "deterministic",
  });
  assert.deepEqual([...(await again.duplicates(2, shardPairs(2, 4000)))], expected[2]);
});

test("parallel mode: eight workers at once over two instances keep every distinct pair exactly once, and a retry gets its answer back", {
  skip,
}, async () => {
  const [a, b] = instances as [PrivateRedis, PrivateRedis];
  const prefix = uniquePrefix("sharded-par");
  const keys = new RunKeys(prefix, "/data/b", "r1");
  const options = {
    capacity: 1_000_000,
    falsePositiveRate: 1e-9,
    batchPairs: 256,
    mode: "parallel" as const,
  };
  // Each worker has its own connections, as separate processes would.
  const workers = Array.from(
    { length: 8 },
    () => new ShardedPairFilter([connect(a.url), connect(b.url)], connect(a.url), keys, options),
  );
  const shards = Array.from({ length: 24 }, (_, index) => shardPairs(index, 3000));
  const answers: Uint32Array[] = new Array(shards.length);
  let next = 0;
  await Promise.all(
    workers.map(async (worker) => {
      for (let index = next++; index < shards.length; index = next++) {
        answers[index] = await worker.duplicates(index, shards[index] as Uint32Array);
      }
    }),
  );
  const kept = new Map<string, number>();
  const distinct = new Set<string>();
  shards.forEach((lanes, index) => {
    const dropped = new Set(answers[index]);
    for (let row = 0; row * HASH_LANES < lanes.length; row++) {
      const pair = lanes.subarray(row * HASH_LANES, (row + 1) * HASH_LANES).join(".");
      distinct.add(pair);
      if (!dropped.has(row)) kept.set(pair, (kept.get(pair) ?? 0) + 1);
    }
  });
  assert.equal(kept.size, distinct.size, "no distinct pair lost");
  const twice = [...kept.values()].filter((times) => times > 1).length;
  assert.equal(twice, 0, "no pair kept twice");
  assert.ok(distinct.size < 24 * 3000, "the shards did repeat pairs");
  const retried = await new ShardedPairFilter(
    [connect(a.url), connect(b.url)],
    connect(a.url),
    keys,
    options,
  ).duplicates(5, shards[5] as Uint32Array);
  assert.deepEqual([...retried], [...(answers[5] as Uint32Array)]);
});

test("a distributed extract in deterministic mode over two instances writes a local extract's candidates, row for row", {
  skip,
  timeout: 300_000,
}, async () => {
  const [a, b] = instances as [PrivateRedis, PrivateRedis];
  const dir = await tempDir("sharded-extract");
  const inputs: string[] = [];
  for (let index = 0; index < 4; index++) {
    const path = join(dir, `in-${index}.warc.wat.gz`);
    await writeWatFile(path, { seed: 23, fileIndex: index, pages: 40 });
    inputs.push(path);
  }
  const local = join(dir, "local");
  const localSummary = await extract({ root: local, inputs, config: { workers: 1 } });
  assert.ok(localSummary.totals.dropped.duplicate > 0, "the files share pairs");

  const prefix = uniquePrefix("sharded-run");
  const pipeline = [stageNamed(PIPELINE, "extract")];
  const queue = { url: a.url, prefix };
  const workers = await Promise.all(
    ["x1", "x2"].map((name) => startShardWorker({ queue, pipeline, concurrency: 2, name })),
  );
  try {
    const root = join(dir, "distributed");
    const summary = await runDistributed({
      root,
      inputs,
      queue,
      pipeline,
      pollMs: 100,
      config: { extract: { workers: 1, dedupRedis: [a.url, b.url], dedupMode: "deterministic" } },
    });
    assert.equal(summary.ok, true, JSON.stringify(summary.failed));
    assert.deepEqual(await parquetRows(root, "candidates"), await parquetRows(local, "candidates"));
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
  }
});

test("a --dedup-redis URL that is malformed, unreachable or listed twice is one line naming it, before any job is queued", {
  skip,
  timeout: 120_000,
}, async () => {
  const [a] = instances as [PrivateRedis];
  const dir = await tempDir("sharded-bad-url");
  const input = join(dir, "in-0.warc.wat.gz");
  await writeWatFile(input, { seed: 5, pages: 3 });
  const root = join(dir, "root");
  await mkdir(root);
  // Never read: the run stops before any stage.
  await writeFile(join(root, "clipcrawl.json"), JSON.stringify({ embed: { model: "no-model" } }));
  const down = "redis://127.0.0.1:1";
  for (const [bad, code, says] of [
    [
      down,
      1,
      /^clipcrawl: --dedup-redis: cannot reach redis:\/\/127\.0\.0\.1:1 \(.+\); start that Redis or fix the URL$/,
    ],
    [
      "not a url",
      2,
      /^clipcrawl: --dedup-redis: not a URL: not a url \(expected redis:\/\/host:6379\)$/,
    ],
    [
      "http://a:6379",
      2,
      /^clipcrawl: --dedup-redis: expected a redis:\/\/ or rediss:\/\/ URL, got http:\/\/a:6379$/,
    ],
    // The same instance twice would hold two filters' keys in one place.
    [a.url, 2, /^clipcrawl: --dedup-redis: redis:\/\/127\.0\.0\.1:\d+ is listed twice$/],
  ] as const) {
    const prefix = uniquePrefix("sharded-bad");
    const result = await runCli(
      [
        "run",
        input,
        "--root",
        join(dir, "root"),
        "--queue",
        a.url,
        "--prefix",
        prefix,
        "--dedup-redis",
        `${a.url},${bad}`,
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(result.code, code, result.stderr);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] as string, says);
    assert.deepEqual(await connect(a.url).keys(`${prefix}:*`), [], "nothing queued");
  }
  const local = await runCli([
    "run",
    input,
    "--root",
    join(dir, "root"),
    "--dedup-mode",
    "parallel",
  ]);
  assert.equal(local.code, 1);
  assert.match(local.stderr, /--dedup-redis and --dedup-mode go with --queue/);
});
