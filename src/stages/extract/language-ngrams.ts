/**
 * ELD's "medium" n-gram database (eld@2.1.0, Apache-2.0) as typed arrays: the n-grams in an
 * open-addressing hash table keyed by their packed bytes, each with its (language, score) entries.
 * Read from language-ngrams.bin, which scripts/language-ngrams.ts writes from the eld package
 * (the layout is described there); the package's own 2 MB object literal took 0.5–8 s to load,
 * this takes milliseconds.
 */
import { readFileSync } from "node:fs";

const FORMAT_VERSION = 1;
const DATA_FILE = new URL("./language-ngrams.bin", import.meta.url);

interface Header {
  source: string;
  languages: string[];
  averageScores: (number | null)[];
  ngrams: number;
  entries: number;
  letterRanges: number;
}

export class LanguageNgrams {
  readonly source: string;
  readonly languages: readonly string[];
  /** ELD's average score of a right answer, per language index: the reliability bar. */
  readonly averageScores: Float64Array;
  /** The letters of ELD's word-separator pattern, as `[first, last]` code pairs. */
  readonly letterRanges: Uint16Array;
  /** The character ELD spells each UTF-8 byte (from 0x80) with, as a code below 256. */
  readonly byteCharacter: Uint8Array;
  /** The entries of n-gram `n` are `entryStart[n]` up to `entryStart[n + 1]`. */
  readonly entryStart: Uint32Array;
  readonly entryLanguage: Uint8Array;
  readonly entryScore: Uint8Array;
  readonly ngramCount: number;
  private readonly keyLow: Uint32Array;
  private readonly keyHigh: Uint16Array;
  /** Hash slot → n-gram index + 1; 0 marks an empty slot. */
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(bytes: Uint8Array, from = DATA_FILE.pathname) {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const damaged = (why: string) => new Error(`${from}: not ELD's n-gram table (${why})`);
    if (bytes.length < 12 || String.fromCharCode(...bytes.subarray(0, 4)) !== "ELDN")
      throw damaged("no ELDN signature");
    if (view.getUint32(4, true) !== FORMAT_VERSION)
      throw damaged(`version ${view.getUint32(4, true)}, expected ${FORMAT_VERSION}`);
    const headerLength = view.getUint32(8, true);
    let header: Header;
    try {
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + headerLength)));
    } catch {
      throw damaged("its header is not JSON");
    }
    const count = header.ngrams;
    const start = 12 + headerLength + ((4 - ((12 + headerLength) % 4)) % 4);
    const expected = count * 7 + header.letterRanges * 4 + header.entries * 2 + 256;
    if (bytes.length - start !== expected)
      throw damaged(`${bytes.length - start} bytes of tables where the header says ${expected}`);
    // The tables are views of the bytes read when those are aligned as the file is (a file read
    // whole starts a buffer of its own); otherwise each is copied into an aligned buffer.
    const aligned = (bytes.byteOffset + start) % 4 === 0;
    let at = bytes.byteOffset + start;
    const take = (length: number): [ArrayBuffer, number] => {
      const table: [ArrayBuffer, number] = aligned
        ? [bytes.buffer as ArrayBuffer, at]
        : [bytes.buffer.slice(at, at + length) as ArrayBuffer, 0];
      at += length;
      return table;
    };
    this.keyLow = new Uint32Array(...take(count * 4), count);
    this.letterRanges = new Uint16Array(...take(header.letterRanges * 4), header.letterRanges * 2);
    this.keyHigh = new Uint16Array(...take(count * 2), count);
    const entryCount = new Uint8Array(...take(count), count);
    this.entryLanguage = new Uint8Array(...take(header.entries), header.entries);
    this.entryScore = new Uint8Array(...take(header.entries), header.entries);
    this.byteCharacter = new Uint8Array(...take(256), 256);

    this.source = header.source;
    this.languages = header.languages;
    this.averageScores = Float64Array.from(header.averageScores, (score) => score ?? Number.NaN);
    this.ngramCount = count;
    this.entryStart = new Uint32Array(count + 1);
    for (let ngram = 0; ngram < count; ngram++)
      this.entryStart[ngram + 1] =
        (this.entryStart[ngram] as number) + (entryCount[ngram] as number);
    let size = 1;
    while (size < count * 2) size *= 2;
    this.mask = size - 1;
    this.slots = new Int32Array(size);
    for (let ngram = 0; ngram < count; ngram++) {
      let slot = hashKey(this.keyLow[ngram] as number, this.keyHigh[ngram] as number) & this.mask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.mask;
      this.slots[slot] = ngram + 1;
    }
  }

  static load(): LanguageNgrams {
    return new LanguageNgrams(readFileSync(DATA_FILE));
  }

  /** The index of the n-gram with this packed key, or -1 when the database lacks it. */
  find(keyLow: number, keyHigh: number): number {
    let slot = hashKey(keyLow, keyHigh) & this.mask;
    for (;;) {
      const stored = this.slots[slot] as number;
      if (stored === 0) return -1;
      if (this.keyLow[stored - 1] === keyLow && this.keyHigh[stored - 1] === keyHigh)
        return stored - 1;
      slot = (slot + 1) & this.mask;
    }
  }
}

function hashKey(keyLow: number, keyHigh: number): number {
  let hash = Math.imul(keyLow ^ Math.imul(keyHigh, 0x9e3779b1), 0x85ebca6b);
  hash ^= hash >>> 15;
  hash = Math.imul(hash, 0xc2b2ae35);
  return hash ^ (hash >>> 13);
}
