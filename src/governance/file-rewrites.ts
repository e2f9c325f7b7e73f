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
 * - webdataset tars: the members of the keys go; the others' bytes are copied as they are
 *   (src/io/tar-ranges.ts) when the tar is plain, as download writes it, else read member by
 *   member and written with download's tar writer; either way the result is what download would
 *   have written without them;
 * - `.npy` embeddings: the rows at the planned positions go, streamed (src/io/npy-file.ts: a
 *   shard's matrix need not fit in memory); which rows those are comes from the metadata before
 *   its rewrite, and the row count says whether the file is old (rewrite) or new (done);
 * - image folders (download's `files` format): the key's files are deleted.
 */
import { randomBytes } from "node:crypto";
import { open } from "node:fs/promises";
import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError } from "../errors.js";
import { NpyFormatError } from "../io/npy.js";
import { copyNpyWithoutRows, readNpyFileHeader } from "../io/npy-file.js";
import {
  parquetRelation,
  quoteIdentifier,
  quoteLiteral,
  writeParquetQuery,
} from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { copyTarRanges, readTarMemberRanges, type TarMemberRange } from "../io/tar-ranges.js";
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
    const source = await parquetRelation(storage, path);
    const hit = `coalesce(key IN (SELECT key FROM ${table}), false)`;
    const counted = await connection.runAndReadAll(
      `SELECT count(*) FILTER (WHERE ${rewrite.pending(hit)}) AS n FROM ${source}`,
    );
    const removed = Number(counted.getRowObjects()[0]?.n ?? 0);
    if (removed === 0) return { removed, damaged: 0, bytesBefore, bytesAfter: bytesBefore };
    const select = await rewrite.select(source, hit);
    await writeParquetQuery(connection, storage, path, `${select} ORDER BY file_row_number`);
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

/**
 * Turns the rows of `keys` in download's image parquet into tombstone rows (see the module
 * comment); `reason` goes in their error_message (`removal ID`).
 */
export function tombstoneImageRows(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  path: string,
  keys: readonly string[],
  reason: string,
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
          return `CASE WHEN __hit THEN ${quoteLiteral(reason)} ELSE ${column} END AS ${column}`;
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
  const members = await readTarMemberRanges(await storage.localPath(path));
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

/** Copies the byte ranges of the kept members as they are, then the end blocks. */
async function copyTarMembers(
  storage: DatasetStorage,
  path: string,
  members: readonly TarMemberRange[],
  wanted: ReadonlySet<string>,
  bytesBefore: number,
): Promise<RewriteOutcome> {
  const keyOf = (member: TarMemberRange) => splitSampleName(member.name).key;
  const removedKeys = new Set(members.map(keyOf).filter((key) => wanted.has(key)));
  if (removedKeys.size === 0) {
    return { removed: 0, damaged: 0, bytesBefore, bytesAfter: bytesBefore };
  }
  const kept = members.filter((member) => !wanted.has(keyOf(member)));
  const source = await storage.localPath(path);
  await storage.writeAtomicWith(path, async (localPath) => {
    const output = await open(localPath, "w");
    try {
      const tar = new TarWriter(output);
      await copyTarRanges(source, kept, tar);
      await tar.finish();
    } finally {
      await output.close();
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
  const removedKeys = new Set<string>();
  let bytesBefore = 0;
  for (const name of await storage.list(folder)) {
    const { key } = splitSampleName(name);
    if (!wanted.has(key)) continue;
    bytesBefore += await sizeOf(storage, `${folder}/${name}`);
    removedKeys.add(key);
    await storage.remove(`${folder}/${name}`);
  }
  return { removed: removedKeys.size, damaged: 0, bytesBefore, bytesAfter: 0 };
}

/** Rows of an `.npy` file (its header's first dimension). */
export async function npyRows(storage: DatasetStorage, path: string): Promise<number> {
  try {
    return (await readNpyFileHeader(await storage.localPath(path))).shape[0] ?? 0;
  } catch (error) {
    throw npyError(storage, path, error);
  }
}

function npyError(storage: DatasetStorage, path: string, error: unknown): unknown {
  return error instanceof NpyFormatError
    ? new ClipcrawlError("CC_NPY", `${storage.describe(path)}: ${error.message}`)
    : error;
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
  const rows = await npyRows(storage, path);
  const rowsAfter = rowsBefore - positions.length;
  if (rows === rowsAfter) return { removed: 0, damaged: 0, bytesBefore, bytesAfter: bytesBefore };
  if (rows !== rowsBefore) {
    throw new ClipcrawlError(
      "CC_REMOVAL_CONFLICT",
      `${storage.describe(path)} has ${rows} rows; the removal was planned when it had ${rowsBefore} (and leaves ${rowsAfter}): it changed since`,
    );
  }
  const source = await storage.localPath(path);
  await storage.writeAtomicWith(path, async (localPath) => {
    await copyNpyWithoutRows(source, localPath, new Set(positions)).catch((error: unknown) => {
      throw npyError(storage, path, error);
    });
  });
  return {
    removed: positions.length,
    damaged: 0,
    bytesBefore,
    bytesAfter: await sizeOf(storage, path),
  };
}
