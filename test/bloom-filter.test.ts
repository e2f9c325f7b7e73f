import assert from "node:assert/strict";
import { test } from "node:test";
import { BloomFilter } from "../src/formats/bloom-filter.js";
import { hashPair, PairHashSet } from "../src/formats/pair-hash.js";

test("the Bloom filter never forgets a pair it was given", () => {
  const filter = BloomFilter.forCapacity(10_000, 0.01);
  for (let i = 0; i < 10_000; i++) filter.addPair(`https://a.example/${i}.jpg`, `caption ${i}`);
  for (let i = 0; i < 10_000; i++)
    assert.ok(filter.hasPair(`https://a.example/${i}.jpg`, `caption ${i}`));
});

test("at capacity, the measured false-positive rate is close to the configured one", () => {
  const target = 0.01;
  const filter = BloomFilter.forCapacity(20_000, target);
  for (let i = 0; i < 20_000; i++) filter.addPair(`https://a.example/${i}.jpg`, "x");
  let falsePositives = 0;
  const probes = 50_000;
  for (let i = 0; i < probes; i++)
    if (filter.hasPair(`https://b.example/${i}.jpg`, "x")) falsePositives++;
  const measured = falsePositives / probes;
  assert.ok(measured < target * 1.5, `measured ${measured}`);
  const report = filter.report();
  // A new pair whose bits happen to be set already is a false positive at insert time.
  assert.ok(
    report.items <= 20_000 && report.items > 20_000 * (1 - target),
    `items ${report.items}`,
  );
  assert.ok(
    Math.abs(report.estimatedFalsePositiveRate - target) < target * 0.2,
    `estimated ${report.estimatedFalsePositiveRate}`,
  );
});

test("add reports whether a pair is new, and the key keeps url and text apart", () => {
  const filter = BloomFilter.forCapacity(1000, 0.001);
  assert.equal(filter.addPair("https://a.example/x", "yz"), true);
  assert.equal(filter.addPair("https://a.example/x", "yz"), false);
  assert.equal(filter.hasPair("https://a.example/xy", "z"), false);
});

test("the in-file hash set finds every repeat and nothing else", () => {
  const set = new PairHashSet();
  const lanes = new Uint32Array(4);
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 50_000; i++) {
      hashPair(`https://a.example/${i}.jpg`, `caption ${i % 1000}`, lanes, 0);
      assert.equal(set.add(lanes, 0), round === 0);
    }
  }
});
