/**
 * Taking samples out of one file, for each kind of file a root holds. Every rewrite writes a
 * whole new file under a temporary name and renames it into place (DatasetStorage.writeAtomicWith),
 * so a reader, or a crash, sees the old file or the new one, never a mix. Every rewrite is safe to
 * run again: a file that no longer holds what it should lose is left as it is (a resumed removal
 * finds some files done and some not).
 *
 * - parquet rows (embeddings metadata and failures, dataset shards): the rows of the keys go,
 *   the others stay in their order with their types;
 * - download's image parquet: the rows stay as tombstones — key, status `removed`, the removal
 *   in error_message, every other value NULL — so every candidate still has its row and counts
 *   still add up, while nothing of the sample is left;
 * - webdataset tars: the members of the keys go (rewritten with download's tar writer, so the
 *   result is what download would have written without them);
 * - `.npy` embeddings: the rows at the planned positions go, streamed (a shard's matrix need not
 *   fit in memory); which rows those are comes from the metadata before its rewrite, and the row
 *   count says whether the file is old (rewrite) or new (done);
 * - image folders (download's `files` format): the key's files are deleted.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError } from "../errors.js";
import { quoteIdentifier, quoteLiteral } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { readTarEntries, splitSampleName } from "../io/tar-reader.js";
import { TarWriter } from "../io/tar-writer.js";

/** What a rewrite took out, and the file's size before and after. */
export interface RewriteOutcome {
  removed: number;
  /** Tar members that could not be read (damaged headers) and so were not copied. */
  damaged: number;
  bytesBefore: number;
  bytesAfter: number;
}

/** The status an image parquet's tombstone rows carry. */
export const REMOVED_STATUS = "removed";

class NothingToRemove extends Error {}

/** Creates a temporary table holding `keys`, for one rewrite's queries; returns its name. */
async function keyTable(connection: DuckDBConnection, keys: readonly string[]): Promise<string> {
  const table = `removal_keys_${randomBytes(6).toString("hex")}`;
  await connection.run(`CREATE TEMP TABLE ${table} (key VARCHAR)`);
  const appender = await connection.createAppender(table);
  for (const key of keys) {
    appender.appendVarchar(key);
    appender.endRow();
  }
  appender.closeSync();
  return table;
}

async function sizeOf(storage: DatasetStorage, path: string): Promise<number> {
  return (await storage.stat(path))?.bytes ?? 0;
}

/** How one kind of parquet rewrite treats the rows of the removed keys. */
interface ParquetRewrite {
  /** The rows still to remove, as a condition on top of `hit` (the row's key is removed). */
  pending: (hit: string) => string;
  /** The SELECT writing the new file from `source` (with its `file_row_number`). */
  select: (source: string, hit: string) => Promise<string>;
}

/**
 * The rewrite both parquet kinds share: count the rows still to remove and, when there are any,
 * write the file anew from one SELECT in its row order (an anti-join alone does not keep it).
 */
async function rewriteParquet(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  path: string,
  keys: readonly string[],
  rewrite: ParquetRewrite,
): Promise<RewriteOutcome> {
  const bytesBefore = await sizeOf(storage, path);
  const table = await keyTable(connection, keys);
  try {
    const source = `read_parquet(${quoteLiteral(await storage.localPath(path))}, file_row_number = true)`;
    const hit = `coalesce(key IN (SELECT key FROM ${table}), false)`;
    const counted = await connection.runAndReadAll(
      `SELECT count(*) FILTER (WHERE ${rewrite.pending(hit)}) AS n FROM ${source}`,
    );
    const removed = Number(counted.getRowObjects()[0]?.n ?? 0);
    if (removed === 0) return { removed, damaged: 0, bytesBefore, bytesAfter: bytesBefore };
    const select = await rewrite.select(source, hit);
    await storage.writeAtomicWith(path, async (localPath) => {
      await connection.run(
        `COPY (${select} ORDER BY file_row_number) TO ${quoteLiteral(localPath)} (FORMAT parquet, COMPRESSION snappy)`,
      );
    });
    return { removed, damaged: 0, bytesBefore, bytesAfter: await sizeOf(storage, path) };
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${table}`);
  }
}

/** Drops the rows of `keys` from a parquet file that has a `key` column. */
export function dropParquetRows(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  path: string,
  keys: readonly string[],
): Promise<RewriteOutcome> {
  return rewriteParquet(connection, storage, path, keys, {
    pending: (hit) => hit,
    select: async (source, hit) =>
      `SELECT * EXCLUDE (file_row_number) FROM ${source} WHERE NOT ${hit}`,
  });
}

/** Turns the rows of `keys` in download's image parquet into tombstones (see the module comment). */
export function tombstoneImageRows(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  path: string,
  keys: readonly string[],
  removal: string,
): Promise<RewriteOutcome> {
  return rewriteParquet(connection, storage, path, keys, {
    pending: (hit) => `${hit} AND status IS DISTINCT FROM '${REMOVED_STATUS}'`,
    select: async (source, hit) => {
      const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`);
      const columns = described
        .getRowObjects()
        .map((row) => String(row.column_name))
        .filter((name) => name !== "file_row_number");
      const select = columns.map((name) => {
        const column = quoteIdentifier(name);
        if (name === "key") return column;
        if (name === "status") {
          return `CASE WHEN __hit THEN '${REMOVED_STATUS}' ELSE ${column} END AS ${column}`;
        }
        if (name === "error_message") {
          return `CASE WHEN __hit THEN ${quoteLiteral(`removal ${removal}`)} ELSE ${column} END AS ${column}`;
        }
        return `CASE WHEN __hit THEN NULL ELSE ${column} END AS ${column}`;
      });
      return `SELECT ${select.join(", ")} FROM (SELECT *, ${hit} AS __hit FROM ${source})`;
    },
  });
}

/** Drops the members of `keys` from a webdataset tar. */
export async function dropTarSamples(
  storage: DatasetStorage,
  path: string,
  keys: readonly string[],
): Promise<RewriteOutcome> {
  const bytesBefore = await sizeOf(storage, path);
  const wanted = new Set(keys);
  const members = await plainTarMembers(await storage.localPath(path));
  if (members !== undefined) return copyTarMembers(storage, path, members, wanted, bytesBefore);
  const removedKeys = new Set<string>();
  let damaged = 0;
  try {
    await storage.writeAtomicWith(path, async (localPath) => {
      const file = await open(localPath, "w");
      try {
        const tar = new TarWriter(file);
        for await (const entry of readTarEntries(storage.openRead(path))) {
          if (entry.kind === "damaged") {
            damaged++;
            continue;
          }
          const { key } = splitSampleName(entry.name);
          if (wanted.has(key)) removedKeys.add(key);
          else await tar.add(entry.name, entry.data);
        }
        if (removedKeys.size === 0) throw new NothingToRemove();
        await tar.finish();
      } finally {
        await file.close();
      }
    });
  } catch (error) {
    if (error instanceof NothingToRemove) {
      return { removed: 0, damaged: 0, bytesBefore, bytesAfter: bytesBefore };
    }
    throw error;
  }
  return {
    removed: removedKeys.size,
    damaged,
    bytesBefore,
    bytesAfter: await sizeOf(storage, path),
  };
}

const TAR_BLOCK = 512;
/** GNU tar and download's writer pad archives to 20 blocks. */
const TAR_RECORD = 20 * TAR_BLOCK;

interface TarMember {
  key: string;
  /** Byte range of the header, data and padding. */
  start: number;
  end: number;
}

/**
 * Two buffers of COPY_BLOCK_BYTES kept for the process: a fresh buffer costs a page fault per
 * 4 KB on first touch, which measured as much as the copying itself on a virtual machine.
 */
const scratch = { input: Buffer.alloc(0), output: Buffer.alloc(0) };

function scratchBuffer(role: keyof typeof scratch): Buffer {
  if (scratch[role].length < COPY_BLOCK_BYTES) scratch[role] = Buffer.alloc(COPY_BLOCK_BYTES);
  return scratch[role];
}

/**
 * Reads a file through one large block at a time, for many small reads in file order. What
 * `bytes` returns is valid until the next call.
 */
class BlockReader {
  readonly #buffer = scratchBuffer("input");
  #block: Buffer = Buffer.alloc(0);
  #blockStart = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}

  /** `length` bytes at `offset` (at most COPY_BLOCK_BYTES; fewer at the end of the file). */
  async bytes(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, this.size);
    if (offset < this.#blockStart || end > this.#blockStart + this.#block.length) {
      const wanted = Math.min(this.#buffer.length, this.size - offset);
      const { bytesRead } = await this.handle.read(this.#buffer, 0, wanted, offset);
      this.#block = this.#buffer.subarray(0, bytesRead);
      this.#blockStart = offset;
    }
    return this.#block.subarray(offset - this.#blockStart, end - this.#blockStart);
  }
}

/**
 * The members of a tar whose every header is a plain, valid ustar file header (what download
 * writes), found by reading the headers only; undefined for anything else (long names, pax
 * headers, a damaged header), which the member-by-member path handles.
 */
async function plainTarMembers(path: string): Promise<TarMember[] | undefined> {
  const handle = await open(path, "r");
  try {
    const reader = new BlockReader(handle, (await handle.stat()).size);
    const members: TarMember[] = [];
    let offset = 0;
    while (offset + TAR_BLOCK <= reader.size) {
      const header = await reader.bytes(offset, TAR_BLOCK);
      if (header.every((byte) => byte === 0)) return members;
      const type = header[156];
      if ((type !== 0x30 && type !== 0) || !plainChecksum(header)) return undefined;
      const sizeText = header
        .toString("latin1", 124, 136)
        .replace(/[\0 ]+$/, "")
        .trim();
      if (!/^[0-7]+$/.test(sizeText)) return undefined;
      const end =
        offset + TAR_BLOCK + Math.ceil(Number.parseInt(sizeText, 8) / TAR_BLOCK) * TAR_BLOCK;
      if (end > reader.size) return undefined;
      const name = cString(header, 0, 100);
      const prefix =
        header.toString("latin1", 257, 262) === "ustar" ? cString(header, 345, 500) : "";
      members.push({
        key: splitSampleName(prefix === "" ? name : `${prefix}/${name}`).key,
        start: offset,
        end,
      });
      offset = end;
    }
    return undefined;
  } finally {
    await handle.close();
  }
}

function cString(bytes: Buffer, start: number, end: number): string {
  const zero = bytes.indexOf(0, start);
  return bytes.toString("utf8", start, zero < 0 || zero > end ? end : zero);
}

function plainChecksum(header: Buffer): boolean {
  const stored = Number.parseInt(
    header
      .toString("latin1", 148, 156)
      .replace(/[\0 ]+$/, "")
      .trim(),
    8,
  );
  let sum = 0;
  for (let index = 0; index < TAR_BLOCK; index++) {
    sum += index >= 148 && index < 156 ? 0x20 : (header[index] as number);
  }
  return stored === sum;
}

/** Copies the byte ranges of the kept members as they are, then the end blocks. */
async function copyTarMembers(
  storage: DatasetStorage,
  path: string,
  members: readonly TarMember[],
  wanted: ReadonlySet<string>,
  bytesBefore: number,
): Promise<RewriteOutcome> {
  const removedKeys = new Set(
    members.filter((member) => wanted.has(member.key)).map((member) => member.key),
  );
  if (removedKeys.size === 0) {
    return { removed: 0, damaged: 0, bytesBefore, bytesAfter: bytesBefore };
  }
  // Runs of consecutive kept members, copied as one range each.
  const ranges: [number, number][] = [];
  for (const member of members) {
    if (wanted.has(member.key)) continue;
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[1] === member.start) last[1] = member.end;
    else ranges.push([member.start, member.end]);
  }
  const source = await storage.localPath(path);
  await storage.writeAtomicWith(path, async (localPath) => {
    const input = await open(source, "r");
    const output = await open(localPath, "w");
    try {
      const reader = new BlockReader(input, bytesBefore);
      const staged = scratchBuffer("output");
      let fill = 0;
      let written = 0;
      for (const [start, end] of ranges) {
        for (let position = start; position < end; ) {
          const room = staged.length - fill;
          const piece = await reader.bytes(position, Math.min(room, end - position));
          if (piece.length === 0) {
            throw new ClipcrawlError("CC_TAR", `${source}: the file ends early`);
          }
          piece.copy(staged, fill);
          fill += piece.length;
          position += piece.length;
          if (fill === staged.length) {
            await output.write(staged, 0, fill);
            written += fill;
            fill = 0;
          }
        }
      }
      if (fill > 0) await output.write(staged, 0, fill);
      written += fill;
      const ending = written + 2 * TAR_BLOCK;
      await output.write(
        Buffer.alloc(2 * TAR_BLOCK + ((TAR_RECORD - (ending % TAR_RECORD)) % TAR_RECORD)),
      );
    } finally {
      await Promise.all([input.close(), output.close()]);
    }
  });
  return {
    removed: removedKeys.size,
    damaged: 0,
    bytesBefore,
    bytesAfter: await sizeOf(storage, path),
  };
}

/** Deletes the files of `keys` from an image folder (download's `files` output format). */
export async function dropFolderSamples(
  storage: DatasetStorage,
  folder: string,
  keys: readonly string[],
): Promise<RewriteOutcome> {
  const wanted = new Set(keys);
  const local = await storage.localPath(folder);
  const names = await readdir(local).catch(() => [] as string[]);
  const removedKeys = new Set<string>();
  let bytesBefore = 0;
  for (const name of names) {
    const { key } = splitSampleName(name);
    if (!wanted.has(key)) continue;
    bytesBefore += await sizeOf(storage, `${folder}/${name}`);
    removedKeys.add(key);
    await rm(join(local, name), { force: true });
  }
  return { removed: removedKeys.size, damaged: 0, bytesBefore, bytesAfter: 0 };
}

interface NpyLayout {
  descr: string;
  rows: number;
  /** Values per row (the product of the other dimensions). */
  rowValues: number;
  shapeRest: number[];
  itemSize: number;
  dataOffset: number;
}

/** Bytes read per step when rewriting an `.npy` file. */
const COPY_BLOCK_BYTES = 8 * 1024 * 1024;
const NPY_ITEM_SIZES: Record<string, number> = { "<f2": 2, "<f4": 4, "<f8": 8 };
const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

async function readNpyLayout(handle: FileHandle, describe: string): Promise<NpyLayout> {
  const head = Buffer.alloc(4096);
  const { bytesRead } = await handle.read(head, 0, head.length, 0);
  const major = head[6];
  if (bytesRead < 10 || !head.subarray(0, 6).equals(NPY_MAGIC) || (major !== 1 && major !== 2)) {
    throw new ClipcrawlError("CC_NPY", `${describe}: not a .npy file clipcrawl can rewrite`);
  }
  const headerLength = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  const headerStart = major === 1 ? 10 : 12;
  const header = head.toString("latin1", headerStart, headerStart + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1] ?? "";
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "")
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map(Number);
  const itemSize = NPY_ITEM_SIZES[descr];
  if (itemSize === undefined || shape.length === 0 || /True/.test(header)) {
    throw new ClipcrawlError("CC_NPY", `${describe}: unsupported .npy header ${header.trim()}`);
  }
  const [rows, ...shapeRest] = shape as [number, ...number[]];
  return {
    descr,
    rows,
    rowValues: shapeRest.reduce((product, size) => product * size, 1),
    shapeRest,
    itemSize,
    dataOffset: headerStart + headerLength,
  };
}

/** A version 1.0 header as numpy.save (and src/io/npy.ts) writes it. */
function npyHeader(descr: string, shape: readonly number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  const unpadded = NPY_MAGIC.length + 4 + dict.length + 1;
  const padding = (64 - (unpadded % 64)) % 64;
  const text = `${dict}${" ".repeat(padding)}\n`;
  const prefix = Buffer.alloc(10);
  NPY_MAGIC.copy(prefix, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(text.length, 8);
  return Buffer.concat([prefix, Buffer.from(text, "latin1")]);
}

/** Rows of an `.npy` file (its header's first dimension). */
export async function npyRows(storage: DatasetStorage, path: string): Promise<number> {
  const handle = await open(await storage.localPath(path), "r");
  try {
    return (await readNpyLayout(handle, storage.describe(path))).rows;
  } finally {
    await handle.close();
  }
}

/**
 * Drops the rows at `positions` (sorted, distinct) of an `.npy` matrix that had `rowsBefore`
 * rows when the removal was planned; a file with `rowsBefore − positions.length` rows is done.
 */
export async function dropNpyRows(
  storage: DatasetStorage,
  path: string,
  positions: readonly number[],
  rowsBefore: number,
): Promise<RewriteOutcome> {
  const bytesBefore = await sizeOf(storage, path);
  const source = await storage.localPath(path);
  const input = await open(source, "r");
  let layout: NpyLayout;
  try {
    layout = await readNpyLayout(input, storage.describe(path));
  } finally {
    await input.close();
  }
  const rowsAfter = rowsBefore - positions.length;
  if (layout.rows === rowsAfter)
    return { removed: 0, damaged: 0, bytesBefore, bytesAfter: bytesBefore };
  if (layout.rows !== rowsBefore) {
    throw new ClipcrawlError(
      "CC_REMOVAL_CONFLICT",
      `${storage.describe(path)} has ${layout.rows} rows; the removal was planned when it had ${rowsBefore} (and leaves ${rowsAfter}): it changed since`,
    );
  }
  const rowBytes = layout.rowValues * layout.itemSize;
  const dropped = new Set(positions);
  await storage.writeAtomicWith(path, async (localPath) => {
    const input = await open(source, "r");
    const output = await open(localPath, "w");
    try {
      await output.write(npyHeader(layout.descr, [rowsAfter, ...layout.shapeRest]));
      // A block of rows at a time: the kept rows are packed and written in one go.
      const blockRows = Math.max(1, Math.floor(COPY_BLOCK_BYTES / Math.max(rowBytes, 1)));
      const block =
        blockRows * rowBytes <= COPY_BLOCK_BYTES ? scratchBuffer("input") : Buffer.alloc(rowBytes);
      const packed =
        blockRows * rowBytes <= COPY_BLOCK_BYTES ? scratchBuffer("output") : Buffer.alloc(rowBytes);
      for (let first = 0; first < layout.rows; first += blockRows) {
        const count = Math.min(blockRows, layout.rows - first);
        const { bytesRead } = await input.read(
          block,
          0,
          count * rowBytes,
          layout.dataOffset + first * rowBytes,
        );
        if (bytesRead < count * rowBytes) {
          throw new ClipcrawlError("CC_NPY", `${storage.describe(path)}: the file ends early`);
        }
        let length = 0;
        for (let row = 0; row < count; row++) {
          if (dropped.has(first + row)) continue;
          block.copy(packed, length, row * rowBytes, (row + 1) * rowBytes);
          length += rowBytes;
        }
        if (length > 0) await output.write(packed, 0, length);
      }
    } finally {
      await Promise.all([input.close(), output.close()]);
    }
  });
  return {
    removed: positions.length,
    damaged: 0,
    bytesBefore,
    bytesAfter: await sizeOf(storage, path),
  };
}
