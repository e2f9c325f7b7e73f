import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { Redis } from "ioredis";
import { GrowingBloomFilter } from "../src/formats/bloom-filter.js";
import { HASH_LANES, hashPair } from "../src/formats/pair-hash.js";
import { RunKeys } from "../src/runner/distributed/queue-names.js";
import { RedisPairFilter } from "../src/runner/distributed/redis-pair-filter.js";
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
