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
}

export class BloomFilter {
  readonly bits: number;
  readonly hashes: number;
  private readonly words: Uint8Array;
  private readonly scratch = new Uint32Array(HASH_LANES);
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
    if (added) this.items++;
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
      estimatedFalsePositiveRate:
        (1 - Math.exp((-this.hashes * this.items) / this.bits)) ** this.hashes,
    };
  }
}

// Kirsch–Mitzenmacher double hashing: position_i = h1 + i·h2 (mod bits), with 53-bit h1 and h2
// taken from the four lanes, so filters beyond 2^32 bits are addressed evenly.
function firstPosition(lanes: Uint32Array, at: number, bits: number): number {
  return ((lanes[at] ?? 0) * 2 ** 21 + ((lanes[at + 1] ?? 0) >>> 11)) % bits;
}

function stepOf(lanes: Uint32Array, at: number, bits: number): number {
  return ((lanes[at + 2] ?? 0) * 2 ** 21 + ((lanes[at + 3] ?? 0) >>> 11)) % bits || 1;
}
