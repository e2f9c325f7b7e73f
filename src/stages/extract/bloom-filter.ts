/**
 * The (url, text) dedup filter. A Bloom filter sized from an expected capacity and a target
 * false-positive rate; with double hashing over MD5 (as cc2dataset keys on md5 of the pair), so
 * the same bit positions can be computed anywhere, including for a Redis-backed filter.
 */
import { createHash } from "node:crypto";

export interface BloomFilterReport {
  capacity: number;
  targetFalsePositiveRate: number;
  bits: number;
  hashes: number;
  bytes: number;
  items: number;
  /** The false-positive rate for the next lookup at the current fill. */
  estimatedFalsePositiveRate: number;
}

export class BloomFilter {
  readonly bits: number;
  readonly hashes: number;
  private readonly words: Uint8Array;
  private items = 0;

  private constructor(
    readonly capacity: number,
    readonly targetFalsePositiveRate: number,
  ) {
    this.bits = Math.ceil((-capacity * Math.log(targetFalsePositiveRate)) / Math.LN2 ** 2);
    this.hashes = Math.max(1, Math.round((this.bits / capacity) * Math.LN2));
    this.words = new Uint8Array(Math.ceil(this.bits / 8));
  }

  static forCapacity(capacity: number, falsePositiveRate: number): BloomFilter {
    return new BloomFilter(capacity, falsePositiveRate);
  }

  /** Adds the key; true when it was (probably) not there before. */
  add(key: string): boolean {
    let added = false;
    for (const bit of bitPositions(key, this.bits, this.hashes)) {
      const mask = 1 << (bit & 7);
      const index = bit >>> 3;
      const word = this.words[index] ?? 0;
      if ((word & mask) === 0) {
        this.words[index] = word | mask;
        added = true;
      }
    }
    if (added) this.items++;
    return added;
  }

  has(key: string): boolean {
    for (const bit of bitPositions(key, this.bits, this.hashes)) {
      if (((this.words[bit >>> 3] ?? 0) & (1 << (bit & 7))) === 0) return false;
    }
    return true;
  }

  report(): BloomFilterReport {
    return {
      capacity: this.capacity,
      targetFalsePositiveRate: this.targetFalsePositiveRate,
      bits: this.bits,
      hashes: this.hashes,
      bytes: this.words.byteLength,
      items: this.items,
      estimatedFalsePositiveRate:
        (1 - Math.exp((-this.hashes * this.items) / this.bits)) ** this.hashes,
    };
  }
}

/** The key of a pair: the two parts cannot run into each other. */
export function pairKey(url: string, text: string): string {
  return `${url}\u0000${text}`;
}

/** Kirsch–Mitzenmacher double hashing: bit_i = h1 + i·h2 (mod bits), kept below 2^53. */
export function bitPositions(key: string, bits: number, hashes: number): number[] {
  const digest = createHash("md5").update(key).digest();
  let h1 = (digest.readUInt32LE(0) * 2 ** 21 + (digest.readUInt32LE(4) >>> 11)) % bits;
  const h2 = (digest.readUInt32LE(8) * 2 ** 21 + (digest.readUInt32LE(12) >>> 11)) % bits || 1;
  const positions: number[] = [];
  for (let i = 0; i < hashes; i++) {
    positions.push(h1);
    h1 = (h1 + h2) % bits;
  }
  return positions;
}
