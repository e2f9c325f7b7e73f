import assert from "node:assert/strict";
import { test } from "node:test";
import {
  BloomFilter,
  decodeBitPositions,
  encodeBitPositions,
  GrowingBloomFilter,
  seriesLayerBytes,
  snapshotBitsReader,
  snapshotLayout,
} from "../src/formats/bloom-filter.js";
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

test("a filter holding few pairs answers as one with all its bits, and saves compactly", () => {
  // Dense from the start: restored from a snapshot of its bits.
  const empty = GrowingBloomFilter.forCapacity(1_000_000, 0.001);
  const dense = GrowingBloomFilter.fromSnapshot(empty.snapshot("x")).filter;
  const sparse = GrowingBloomFilter.forCapacity(1_000_000, 0.001);
  // Past 65,536 set bits the sparse one takes its bit array too: answers agree on both sides.
  for (let i = 0; i < 9000; i++) {
    const url = `https://a.example/${i % 7000}.jpg`;
    assert.equal(sparse.addPair(url, "t"), dense.addPair(url, "t"), url);
    if (i === 300) {
      const compact = sparse.snapshot("few", { compact: true });
      assert.ok(compact.byteLength < 12_000, `${compact.byteLength} bytes`);
      assert.ok(sparse.snapshot("few").byteLength > 1_700_000);
      const restored = GrowingBloomFilter.fromSnapshot(compact).filter;
      assert.deepEqual(restored.report(), sparse.report());
      assert.deepEqual(
        Buffer.from(restored.snapshot("few")),
        Buffer.from(sparse.snapshot("few")),
        "the compact snapshot restores the same bits",
      );
      for (let j = 0; j < 2000; j++) {
        const probe = `https://a.example/${j}.jpg`;
        assert.equal(restored.hasPair(probe, "t"), dense.hasPair(probe, "t"), probe);
      }
    }
  }
  assert.deepEqual(sparse.report(), dense.report());
  assert.deepEqual(Buffer.from(sparse.snapshot("all")), Buffer.from(dense.snapshot("all")));
});

test("a compact snapshot is read a slice at a time as the same bits, and damage is refused", async () => {
  const filter = GrowingBloomFilter.forCapacity(100_000, 0.01);
  for (let i = 0; i < 400; i++) filter.addPair(`https://a.example/${i}.jpg`, "t");
  const compact = Buffer.from(filter.snapshot("x", { compact: true }));
  const full = Buffer.from(filter.snapshot("x"));
  const compactLayout = snapshotLayout(compact, compact.byteLength);
  const fullLayout = snapshotLayout(full, full.byteLength);
  assert.deepEqual(compactLayout.positionLayers, [true]);
  assert.deepEqual(fullLayout.positionLayers, [false]);
  const fromCompact = snapshotBitsReader(compactLayout, async (at, length) =>
    compact.subarray(at, at + length),
  );
  const fromFull = snapshotBitsReader(fullLayout, async (at, length) =>
    full.subarray(at, at + length),
  );
  const bytes = seriesLayerBytes(fullLayout.series, 0);
  for (let offset = 0; offset < bytes; offset += 10_000) {
    assert.deepEqual(
      Buffer.from(await fromCompact(0, offset, 10_000)),
      Buffer.from(await fromFull(0, offset, 10_000)),
      `bytes from ${offset}`,
    );
  }
  // A position past the filter's end, a repeated one, a number cut off.
  const header = compact.subarray(0, compactLayout.layerOffsets[0]);
  const withPositions = (positions: number[] | Uint8Array) => {
    const body = positions instanceof Uint8Array ? positions : encodeBitPositions(positions);
    const json = JSON.parse(header.subarray(12).toString("utf8"));
    json.positionBytes = [body.byteLength];
    const text = Buffer.from(JSON.stringify(json));
    const length = Buffer.alloc(4);
    length.writeUInt32LE(text.byteLength);
    return Buffer.concat([header.subarray(0, 8), length, text, body]);
  };
  assert.throws(
    () => GrowingBloomFilter.fromSnapshot(withPositions([5, fullLayout.series.capacity * 100])),
    /sets bit/,
  );
  assert.throws(
    () => GrowingBloomFilter.fromSnapshot(withPositions(Uint8Array.from([5, 0]))),
    /repeats a position/,
  );
  assert.throws(
    () => GrowingBloomFilter.fromSnapshot(withPositions(Uint8Array.from([5, 0x81]))),
    /cut off/,
  );
  assert.deepEqual(decodeBitPositions(encodeBitPositions([0, 1, 2 ** 40, 2 ** 52]), 0), [
    0,
    1,
    2 ** 40,
    2 ** 52,
  ]);
});
