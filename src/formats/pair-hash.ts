/**
 * A 128-bit hash of a (url, text) pair, as four 32-bit lanes in a Uint32Array. It keys the
 * in-file dedup set and places the pair's bits in the Bloom filter, so a pair is hashed once,
 * in the worker that found it, and only 16 bytes per pair travel to the thread that decides
 * cross-file duplicates. Plain JavaScript over UTF-16 code units: for caption-sized strings a
 * crypto digest costs several times more, mostly in per-call overhead.
 */
export const HASH_LANES = 4;

const SEPARATOR = 0x1f; // keeps ("ab", "c") and ("a", "bc") apart

export function hashPair(url: string, text: string, out: Uint32Array, at: number): void {
  let a = 0x6a09e667;
  let b = 0xbb67ae85;
  let c = 0x3c6ef372;
  let d = 0xa54ff53a;
  const length = url.length + 1 + text.length;
  for (let i = 0; i < length; i++) {
    const unit =
      i < url.length
        ? url.charCodeAt(i)
        : i === url.length
          ? SEPARATOR
          : text.charCodeAt(i - url.length - 1);
    a = Math.imul(a ^ unit, 0x9e3779b1);
    b = Math.imul(b ^ unit, 0x85ebca77);
    c = Math.imul(c ^ unit, 0xc2b2ae3d);
    d = Math.imul(d ^ unit, 0x27d4eb2f);
    a = (a << 13) | (a >>> 19);
    b = (b << 17) | (b >>> 15);
    c = (c << 11) | (c >>> 21);
    d = (d << 7) | (d >>> 25);
  }
  // Cross the lanes, then avalanche each (MurmurHash3's fmix32) so every input bit reaches every
  // output bit.
  a ^= d + length;
  b ^= a;
  c ^= b;
  d ^= c;
  const first = finalMix(a);
  const second = finalMix(b ^ first);
  const third = finalMix(c ^ second);
  out[at] = first;
  out[at + 1] = second;
  out[at + 2] = third;
  out[at + 3] = finalMix(d ^ third);
}

function finalMix(value: number): number {
  let h = value;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A growable column of pair hashes, HASH_LANES lanes per pair. */
export class PairHashes {
  private lanes = new Uint32Array(HASH_LANES * 1024);
  count = 0;

  add(url: string, text: string): number {
    if ((this.count + 1) * HASH_LANES > this.lanes.length) {
      const bigger = new Uint32Array(this.lanes.length * 2);
      bigger.set(this.lanes);
      this.lanes = bigger;
    }
    hashPair(url, text, this.lanes, this.count * HASH_LANES);
    return this.count++;
  }

  /** The lanes of the pairs added so far (a view; copy or transfer it). */
  view(): Uint32Array {
    return this.lanes.subarray(0, this.count * HASH_LANES);
  }
}

/**
 * A set of pair hashes (64 of their bits) in open-addressing typed arrays: the exact-in-practice
 * in-file dedup (for a million pairs a 64-bit collision has odds of about 3 in 10^8) without
 * keeping a million strings alive for the garbage collector to trace.
 */
export class PairHashSet {
  private slots = new Uint32Array(2 * 4096);
  private used = 0;

  /** Adds the pair's hash; false when it was there already. */
  add(lanes: Uint32Array, at: number): boolean {
    if ((this.used + 1) * 2 > this.slots.length / 2) this.grow();
    return this.insert((lanes[at] ?? 0) | 0, (lanes[at + 1] ?? 0) | 0);
  }

  private insert(high: number, low: number): boolean {
    // Zero marks an empty slot; the one pair hashing to (0, 0) is stored as (0, 1).
    const key = high === 0 && low === 0 ? 1 : low;
    const capacity = this.slots.length / 2;
    let slot = (Math.imul(high ^ key, 0x9e3779b1) >>> 0) & (capacity - 1);
    for (;;) {
      const storedHigh = this.slots[slot * 2] ?? 0;
      const storedLow = this.slots[slot * 2 + 1] ?? 0;
      if (storedHigh === 0 && storedLow === 0) {
        this.slots[slot * 2] = high;
        this.slots[slot * 2 + 1] = key;
        this.used++;
        return true;
      }
      if ((storedHigh | 0) === high && (storedLow | 0) === key) return false;
      slot = (slot + 1) & (capacity - 1);
    }
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Uint32Array(old.length * 2);
    this.used = 0;
    for (let slot = 0; slot < old.length; slot += 2) {
      const high = (old[slot] ?? 0) | 0;
      const low = (old[slot + 1] ?? 0) | 0;
      if (high !== 0 || low !== 0) this.insert(high, low);
    }
  }
}
