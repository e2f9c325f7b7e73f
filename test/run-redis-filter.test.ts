import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import {
  GrowingBloomFilter,
  seriesLayerBytes,
  snapshotHeader,
  snapshotLayout,
} from "../src/formats/bloom-filter.js";
import { HASH_LANES, hashPair } from "../src/formats/pair-hash.js";
import { RunKeys } from "../src/runner/distributed/queue-names.js";
import { RedisPairFilter } from "../src/runner/distributed/redis-pair-filter.js";
import type { PairFilterBits } from "../src/shard/stage-definition.js";
import { deletePrefix, REDIS_URL, redisSkipReason, uniquePrefix } from "./support/redis.js";

const skip = await redisSkipReason();
const prefix = uniquePrefix("filter");
let redis: Redis;

before(() => {
  if (skip === undefined) redis = new Redis(REDIS_URL);
});

after(async () => {
  if (skip !== undefined) return;
  redis.disconnect();
  await deletePrefix(REDIS_URL, prefix);
});

/** Shard `index` of a made-up crawl: pairs that repeat within and across shards. */
function shardPairs(index: number, rows: number): Uint32Array {
  const lanes = new Uint32Array(rows * HASH_LANES);
  for (let row = 0; row < rows; row++) {
    // One pair in three is shared with the shard before, one in seven with any shard.
    const key =
      row % 3 === 0 ? `${index - 1}:${row}` : row % 7 === 0 ? `all:${row % 50}` : `${index}:${row}`;
    hashPair(`https://img.example/${key}.jpg`, `a caption for ${key}`, lanes, row * HASH_LANES);
  }
  return lanes;
}

function localAnswers(bloom: GrowingBloomFilter, lanes: Uint32Array): number[] {
  const dropped: number[] = [];
  for (let row = 0; row * HASH_LANES < lanes.length; row++) {
    if (!bloom.addHash(lanes, row * HASH_LANES)) dropped.push(row);
  }
  return dropped;
}

test("the Redis filter answers exactly as the local growing Bloom filter, shard by shard, as it grows", {
  skip,
}, async () => {
  // A small first filter filled past its capacity: the series grows, and false positives
  // happen and must match too.
  const capacity = 2000;
  const rate = 0.01;
  const bloom = GrowingBloomFilter.forCapacity(capacity, rate);
  const shared = new RedisPairFilter(redis, new RunKeys(prefix, "/data/a", "r1"), {
    capacity,
    falsePositiveRate: rate,
    batchPairs: 300,
  });
  let drops = 0;
  for (let index = 0; index < 6; index++) {
    const lanes = shardPairs(index, 1000);
    const expected = localAnswers(bloom, lanes);
    const actual = [...(await shared.duplicates(index, lanes))];
    assert.deepEqual(actual, expected, `shard ${index}`);
    drops += actual.length;
  }
  assert.ok(drops > 400, `repeats were found (${drops})`);
  const report = await shared.report();
  const local = bloom.report();
  assert.equal(report.items, local.items);
  assert.equal(report.bits, local.bits);
  assert.equal(report.layers, local.layers);
  assert.ok(report.layers >= 2, `the filter grew (${report.layers} filters)`);
});

test("shards take turns in input order, a retry gets its first answer back, and a passed turn lets the next go", {
  skip,
}, async () => {
  const keys = new RunKeys(prefix, "/data/b", "r1");
  const options = { capacity: 5000, falsePositiveRate: 0.001, batchPairs: 100 };
  const filter = new RedisPairFilter(redis, keys, options);
  const order: number[] = [];
  const second = filter.duplicates(1, shardPairs(1, 400)).then((rows) => {
    order.push(1);
    return rows;
  });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(order.length, 0, "shard 1 waits for shard 0's turn");
  const first = await filter.duplicates(0, shardPairs(0, 400));
  order.push(0);
  const secondRows = await second;
  assert.deepEqual(order, [0, 1]);

  // A retry of shard 1 (its worker died after its turn) gets the same rows, though every pair
  // of it is in the filter now.
  const again = await new RedisPairFilter(redis, keys, options).duplicates(1, shardPairs(1, 400));
  assert.deepEqual([...again], [...secondRows]);
  assert.ok(first.length < secondRows.length);

  // Shard 2's input cannot be read: it passes its turn, and shard 3 goes on.
  await filter.pass(2);
  const third = await filter.duplicates(3, shardPairs(3, 50));
  assert.ok(third.length >= 0);
  // Read later after all, shard 2 is filtered out of turn against everything so far.
  const late = await filter.duplicates(2, shardPairs(2, 50));
  assert.ok(late.length > 0);
});

test("a shard waiting for a turn that will not come is told so, and may pass that turn", {
  skip,
}, async () => {
  const keys = new RunKeys(prefix, "/data/c", "r1");
  const seen: number[] = [];
  const filter: RedisPairFilter = new RedisPairFilter(redis, keys, {
    capacity: 5000,
    falsePositiveRate: 0.001,
    whileWaiting: async (cursor) => {
      seen.push(cursor);
      // Shard 0's job failed for good without its turn: pass it for it.
      await filter.passTurn(cursor);
    },
  });
  const rows = await filter.duplicates(1, shardPairs(1, 20));
  assert.deepEqual([...rows], []);
  assert.deepEqual(seen, [0]);
});

/** The bits of a snapshot, as a restore reads them: a slice of one filter at a time. */
function snapshotBits(snapshot: Uint8Array): PairFilterBits {
  const bytes = Buffer.from(snapshot);
  const { series, layerOffsets } = snapshotLayout(bytes, bytes.byteLength);
  const read = async (layer: number, offset: number, length: number) => {
    const at = (layerOffsets[layer] as number) + offset;
    return bytes.subarray(at, at + length);
  };
  return { series, read };
}

/** What the Redis filter holds, as a snapshot's bytes. */
async function heldSnapshot(filter: RedisPairFilter, label: string): Promise<Buffer> {
  const held = await filter.held();
  assert.ok(held !== undefined, "the filter holds whole shards");
  const parts = [snapshotHeader(label, held.bits.series)];
  for (const layer of held.bits.series.items.keys()) {
    parts.push(
      Buffer.from(await held.bits.read(layer, 0, seriesLayerBytes(held.bits.series, layer))),
    );
  }
  return Buffer.concat(parts);
}

test("the Redis filter keeps its bits where the local filter does: a snapshot goes in and comes out byte for byte", {
  skip,
}, async () => {
  const capacity = 2000;
  const rate = 0.01;
  const options = { capacity, falsePositiveRate: rate, batchPairs: 300 };
  const bloom = GrowingBloomFilter.forCapacity(capacity, rate);
  // Filled through Redis's own scripts, shard by shard, as a distributed run fills it.
  const filled = new RedisPairFilter(redis, new RunKeys(prefix, "/data/d", "r1"), options);
  for (let index = 0; index < 4; index++) {
    const lanes = shardPairs(index, 1000);
    localAnswers(bloom, lanes);
    await filled.duplicates(index, lanes);
  }
  const label = JSON.stringify({ shards: 4, digest: "d4" });
  const snapshot = Buffer.from(bloom.snapshot(label));
  assert.ok(bloom.report().layers >= 2, "the series grew");
  assert.deepEqual(await heldSnapshot(filled, label), snapshot, "filled in Redis: the same bytes");
  assert.equal((await filled.held())?.shards, 4);

  // Restored from the snapshot, it gives the same bytes back and answers as the local filter.
  const restored = new RedisPairFilter(redis, new RunKeys(prefix, "/data/e", "r1"), options);
  await restored.restore(snapshotBits(snapshot), 4);
  assert.equal(await restored.restoredShards(), 4);
  assert.deepEqual(await heldSnapshot(restored, label), snapshot, "restored: the same bytes");
  for (let index = 4; index < 7; index++) {
    const lanes = shardPairs(index, 1000);
    assert.deepEqual([...(await restored.duplicates(index, lanes))], localAnswers(bloom, lanes));
  }
  assert.deepEqual(await heldSnapshot(restored, label), Buffer.from(bloom.snapshot(label)));
  assert.deepEqual(await restored.report(), bloom.report());
  await assert.rejects(
    restored.restore(snapshotBits(snapshot), 4),
    /the run's dedup filter is in use already/,
  );
});

test("a saved filter sized otherwise, or one that ends early, leaves the Redis filter empty", {
  skip,
}, async () => {
  const bloom = GrowingBloomFilter.forCapacity(2000, 0.01);
  localAnswers(bloom, shardPairs(0, 500));
  const snapshot = bloom.snapshot("{}");
  const keys = new RunKeys(prefix, "/data/f", "r1");
  const other = new RedisPairFilter(redis, keys, { capacity: 4000, falsePositiveRate: 0.01 });
  await assert.rejects(other.restore(snapshotBits(snapshot), 1), /sized for 2000 pairs at 0.01/);
  const filter = new RedisPairFilter(redis, keys, { capacity: 2000, falsePositiveRate: 0.01 });
  const bits = snapshotBits(snapshot);
  const cut: PairFilterBits = {
    series: bits.series,
    read: async (layer, offset, length) => (await bits.read(layer, offset, length)).subarray(1),
  };
  await assert.rejects(filter.restore(cut, 1), /the saved filter 0 ends at byte/);
  assert.equal(await filter.restoredShards(), 0);
  assert.deepEqual(await redis.keys(`${keys.base}:*`), []);
});
