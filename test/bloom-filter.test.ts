import assert from "node:assert/strict";
import { test } from "node:test";
import { BloomFilter, GrowingBloomFilter } from "../src/formats/bloom-filter.js";
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

test("a growing filter keeps its false-positive rate when it holds ten times its capacity", () => {
  const target = 0.01;
  const growing = GrowingBloomFilter.forCapacity(10_000, target);
  const fixed = BloomFilter.forCapacity(10_000, target);
  for (let i = 0; i < 100_000; i++) {
    growing.addPair(`https://a.example/${i}.jpg`, "x");
    fixed.addPair(`https://a.example/${i}.jpg`, "x");
  }
  let growingPositives = 0;
  let fixedPositives = 0;
  const probes = 50_000;
  for (let i = 0; i < probes; i++) {
    if (growing.hasPair(`https://b.example/${i}.jpg`, "x")) growingPositives++;
    if (fixed.hasPair(`https://b.example/${i}.jpg`, "x")) fixedPositives++;
  }
  // The series stays under twice the first filter's rate; one filter that size is saturated.
  assert.ok(growingPositives / probes < 2 * target, `growing ${growingPositives / probes}`);
  assert.ok(fixedPositives / probes > 0.5, `fixed ${fixedPositives / probes}`);
  const report = growing.report();
  assert.ok(report.layers >= 4, `${report.layers} filters`);
  assert.ok(report.estimatedFalsePositiveRate < 2 * target);
  for (let i = 0; i < 100_000; i += 7)
    assert.ok(growing.hasPair(`https://a.example/${i}.jpg`, "x"));
});

test("a growing filter's snapshot restores the same answers, and bytes it did not write are refused", () => {
  const filter = GrowingBloomFilter.forCapacity(1000, 0.01);
  for (let i = 0; i < 3000; i++) filter.addPair(`https://a.example/${i}.jpg`, `t${i % 2000}`);
  const bytes = filter.snapshot("covers 00002");
  const { filter: restored, label } = GrowingBloomFilter.fromSnapshot(bytes);
  assert.equal(label, "covers 00002");
  assert.deepEqual(restored.report(), filter.report());
  for (let i = 2500; i < 6000; i++) {
    const url = `https://a.example/${i}.jpg`;
    assert.equal(restored.addPair(url, "y"), filter.addPair(url, "y"), url);
  }
  assert.throws(() => GrowingBloomFilter.fromSnapshot(Buffer.from("not a filter")), /magic bytes/);
  assert.throws(
    () => GrowingBloomFilter.fromSnapshot(bytes.subarray(0, bytes.length - 5)),
    /cut off|length/,
  );
  const extra = Buffer.concat([bytes, Buffer.from([0])]);
  assert.throws(() => GrowingBloomFilter.fromSnapshot(extra), /length does not match/);
  // A header that parses but does not describe a series (a hand-edited file, another tool's).
  for (const header of [
    { label: "x", capacity: 1000, falsePositiveRate: 0.001, items: "many" },
    { label: "x", capacity: 1000, falsePositiveRate: 0.001, items: [] },
    { label: "x", capacity: 0, falsePositiveRate: 0.001, items: [1] },
    { label: "x", capacity: 1000, falsePositiveRate: 2, items: [1] },
    null,
  ]) {
    const json = Buffer.from(JSON.stringify(header));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(json.byteLength);
    const forged = Buffer.concat([bytes.subarray(0, 8), length, json]);
    assert.throws(
      () => GrowingBloomFilter.fromSnapshot(forged),
      /header does not describe a filter series/,
      JSON.stringify(header),
    );
  }
});
