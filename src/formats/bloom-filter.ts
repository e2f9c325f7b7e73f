/**
 * The cross-file (url, text) dedup filter: a Bloom filter sized from an expected capacity and a
 * target false-positive rate. Bit positions come from the pair's 128-bit hash
 * (src/formats/pair-hash.ts) by double hashing, so they can be computed anywhere — in the worker
 * that found the pair, or for a Redis-backed filter shared by many machines.
 */
import { HASH_LANES, hashPair } from "./pair-hash.js";

export interface BloomFilterReport {
  capacity: number;
  targetFalsePositiveRate: number;
  bits: number;
  hashes: number;
  bytes: number;
  items: number;
  /** The false-positive rate for the next lookup at the current fill. */
  estimatedFalsePositiveRate: number;
  /** Filters in the series (a growing filter adds one each time the newest is full). */
  layers: number;
}

/** Bits and hash count of a Bloom filter holding `capacity` items at `falsePositiveRate`. */
export function bloomSizing(
  capacity: number,
  falsePositiveRate: number,
): { bits: number; hashes: number } {
  const bits = Math.ceil((-capacity * Math.log(falsePositiveRate)) / Math.LN2 ** 2);
  return { bits, hashes: Math.max(1, Math.round((bits / capacity) * Math.LN2)) };
}

export class BloomFilter {
  readonly bits: number;
  readonly hashes: number;
  readonly words: Uint8Array;
  private readonly scratch = new Uint32Array(HASH_LANES);
  private count = 0;

  private constructor(
    readonly capacity: number,
    readonly targetFalsePositiveRate: number,
    words?: Uint8Array,
    items = 0,
  ) {
    const { bits, hashes } = bloomSizing(capacity, targetFalsePositiveRate);
    this.bits = bits;
    this.hashes = hashes;
    this.words = words ?? new Uint8Array(Math.ceil(bits / 8));
    this.count = items;
  }

  static forCapacity(capacity: number, falsePositiveRate: number): BloomFilter {
    return new BloomFilter(capacity, falsePositiveRate);
  }

  /** A filter whose bits were saved before (`words`, as `this.words` held them). */
  static restore(
    capacity: number,
    falsePositiveRate: number,
    words: Uint8Array,
    items: number,
  ): BloomFilter {
    const filter = new BloomFilter(capacity, falsePositiveRate, words, items);
    if (words.byteLength !== Math.ceil(filter.bits / 8)) {
      throw new Error(
        `a saved Bloom filter has ${words.byteLength} bytes, not ${Math.ceil(filter.bits / 8)}`,
      );
    }
    return filter;
  }

  /** Pairs added so far (a new pair whose bits were all set already is not counted). */
  get items(): number {
    return this.count;
  }

  /** Adds the pair whose hash lanes start at `lanes[at]`; true when it was (probably) new. */
  addHash(lanes: Uint32Array, at: number): boolean {
    let added = false;
    let position = firstPosition(lanes, at, this.bits);
    const step = stepOf(lanes, at, this.bits);
    for (let i = 0; i < this.hashes; i++) {
      const mask = 1 << (position & 7);
      const index = Math.floor(position / 8);
      const word = this.words[index] ?? 0;
      if ((word & mask) === 0) {
        this.words[index] = word | mask;
        added = true;
      }
      position = (position + step) % this.bits;
    }
    if (added) this.count++;
    return added;
  }

  hasHash(lanes: Uint32Array, at: number): boolean {
    let position = firstPosition(lanes, at, this.bits);
    const step = stepOf(lanes, at, this.bits);
    for (let i = 0; i < this.hashes; i++) {
      if (((this.words[Math.floor(position / 8)] ?? 0) & (1 << (position & 7))) === 0) return false;
      position = (position + step) % this.bits;
    }
    return true;
  }

  addPair(url: string, text: string): boolean {
    hashPair(url, text, this.scratch, 0);
    return this.addHash(this.scratch, 0);
  }

  hasPair(url: string, text: string): boolean {
    hashPair(url, text, this.scratch, 0);
    return this.hasHash(this.scratch, 0);
  }

  report(): BloomFilterReport {
    return {
      capacity: this.capacity,
      targetFalsePositiveRate: this.targetFalsePositiveRate,
      bits: this.bits,
      hashes: this.hashes,
      bytes: this.words.byteLength,
      items: this.items,
      estimatedFalsePositiveRate: this.estimatedFalsePositiveRate(),
      layers: 1,
    };
  }

  estimatedFalsePositiveRate(): number {
    return (1 - Math.exp((-this.hashes * this.count) / this.bits)) ** this.hashes;
  }
}

/** Each filter a growing one adds holds this many times the previous one's pairs… */
export const BLOOM_GROWTH = 2;
/** …at this fraction of its false-positive rate, so the series stays under twice the first's. */
export const BLOOM_TIGHTENING = 0.5;

/** Capacity and false-positive rate of filter `layer` (0 first) of a growing series. */
export function bloomLayer(
  capacity: number,
  falsePositiveRate: number,
  layer: number,
): { capacity: number; falsePositiveRate: number } {
  return {
    capacity: capacity * BLOOM_GROWTH ** layer,
    falsePositiveRate: falsePositiveRate * BLOOM_TIGHTENING ** layer,
  };
}

/**
 * A Bloom filter that grows with what it holds (a scalable Bloom filter, Almeida et al. 2007):
 * when the newest filter has taken its capacity, a larger one with a tighter false-positive rate
 * is added, and a pair is new only when no filter of the series has it. A dataset that grows crawl
 * by crawl thus keeps its false-positive rate under twice the configured one, whatever it holds.
 * Its state is saved to, and restored from, bytes (`snapshot`).
 */
export class GrowingBloomFilter {
  private readonly layers: BloomFilter[];
  private readonly scratch = new Uint32Array(HASH_LANES);

  private constructor(
    readonly capacity: number,
    readonly targetFalsePositiveRate: number,
    layers: BloomFilter[],
  ) {
    this.layers = layers;
  }

  static forCapacity(capacity: number, falsePositiveRate: number): GrowingBloomFilter {
    return new GrowingBloomFilter(capacity, falsePositiveRate, [
      BloomFilter.forCapacity(capacity, falsePositiveRate),
    ]);
  }

  /** Adds the pair whose hash lanes start at `lanes[at]`; true when it was (probably) new. */
  addHash(lanes: Uint32Array, at: number): boolean {
    const newest = this.layers[this.layers.length - 1] as BloomFilter;
    for (const layer of this.layers) {
      if (layer !== newest && layer.hasHash(lanes, at)) return false;
    }
    if (!newest.addHash(lanes, at)) return false;
    if (newest.items >= newest.capacity) {
      const next = bloomLayer(this.capacity, this.targetFalsePositiveRate, this.layers.length);
      this.layers.push(BloomFilter.forCapacity(next.capacity, next.falsePositiveRate));
    }
    return true;
  }

  hasHash(lanes: Uint32Array, at: number): boolean {
    return this.layers.some((layer) => layer.hasHash(lanes, at));
  }

  addPair(url: string, text: string): boolean {
    hashPair(url, text, this.scratch, 0);
    return this.addHash(this.scratch, 0);
  }

  hasPair(url: string, text: string): boolean {
    hashPair(url, text, this.scratch, 0);
    return this.hasHash(this.scratch, 0);
  }

  report(): BloomFilterReport {
    let bits = 0;
    let bytes = 0;
    let items = 0;
    let passes = 1;
    for (const layer of this.layers) {
      bits += layer.bits;
      bytes += layer.words.byteLength;
      items += layer.items;
      passes *= 1 - layer.estimatedFalsePositiveRate();
    }
    return {
      capacity: this.capacity,
      targetFalsePositiveRate: this.targetFalsePositiveRate,
      bits,
      hashes: (this.layers[0] as BloomFilter).hashes,
      bytes,
      items,
      estimatedFalsePositiveRate: 1 - passes,
      layers: this.layers.length,
    };
  }

  /** The filter's whole state, with `label` (what it covers) kept beside it. */
  snapshot(label: string): Uint8Array {
    return Buffer.concat(this.snapshotParts(label));
  }

  /**
   * `snapshot`'s bytes as the pieces they are made of (the header, then each filter's bits, not
   * copied): what a file is written from without a second copy of tens of megabytes.
   */
  snapshotParts(label: string): Uint8Array[] {
    return [snapshotHeader(label, this.series()), ...this.layers.map((layer) => layer.words)];
  }

  /** Its sizing and the pairs each filter of the series holds. */
  series(): BloomSeries {
    return {
      capacity: this.capacity,
      falsePositiveRate: this.targetFalsePositiveRate,
      items: this.layers.map((layer) => layer.items),
    };
  }

  /** Reads `snapshot`'s bytes back; throws, saying what is wrong, on bytes it did not write. */
  static fromSnapshot(bytes: Uint8Array): { filter: GrowingBloomFilter; label: string } {
    const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const { label, series, layerOffsets } = snapshotLayout(data, data.byteLength);
    const layers = series.items.map((items, index) => {
      const sizing = bloomLayer(series.capacity, series.falsePositiveRate, index);
      const at = layerOffsets[index] as number;
      // A copy: the filter goes on changing, the bytes read stay as they were.
      const words = Uint8Array.from(data.subarray(at, at + seriesLayerBytes(series, index)));
      return BloomFilter.restore(sizing.capacity, sizing.falsePositiveRate, words, items);
    });
    const filter = new GrowingBloomFilter(series.capacity, series.falsePositiveRate, layers);
    return { filter, label };
  }
}

/**
 * A growing filter's shape: its first filter's sizing, and the pairs each filter of the series
 * holds (so how many filters there are). The bits are apart from it, so that a filter can move
 * between a snapshot file and Redis a slice at a time.
 */
export interface BloomSeries {
  capacity: number;
  falsePositiveRate: number;
  items: number[];
}

/** Bytes of filter `layer` of the series (bit i is bit `i & 7` of byte `i >> 3`). */
export function seriesLayerBytes(series: BloomSeries, layer: number): number {
  const sizing = bloomLayer(series.capacity, series.falsePositiveRate, layer);
  return Math.ceil(bloomSizing(sizing.capacity, sizing.falsePositiveRate).bits / 8);
}

/** A snapshot's first bytes: magic, header length, header; each filter's bits follow. */
export function snapshotHeader(label: string, series: BloomSeries): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      label,
      capacity: series.capacity,
      falsePositiveRate: series.falsePositiveRate,
      items: series.items,
    }),
  );
  return Buffer.concat([SNAPSHOT_MAGIC, uint32(header.byteLength), header]);
}

/** Where the parts of a snapshot lie. */
export interface SnapshotLayout {
  label: string;
  series: BloomSeries;
  /** Where each filter's bits start in the snapshot. */
  layerOffsets: number[];
}

/**
 * Where a snapshot's header ends, from its first 12 bytes (or more) and its whole `size`: what a
 * reader that does not hold the whole snapshot reads before `snapshotLayout`.
 */
export function snapshotHeaderEnd(head: Buffer, size: number): number {
  if (size < 12 || head.byteLength < 12 || !head.subarray(0, 8).equals(SNAPSHOT_MAGIC)) {
    throw new Error("not a clipcrawl Bloom filter snapshot (bad magic bytes)");
  }
  const headerEnd = 12 + head.readUInt32LE(8);
  if (headerEnd > size) throw new Error("the snapshot's header is cut off");
  return headerEnd;
}

/**
 * Reads a snapshot's header from its first bytes (`head`, up to `snapshotHeaderEnd` at least)
 * and checks the snapshot's `size` against it; throws, saying what is wrong, on bytes `snapshot`
 * did not write.
 */
export function snapshotLayout(head: Buffer, size: number): SnapshotLayout {
  const headerEnd = snapshotHeaderEnd(head, size);
  if (headerEnd > head.byteLength) throw new Error("the snapshot's header is cut off");
  let header: { label: unknown; capacity: unknown; falsePositiveRate: unknown; items: unknown };
  try {
    header = JSON.parse(head.subarray(12, headerEnd).toString("utf8"));
  } catch {
    throw new Error("the snapshot's header is not JSON");
  }
  const { label, capacity, falsePositiveRate, items } = header ?? {};
  if (
    typeof label !== "string" ||
    typeof capacity !== "number" ||
    !(capacity >= 1) ||
    typeof falsePositiveRate !== "number" ||
    !(falsePositiveRate > 0 && falsePositiveRate < 1) ||
    !Array.isArray(items) ||
    items.length === 0 ||
    !items.every((count) => Number.isSafeInteger(count) && count >= 0)
  ) {
    throw new Error("the snapshot's header does not describe a filter series");
  }
  const series: BloomSeries = { capacity, falsePositiveRate, items: items as number[] };
  const layerOffsets: number[] = [];
  let at = headerEnd;
  for (const index of series.items.keys()) {
    layerOffsets.push(at);
    at += seriesLayerBytes(series, index);
    if (at > size) throw new Error(`the snapshot's filter ${index} is cut off`);
  }
  if (at !== size) throw new Error("the snapshot's length does not match its header");
  return { label, series, layerOffsets };
}

const SNAPSHOT_MAGIC = Buffer.from("CCBLOOM1", "latin1");

function uint32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32LE(value);
  return bytes;
}

/**
 * The two 53-bit numbers a pair's bit positions come from (h1, h2 of Kirsch–Mitzenmacher double
 * hashing): position i of a filter of `bits` bits is (h1 + i·(h2 mod bits or 1)) mod bits. The
 * Redis filter computes the same positions from the same two numbers.
 */
export function positionBase(lanes: Uint32Array, at: number): [number, number] {
  return [
    (lanes[at] ?? 0) * 2 ** 21 + ((lanes[at + 1] ?? 0) >>> 11),
    (lanes[at + 2] ?? 0) * 2 ** 21 + ((lanes[at + 3] ?? 0) >>> 11),
  ];
}

// Kirsch–Mitzenmacher double hashing (positionBase), so filters beyond 2^32 bits are addressed
// evenly.
function firstPosition(lanes: Uint32Array, at: number, bits: number): number {
  return ((lanes[at] ?? 0) * 2 ** 21 + ((lanes[at + 1] ?? 0) >>> 11)) % bits;
}

function stepOf(lanes: Uint32Array, at: number, bits: number): number {
  return ((lanes[at + 2] ?? 0) * 2 ** 21 + ((lanes[at + 3] ?? 0) >>> 11)) % bits || 1;
}
