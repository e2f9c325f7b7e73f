/**
 * Parquet files through DuckDB: rows are appended to a temporary in-memory table and written with
 * COPY … TO, so every file clipcrawl writes is a standard, snappy-compressed Parquet file (as LAION and pyarrow write them) that
 * pandas, pyarrow, DuckDB and img2dataset read.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { isMainThread } from "node:worker_threads";
import type { DuckDBAppender, DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { DatasetStorage } from "./storage.js";

export type ColumnType = "VARCHAR" | "DOUBLE" | "FLOAT" | "INTEGER" | "BIGINT" | "BOOLEAN" | "BLOB";
export type CellValue = string | number | bigint | boolean | Uint8Array | null;

export interface ParquetColumn<Row> {
  name: string;
  type: ColumnType;
  value: (row: Row) => CellValue;
}

let instance: Promise<DuckDBInstance> | undefined;

/**
 * DuckDB's JavaScript API, loaded on first use: the native library takes a noticeable share of a
 * second, which commands that never touch Parquet (help, init) should not pay. Required, not
 * imported: an ESM import of this CommonJS package first scans the source of each of its dozens
 * of files for their exports, which costs about as much as running them.
 */
export function duckdbModule(): typeof import("@duckdb/node-api") {
  return createRequire(import.meta.url)("@duckdb/node-api");
}

/**
 * One in-memory DuckDB per thread; each caller gets its own connection. In a worker thread it
 * runs single-threaded: the workers are the parallelism, and one thread makes the Parquet files
 * it writes byte-for-byte reproducible.
 */
export async function duckdbConnection(): Promise<DuckDBConnection> {
  instance ??= Promise.resolve().then(() =>
    duckdbModule().DuckDBInstance.create(":memory:", isMainThread ? {} : { threads: "1" }),
  );
  return (await instance).connect();
}

export async function writeParquet<Row>(
  storage: DatasetStorage,
  path: string,
  columns: readonly ParquetColumn<Row>[],
  rows: Iterable<Row>,
): Promise<void> {
  const connection = await duckdbConnection();
  const table = `rows_${randomBytes(6).toString("hex")}`;
  try {
    const definition = columns.map((column) => `${quoteIdentifier(column.name)} ${column.type}`);
    await connection.run(`CREATE TABLE ${table} (${definition.join(", ")})`);
    const appender = await connection.createAppender(table);
    for (const row of rows) {
      for (const column of columns) appendCell(appender, column.type, column.value(row));
      appender.endRow();
    }
    appender.closeSync();
    await storage.writeAtomicWith(path, async (localPath) => {
      await connection.run(
        `COPY ${table} TO ${quoteLiteral(localPath)} (FORMAT parquet, COMPRESSION snappy)`,
      );
    });
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${table}`);
    connection.closeSync();
  }
}

/** Writes the rows of a query (in its order, with its column types) as a Parquet file, atomically. */
export async function writeParquetQuery(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  path: string,
  query: string,
): Promise<void> {
  await storage.writeAtomicWith(path, async (localPath) => {
    await connection.run(
      `COPY (${query}) TO ${quoteLiteral(localPath)} (FORMAT parquet, COMPRESSION snappy)`,
    );
  });
}

/**
 * A root file (or several, with `union_by_name`) as a DuckDB relation, with each row's position
 * in its file (`file_row_number`) and, for several files, the file's local path (`filename`).
 */
export async function parquetRelation(
  storage: DatasetStorage,
  paths: string | readonly string[],
): Promise<string> {
  if (typeof paths === "string") {
    return `read_parquet(${quoteLiteral(await storage.localPath(paths))}, file_row_number = true)`;
  }
  const local = await Promise.all(paths.map((path) => storage.localPath(path)));
  return `read_parquet([${local.map(quoteLiteral).join(", ")}], filename = true, file_row_number = true, union_by_name = true)`;
}

/** All rows of a Parquet file as plain objects (BIGINT as bigint). */
export async function readParquet(
  storage: DatasetStorage,
  path: string,
  columns: readonly string[] = [],
): Promise<Record<string, CellValue>[]> {
  const connection = await duckdbConnection();
  try {
    const selection = columns.length === 0 ? "*" : columns.map(quoteIdentifier).join(", ");
    const source = quoteLiteral(await storage.localPath(path));
    const reader = await connection.runAndReadAll(
      `SELECT ${selection} FROM read_parquet(${source})`,
    );
    return reader.getRowObjects() as Record<string, CellValue>[];
  } finally {
    connection.closeSync();
  }
}

function appendCell(appender: DuckDBAppender, type: ColumnType, value: CellValue): void {
  if (value === null) {
    appender.appendNull();
    return;
  }
  switch (type) {
    case "VARCHAR":
      appender.appendVarchar(String(value));
      break;
    case "DOUBLE":
      appender.appendDouble(Number(value));
      break;
    case "FLOAT":
      appender.appendFloat(Number(value));
      break;
    case "INTEGER":
      appender.appendInteger(Number(value));
      break;
    case "BIGINT":
      appender.appendBigInt(BigInt(value as number | bigint));
      break;
    case "BOOLEAN":
      appender.appendBoolean(Boolean(value));
      break;
    case "BLOB":
      appender.appendBlob(value as Uint8Array);
      break;
  }
}

export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Why a file cannot be a Parquet file, from its first 4 and last 8 bytes (the `PAR1` magic at
 * both ends, a footer no longer than the file), then from its footer (the schema and row groups
 * DuckDB must parse before reading a row); undefined when it can be. What DuckDB would otherwise
 * fail a whole multi-file query on ("No magic bytes found", "TProtocolException: Invalid data"),
 * without naming the file.
 */
export async function parquetFileDamage(
  storage: DatasetStorage,
  path: string,
): Promise<string | undefined> {
  const bytes = (await storage.stat(path))?.bytes;
  return (
    (await parquetEndsDamage(storage, path, bytes)) ?? (await parquetFooterDamage(storage, path))
  );
}

/** What a check of a Parquet file found: why it is damaged, or its size and rows. */
export interface ParquetFileCheck {
  damage: string | undefined;
  bytes: number | undefined;
  /** From the footer: known for a sound file. */
  rows: number | undefined;
}

/**
 * parquetFileDamage for many files, in file order: the ends of each are read, then the footers
 * of all the files whose ends are sound are parsed in one query (a query a file costs more than
 * the parse itself, across a dataset's shards); only when that fails is each footer parsed alone,
 * to name the damaged ones.
 */
export async function parquetFilesDamage(
  storage: DatasetStorage,
  paths: readonly string[],
): Promise<(string | undefined)[]> {
  return (await checkParquetFiles(storage, paths)).map((check) => check.damage);
}

/**
 * parquetFilesDamage with each file's size and rows. `footers`: the DuckDB to parse the footers
 * on (default: a connection of the thread's instance); one with `parquet_metadata_cache` that
 * then reads the files keeps them parsed, where another instance would parse them again.
 */
export async function checkParquetFiles(
  storage: DatasetStorage,
  paths: readonly string[],
  footers?: DuckDBConnection | Promise<DuckDBConnection>,
): Promise<ParquetFileCheck[]> {
  // All at once: a dataset has hundreds of shards, each a stat and two small reads.
  const checks = await Promise.all(paths.map((path) => parquetEndsCheck(storage, path)));
  // Only the files sound at their ends: a remote storage downloads a file to give its path.
  const local = await Promise.all(
    paths.map((path, position) =>
      checks[position]?.damage === undefined ? storage.localPath(path) : undefined,
    ),
  );
  const sound = () =>
    local.filter(
      (path, position): path is string =>
        path !== undefined && checks[position]?.damage === undefined,
    );
  if (sound().length === 0) return checks;
  const connection = footers === undefined ? await duckdbConnection() : await footers;
  try {
    let rows: Map<string, number>;
    try {
      rows = await footerRows(connection, sound());
    } catch {
      for (const [position, path] of paths.entries()) {
        const check = checks[position] as ParquetFileCheck;
        check.damage ??= await parquetFooterDamage(storage, path);
      }
      rows = sound().length === 0 ? new Map() : await footerRows(connection, sound());
    }
    for (const [position, check] of checks.entries()) {
      if (check.damage === undefined) check.rows = rows.get(local[position] as string);
    }
    return checks;
  } finally {
    if (footers === undefined) connection.closeSync();
  }
}

/** Rows of each Parquet file (local paths), from the footers parsed in one query. */
async function footerRows(
  connection: DuckDBConnection,
  paths: readonly string[],
): Promise<Map<string, number>> {
  const reader = await connection.runAndReadAll(
    `SELECT file_name, num_rows FROM parquet_file_metadata([${paths.map(quoteLiteral).join(", ")}])`,
  );
  return new Map(reader.getRows().map(([file, count]) => [String(file), Number(count)]));
}

async function parquetEndsCheck(storage: DatasetStorage, path: string): Promise<ParquetFileCheck> {
  const bytes = (await storage.stat(path))?.bytes;
  const damage = await parquetEndsDamage(storage, path, bytes);
  return { damage, bytes, rows: undefined };
}

async function parquetEndsDamage(
  storage: DatasetStorage,
  path: string,
  bytes: number | undefined,
): Promise<string | undefined> {
  if (bytes === undefined) return "missing";
  if (bytes < 12) return `not a Parquet file (${bytes} bytes)`;
  const head = await storage.readRange(path, 0, 4);
  const tail = await storage.readRange(path, bytes - 8, 8);
  if (head.toString("latin1") !== PARQUET_MAGIC) {
    return "not a Parquet file (no PAR1 magic at its start)";
  }
  if (tail.toString("latin1", 4) !== PARQUET_MAGIC) {
    return "not a Parquet file (no PAR1 magic at its end: cut short or overwritten)";
  }
  const footer = tail.readUInt32LE(0);
  if (footer > bytes - 12) {
    return `not a Parquet file (its footer claims ${footer} bytes, the file has ${bytes})`;
  }
  return undefined;
}

async function parquetFooterDamage(
  storage: DatasetStorage,
  path: string,
): Promise<string | undefined> {
  const connection = await duckdbConnection();
  try {
    await connection.run(
      `SELECT count(*) FROM parquet_metadata(${quoteLiteral(await storage.localPath(path))})`,
    );
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    return `not a readable Parquet file (its footer does not parse: ${reason?.replace(/^Invalid Error: /, "")})`;
  } finally {
    connection.closeSync();
  }
  return undefined;
}

/**
 * Why a Parquet file whose footer parses still cannot be read to its end (a damaged page:
 * "TProtocolException: Invalid data", a snappy block that does not decompress), found by
 * decoding every column of every row; undefined when it reads. A whole read: for readers that
 * read every row next anyway, so that one damaged file is named instead of failing their query.
 */
export async function parquetDataDamage(
  storage: DatasetStorage,
  path: string,
): Promise<string | undefined> {
  const connection = await duckdbConnection();
  try {
    const source = quoteLiteral(await storage.localPath(path));
    await connection.run(`SELECT bit_xor(hash(t)) FROM read_parquet(${source}) t`);
    return undefined;
  } catch (error) {
    const reason = (error instanceof Error ? error.message : String(error)).split("\n")[0];
    return `not a readable Parquet file (its data does not decode: ${reason?.replace(/^Invalid Error: /, "")})`;
  } finally {
    connection.closeSync();
  }
}

const PARQUET_MAGIC = "PAR1";
