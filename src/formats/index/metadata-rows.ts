/**
 * A segment's metadata rows on disk, for serving an index larger than memory: `metadata.rows`
 * beside the segment's metadata.parquet holds the same rows, in blocks of BLOCK_ROWS rows, each
 * block deflated on its own (with a dictionary of the segment's first rows), so a result row costs
 * one positioned read and one small inflate, and the process holds only the block offsets and a
 * 32-bit hash of each row's key (to find the rows a tombstone names without reading them all).
 * Parquet stays the columnar copy that DuckDB scans; this is the copy looked up by id.
 *
 * Layout (little-endian):
 *
 *     "CCMROWS1"
 *     u32 header length, header JSON {columns, rows, blockRows, blocks, dictionaryBytes, checksum}
 *     dictionary (dictionaryBytes)
 *     key hashes (u32 × rows)
 *     block offsets (f64 × (blocks + 1), from the first block's start)
 *     blocks (zlib streams of a block's rows as a JSON array of value arrays)
 *
 * The header's checksum is the CRC-32 of the dictionary, hashes and offsets, checked at open with
 * the file's length; each block carries zlib's own Adler-32, checked when it is read.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { crc32, deflateSync, inflateSync } from "node:zlib";
import { segmentHolding } from "./index-manifest.js";
import type { MetadataLookup, MetadataValue } from "./metadata-columns.js";

const MAGIC = "CCMROWS1";
/** Small enough that a result row inflates in tens of microseconds. */
const BLOCK_ROWS = 32;
const DICTIONARY_BYTES = 32 * 1024;

interface RowsHeader {
  columns: string[];
  rows: number;
  blockRows: number;
  blocks: number;
  dictionaryBytes: number;
  checksum: number;
}

/** The 32-bit hash of a key that the file keeps for each row (FNV-1a over its UTF-8). */
export function keyHash(key: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * The file's bytes for `rows` (each the values of `columns`, in order); `keyColumn` names the
 * column whose hashes are kept. Values are JSON's: numbers, strings, null.
 */
export function encodeMetadataRows(
  columns: readonly string[],
  keyColumn: string,
  rows: readonly (readonly MetadataValue[])[],
): Buffer {
  const keyAt = columns.indexOf(keyColumn);
  if (keyAt < 0) throw new RangeError(`no key column ${keyColumn} in ${columns.join(", ")}`);
  const blocks = Math.ceil(rows.length / BLOCK_ROWS);
  const texts: Buffer[] = [];
  for (let block = 0; block < blocks; block++) {
    const slice = rows.slice(block * BLOCK_ROWS, (block + 1) * BLOCK_ROWS);
    texts.push(Buffer.from(JSON.stringify(slice), "utf8"));
  }
  // zlib matches against the dictionary's end first: the first rows, most typical last.
  const sample = Buffer.concat(texts.slice(0, Math.ceil(DICTIONARY_BYTES / 1024)));
  const dictionary = sample.subarray(0, Math.min(sample.length, DICTIONARY_BYTES));
  const compressed = texts.map((text) => deflateSync(text, { dictionary }));
  const hashes = Buffer.alloc(rows.length * 4);
  rows.forEach((row, index) => {
    const key = row[keyAt];
    hashes.writeUInt32LE(keyHash(key === null || key === undefined ? "" : String(key)), index * 4);
  });
  const offsets = Buffer.alloc((blocks + 1) * 8);
  let offset = 0;
  compressed.forEach((block, index) => {
    offsets.writeDoubleLE(offset, index * 8);
    offset += block.length;
  });
  offsets.writeDoubleLE(offset, blocks * 8);
  const checked = Buffer.concat([dictionary, hashes, offsets]);
  const header: RowsHeader = {
    columns: [...columns],
    rows: rows.length,
    blockRows: BLOCK_ROWS,
    blocks,
    dictionaryBytes: dictionary.length,
    checksum: crc32(checked),
  };
  const headerBytes = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.alloc(4);
  length.writeUInt32LE(headerBytes.length);
  return Buffer.concat([Buffer.from(MAGIC, "latin1"), length, headerBytes, checked, ...compressed]);
}

export class MetadataRowsError extends Error {}

/** One segment's file, open for reads by row. */
class RowsFile {
  private cachedBlock = -1;
  private cachedRows: MetadataValue[][] = [];

  constructor(
    readonly path: string,
    private readonly descriptor: number,
    readonly header: RowsHeader,
    private readonly dictionary: Buffer,
    private readonly offsets: Float64Array,
    private readonly blocksStart: number,
  ) {}

  /** The file, and its rows' key hashes (kept by the caller, for all segments together). */
  static open(path: string): { file: RowsFile; hashes: Uint32Array } {
    const descriptor = openSync(path, "r");
    try {
      const size = fstatSync(descriptor).size;
      const read = (position: number, length: number, what: string) => {
        if (position + length > size) {
          throw new MetadataRowsError(
            `${path}: cut short: ${what} needs bytes up to ${position + length}, the file has ${size}`,
          );
        }
        const bytes = Buffer.alloc(length);
        readSync(descriptor, bytes, 0, length, position);
        return bytes;
      };
      const start = read(0, 12, "the header");
      if (start.toString("latin1", 0, 8) !== MAGIC) {
        throw new MetadataRowsError(`${path}: not a clipcrawl metadata rows file`);
      }
      const headerLength = start.readUInt32LE(8);
      let header: RowsHeader;
      try {
        header = JSON.parse(read(12, headerLength, "the header").toString("utf8")) as RowsHeader;
      } catch (error) {
        if (error instanceof MetadataRowsError) throw error;
        throw new MetadataRowsError(`${path}: its header does not parse`);
      }
      const { rows, blocks, dictionaryBytes } = header;
      const checkedBytes = dictionaryBytes + rows * 4 + (blocks + 1) * 8;
      const checked = read(12 + headerLength, checkedBytes, "the block index");
      if (crc32(checked) !== header.checksum) {
        throw new MetadataRowsError(`${path}: checksum mismatch in its block index`);
      }
      const dictionary = checked.subarray(0, dictionaryBytes);
      const hashes = new Uint32Array(rows);
      for (let row = 0; row < rows; row++) {
        hashes[row] = checked.readUInt32LE(dictionaryBytes + row * 4);
      }
      const offsets = new Float64Array(blocks + 1);
      for (let block = 0; block <= blocks; block++) {
        offsets[block] = checked.readDoubleLE(dictionaryBytes + rows * 4 + block * 8);
      }
      const blocksStart = 12 + headerLength + checkedBytes;
      if (blocksStart + (offsets[blocks] as number) !== size) {
        throw new MetadataRowsError(
          `${path}: ${size} bytes, its block index says ${blocksStart + (offsets[blocks] as number)}`,
        );
      }
      return {
        file: new RowsFile(path, descriptor, header, Buffer.from(dictionary), offsets, blocksStart),
        hashes,
      };
    } catch (error) {
      closeSync(descriptor);
      throw error;
    }
  }

  /** Row `row`'s values (the header's columns, in order). */
  row(row: number): MetadataValue[] {
    const block = Math.floor(row / this.header.blockRows);
    if (block !== this.cachedBlock) {
      const from = this.offsets[block] as number;
      const length = (this.offsets[block + 1] as number) - from;
      const bytes = Buffer.alloc(length);
      readSync(this.descriptor, bytes, 0, length, this.blocksStart + from);
      try {
        const text = inflateSync(bytes, { dictionary: this.dictionary }).toString("utf8");
        this.cachedRows = JSON.parse(text) as MetadataValue[][];
      } catch (error) {
        throw new MetadataRowsError(
          `${this.path}: block ${block} is damaged: ${(error as Error).message}`,
        );
      }
      this.cachedBlock = block;
    }
    return this.cachedRows[row - block * this.header.blockRows] as MetadataValue[];
  }

  close(): void {
    closeSync(this.descriptor);
  }
}

/**
 * The metadata rows of an index's segments, in id order: values by id read from the files, and
 * every row's key hash in memory.
 */
export class MetadataRows implements MetadataLookup {
  private readonly positions: Map<string, number>;

  private constructor(
    private readonly files: { firstId: number; file: RowsFile }[],
    readonly columns: readonly string[],
    /** keyHash of each row's key, by id. */
    readonly keyHashes: Uint32Array,
    private readonly keyColumn: string,
  ) {
    this.positions = new Map(columns.map((name, position) => [name, position]));
  }

  /** The segments' files, in id order; each must hold `rows` rows of the same `columns`. */
  static open(
    segments: readonly { path: string; rows: number }[],
    columns: readonly string[],
    keyColumn: string,
  ): MetadataRows {
    const files: { firstId: number; file: RowsFile }[] = [];
    const total = segments.reduce((sum, segment) => sum + segment.rows, 0);
    const keyHashes = new Uint32Array(total);
    let next = 0;
    try {
      for (const segment of segments) {
        const { file, hashes } = RowsFile.open(segment.path);
        files.push({ firstId: next, file });
        if (file.header.rows !== segment.rows) {
          throw new MetadataRowsError(
            `${segment.path}: holds ${file.header.rows} rows, the manifest says ${segment.rows}`,
          );
        }
        if (file.header.columns.join("\n") !== columns.join("\n")) {
          throw new MetadataRowsError(
            `${segment.path}: columns ${file.header.columns.join(", ")}, expected ${columns.join(", ")}`,
          );
        }
        keyHashes.set(hashes, next);
        next += segment.rows;
      }
    } catch (error) {
      for (const { file } of files) file.close();
      throw error;
    }
    return new MetadataRows(files, columns, keyHashes, keyColumn);
  }

  get rows(): number {
    return this.keyHashes.length;
  }

  /** Row `id`'s values, the columns in order. */
  row(id: number): MetadataValue[] {
    const { firstId, file } = segmentHolding(this.files, id);
    return file.row(id - firstId);
  }

  has(name: string): boolean {
    return this.positions.has(name);
  }

  value(name: string, id: number): MetadataValue {
    const position = this.positions.get(name);
    return position === undefined ? null : (this.row(id)[position] ?? null);
  }

  idsWithKeys(keys: ReadonlySet<string>): number[] {
    const hashes = new Set([...keys].map(keyHash));
    const ids: number[] = [];
    for (let id = 0; id < this.keyHashes.length; id++) {
      if (!hashes.has(this.keyHashes[id] as number)) continue;
      const key = this.value(this.keyColumn, id);
      if (key !== null && keys.has(String(key))) ids.push(id);
    }
    return ids;
  }

  close(): void {
    for (const { file } of this.files) file.close();
  }
}
