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

/**
 * Set bits a filter keeps as a list of positions before it allocates its bit array: a filter
 * sized for millions of pairs that holds a few hundred touches a few pages of memory instead of
 * tens of megabytes, and saves in kilobytes (the first touch of each page of a fresh array costs
 * more than a small extract's whole parse). Past this many, or once the list would outweigh the
 * bits, the array takes over.
 */
const SPARSE_MAX_POSITIONS = 65_536;

export class BloomFilter {
  readonly bits: number;
  readonly hashes: number;
  /** The bits (bit i is bit `i & 7` of byte `i >> 3`), once `positions` has given way to them. */
  private words: Uint8Array | undefined;
  /** The set bits' positions while there are few of them (`SPARSE_MAX_POSITIONS`). */
  private positions: Set<number> | undefined;
  private readonly sparseLimit: number;
  private readonly scratch = new Uint32Array(HASH_LANES);
  private count = 0;

  private constructor(
    readonly capacity: number,
    readonly targetFalsePositiveRate: number,
    items = 0,
  ) {
    const { bits, hashes } = bloomSizing(capacity, targetFalsePositiveRate);
    this.bits = bits;
    this.hashes = hashes;
    this.count = items;
    this.sparseLimit = Math.min(SPARSE_MAX_POSITIONS, Math.floor(this.byteLength / 8));
  }

  static forCapacity(capacity: number, falsePositiveRate: number): BloomFilter {
    const filter = new BloomFilter(capacity, falsePositiveRate);
    filter.positions = new Set();
    return filter;
  }

  /** A filter whose bits were saved before (`words`, as `denseBytes` gives them). */
  static restore(
    capacity: number,
    falsePositiveRate: number,
    words: Uint8Array,
    items: number,
  ): BloomFilter {
    const filter = new BloomFilter(capacity, falsePositiveRate, items);
    if (words.byteLength !== filter.byteLength) {
      throw new Error(
        `a saved Bloom filter has ${words.byteLength} bytes, not ${filter.byteLength}`,
      );
    }
    filter.words = words;
    return filter;
  }

  /** A filter whose set bits were saved as their positions (`encodeBitPositions`). */
  static restorePositions(
    capacity: number,
    falsePositiveRate: number,
    positions: readonly number[],
    items: number,
  ): BloomFilter {
    const filter = new BloomFilter(capacity, falsePositiveRate, items);
    const last = positions[positions.length - 1];
    if (last !== undefined && last >= filter.bits) {
      throw new Error(`a saved Bloom filter sets bit ${last} of ${filter.bits}`);
    }
    filter.positions = new Set(positions);
    if (filter.positions.size > filter.sparseLimit) filter.materialise();
    return filter;
  }

  /** Bytes of its bit array (whether or not it has allocated it yet). */
  get byteLength(): number {
    return Math.ceil(this.bits / 8);
  }

  /** Pairs added so far (a new pair whose bits were all set already is not counted). */
  get items(): number {
    return this.count;
  }

  /** Adds the pair whose hash lanes start at `lanes[at]`; true when it was (probably) new. */
  addHash(lanes: Uint32Array, at: number): boolean {
    const words = this.words;
    if (words === undefined) return this.addPositions(lanes, at);
    let added = false;
    let position = firstPosition(lanes, at, this.bits);
    const step = stepOf(lanes, at, this.bits);
    for (let i = 0; i < this.hashes; i++) {
      const mask = 1 << (position & 7);
      const index = Math.floor(position / 8);
      const word = words[index] ?? 0;
      if ((word & mask) === 0) {
        words[index] = word | mask;
        added = true;
      }
      position = (position + step) % this.bits;
    }
    if (added) this.count++;
    return added;
  }

  hasHash(lanes: Uint32Array, at: number): boolean {
    const words = this.words;
    const positions = this.positions as Set<number>;
    let position = firstPosition(lanes, at, this.bits);
    const step = stepOf(lanes, at, this.bits);
    for (let i = 0; i < this.hashes; i++) {
      if (words === undefined) {
        if (!positions.has(position)) return false;
      } else if (((words[Math.floor(position / 8)] ?? 0) & (1 << (position & 7))) === 0) {
        return false;
      }
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

  /** Its bits as an array (a copy while it keeps positions; its own array after). */
  denseBytes(): Uint8Array {
    if (this.words !== undefined) return this.words;
    const words = new Uint8Array(this.byteLength);
    for (const position of this.positions as Set<number>) setBit(words, position);
    return words;
  }

  /** Its set bits' positions in order, while it keeps them as positions; else undefined. */
  sortedPositions(): number[] | undefined {
    if (this.positions === undefined) return undefined;
    return [...this.positions].sort((a, b) => a - b);
  }

  report(): BloomFilterReport {
    return {
      capacity: this.capacity,
      targetFalsePositiveRate: this.targetFalsePositiveRate,
      bits: this.bits,
      hashes: this.hashes,
      bytes: this.byteLength,
      items: this.items,
      estimatedFalsePositiveRate: this.estimatedFalsePositiveRate(),
      layers: 1,
    };
  }

  estimatedFalsePositiveRate(): number {
    return (1 - Math.exp((-this.hashes * this.count) / this.bits)) ** this.hashes;
  }

  private addPositions(lanes: Uint32Array, at: number): boolean {
    const positions = this.positions as Set<number>;
    let added = false;
    let position = firstPosition(lanes, at, this.bits);
    const step = stepOf(lanes, at, this.bits);
    for (let i = 0; i < this.hashes; i++) {
      if (!positions.has(position)) {
        positions.add(position);
        added = true;
      }
      position = (position + step) % this.bits;
    }
    if (added) this.count++;
    if (positions.size > this.sparseLimit) this.materialise();
    return added;
  }

  private materialise(): void {
    this.words = this.denseBytes();
    this.positions = undefined;
  }
}

function setBit(words: Uint8Array, position: number): void {
  const index = Math.floor(position / 8);
  words[index] = (words[index] as number) | (1 << (position & 7));
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
      bytes += layer.byteLength;
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

  /**
   * The filter's whole state, with `label` (what it covers) kept beside it. Each filter's bits
   * are written as they are, or, with `compact`, a filter that holds few of them as the positions
   * of its set bits (kilobytes where the bits are megabytes); `fromSnapshot` reads either.
   */
  snapshot(label: string, options: { compact?: boolean } = {}): Uint8Array {
    return Buffer.concat(this.snapshotParts(label, options));
  }

  /**
   * `snapshot`'s bytes as the pieces they are made of (the header, then each filter's bits, not
   * copied): what a file is written from without a second copy of tens of megabytes.
   */
  snapshotParts(label: string, options: { compact?: boolean } = {}): Uint8Array[] {
    const parts: Uint8Array[] = [];
    const positionBytes: (number | null)[] = [];
    for (const layer of this.layers) {
      const positions = options.compact === true ? layer.sortedPositions() : undefined;
      const part = positions === undefined ? layer.denseBytes() : encodeBitPositions(positions);
      parts.push(part);
      positionBytes.push(positions === undefined ? null : part.byteLength);
    }
    const compacted = positionBytes.some((bytes) => bytes !== null);
    return [snapshotHeader(label, this.series(), compacted ? positionBytes : undefined), ...parts];
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
    const { label, series, layerOffsets, layerLengths, positionLayers } = snapshotLayout(
      data,
      data.byteLength,
    );
    const layers = series.items.map((items, index) => {
      const sizing = bloomLayer(series.capacity, series.falsePositiveRate, index);
      const at = layerOffsets[index] as number;
      const stored = data.subarray(at, at + (layerLengths[index] as number));
      if (positionLayers[index] === true) {
        const positions = decodeBitPositions(stored, index);
        return BloomFilter.restorePositions(
          sizing.capacity,
          sizing.falsePositiveRate,
          positions,
          items,
        );
      }
      // A copy: the filter goes on changing, the bytes read stay as they were.
      const words = Uint8Array.from(stored);
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

/**
 * A snapshot's first bytes: magic, header length, header; each filter's bits follow, or, for a
 * filter `positionBytes` gives a length for, that many bytes of its set bits' positions
 * (`encodeBitPositions`). A header without `positionBytes` (every snapshot before it existed)
 * has every filter's bits.
 */
export function snapshotHeader(
  label: string,
  series: BloomSeries,
  positionBytes?: readonly (number | null)[],
): Buffer {
  const header = Buffer.from(
    JSON.stringify({
      label,
      capacity: series.capacity,
      falsePositiveRate: series.falsePositiveRate,
      items: series.items,
      ...(positionBytes === undefined ? {} : { positionBytes }),
    }),
  );
  return Buffer.concat([SNAPSHOT_MAGIC, uint32(header.byteLength), header]);
}

/** Where the parts of a snapshot lie. */
export interface SnapshotLayout {
  label: string;
  series: BloomSeries;
  /** Where each filter's bits (or positions) start in the snapshot. */
  layerOffsets: number[];
  /** How many bytes each filter takes in the snapshot. */
  layerLengths: number[];
  /** Which filters are stored as the positions of their set bits. */
  positionLayers: boolean[];
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
  let header: {
    label: unknown;
    capacity: unknown;
    falsePositiveRate: unknown;
    items: unknown;
    positionBytes?: unknown;
  };
  try {
    header = JSON.parse(head.subarray(12, headerEnd).toString("utf8"));
  } catch {
    throw new Error("the snapshot's header is not JSON");
  }
  const { label, capacity, falsePositiveRate, items, positionBytes } = header ?? {};
  if (
    typeof label !== "string" ||
    typeof capacity !== "number" ||
    !(capacity >= 1) ||
    typeof falsePositiveRate !== "number" ||
    !(falsePositiveRate > 0 && falsePositiveRate < 1) ||
    !Array.isArray(items) ||
    items.length === 0 ||
    !items.every((count) => Number.isSafeInteger(count) && count >= 0) ||
    (positionBytes !== undefined &&
      !(
        Array.isArray(positionBytes) &&
        positionBytes.length === items.length &&
        positionBytes.every(
          (bytes) => bytes === null || (Number.isSafeInteger(bytes) && bytes >= 0),
        )
      ))
  ) {
    throw new Error("the snapshot's header does not describe a filter series");
  }
  const series: BloomSeries = { capacity, falsePositiveRate, items: items as number[] };
  const stored = positionBytes as (number | null)[] | undefined;
  const layerOffsets: number[] = [];
  const layerLengths: number[] = [];
  const positionLayers: boolean[] = [];
  let at = headerEnd;
  for (const index of series.items.keys()) {
    const positions = stored?.[index] ?? null;
    const length = positions ?? seriesLayerBytes(series, index);
    layerOffsets.push(at);
    layerLengths.push(length);
    positionLayers.push(positions !== null);
    at += length;
    if (at > size) throw new Error(`the snapshot's filter ${index} is cut off`);
  }
  if (at !== size) throw new Error("the snapshot's length does not match its header");
  return { label, series, layerOffsets, layerLengths, positionLayers };
}

/**
 * Filter `layer`'s bits `[offset, offset + length)` of a snapshot laid out as `layout`, however
 * the filter is stored, through `readRange` (bytes of the snapshot): what a shared filter is
 * restored from a slice at a time. A filter stored as positions is read whole once (it is small).
 */
export function snapshotBitsReader(
  layout: SnapshotLayout,
  readRange: (at: number, length: number) => Promise<Uint8Array>,
): (layer: number, offset: number, length: number) => Promise<Uint8Array> {
  const decoded = new Map<number, number[]>();
  return async (layer, offset, length) => {
    const at = layout.layerOffsets[layer] as number;
    if (layout.positionLayers[layer] !== true) return readRange(at + offset, length);
    let positions = decoded.get(layer);
    if (positions === undefined) {
      positions = decodeBitPositions(
        await readRange(at, layout.layerLengths[layer] as number),
        layer,
      );
      decoded.set(layer, positions);
    }
    const slice = new Uint8Array(
      Math.max(0, Math.min(length, seriesLayerBytes(layout.series, layer) - offset)),
    );
    const first = offset * 8;
    for (const position of positions) {
      if (position < first) continue;
      if (position >= first + slice.byteLength * 8) break;
      setBit(slice, position - first);
    }
    return slice;
  };
}

/**
 * Ascending bit positions as the gaps between them (the first from 0), each an unsigned LEB128
 * number: about three bytes a set bit in a sparsely filled filter of millions of bits.
 */
export function encodeBitPositions(positions: readonly number[]): Uint8Array {
  const bytes: number[] = [];
  let previous = 0;
  for (const position of positions) {
    let gap = position - previous;
    previous = position;
    while (gap >= 0x80) {
      bytes.push((gap % 0x80) | 0x80);
      gap = Math.floor(gap / 0x80);
    }
    bytes.push(gap);
  }
  return Uint8Array.from(bytes);
}

/** `encodeBitPositions` read back; throws on bytes it did not write (`layer` names the filter). */
export function decodeBitPositions(bytes: Uint8Array, layer: number): number[] {
  const positions: number[] = [];
  let position = 0;
  let gap = 0;
  let scale = 1;
  for (let at = 0; at < bytes.length; at++) {
    const byte = bytes[at] as number;
    gap += (byte & 0x7f) * scale;
    scale *= 0x80;
    if (byte >= 0x80) {
      if (scale > 2 ** 49) throw new Error(`the snapshot's filter ${layer} has a damaged position`);
      continue;
    }
    if (gap === 0 && positions.length > 0) {
      throw new Error(`the snapshot's filter ${layer} repeats a position`);
    }
    position += gap;
    positions.push(position);
    gap = 0;
    scale = 1;
  }
  if (scale !== 1) throw new Error(`the snapshot's filter ${layer} is cut off`);
  return positions;
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
