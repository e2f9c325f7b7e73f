/**
 * Reading URL lists as img2dataset takes them (txt, csv, tsv, tsv.gz, json, jsonl, parquet) and
 * candidate shards, as batches of input samples in file order. Everything but txt goes through
 * DuckDB, which streams, detects CSV dialects and column types, and preserves row order.
 */
import { createReadStream } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { InputError } from "../../errors.js";
import {
  type CellValue,
  type ColumnType,
  duckdbConnection,
  quoteIdentifier,
  quoteLiteral,
} from "../../io/parquet.js";
import type { ExtraColumn, InputSample } from "./samples.js";

export const URL_LIST_FORMATS = [
  "txt",
  "csv",
  "tsv",
  "tsv.gz",
  "json",
  "jsonl",
  "parquet",
] as const;
export type UrlListFormat = (typeof URL_LIST_FORMATS)[number];

export interface UrlListFile {
  path: string;
  format: UrlListFormat;
}

/** Which input columns become the sample's url, caption and carried-through columns. */
export interface RowMapping {
  urlCol: string;
  /** Empty: the input has no caption. */
  captionCol: string;
  extraColumns: readonly ExtraColumn[];
}

/** Columns the download stage writes itself, which an input column may not replace. */
export const OUTPUT_COLUMNS = [
  "key",
  "url",
  "caption",
  "status",
  "error_message",
  "width",
  "height",
  "original_width",
  "original_height",
  "exif",
  "sha256",
  "md5",
  "sha1",
] as const;

const BATCH_ROWS = 2048;

/** Files and folders (every file of the format inside, by name) → the URL list files to read. */
export async function resolveUrlListFiles(
  inputs: readonly string[],
  format: UrlListFormat | "auto",
  cwd: string = process.cwd(),
): Promise<UrlListFile[]> {
  const files: UrlListFile[] = [];
  for (const input of inputs) {
    const path = resolve(cwd, input);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined)
      throw new InputError("CC_INPUT_MISSING", input, "no such file or folder");
    if (info.isDirectory()) {
      const names = (await readdir(path)).filter((name) => !name.startsWith(".")).sort();
      for (const name of names) {
        const detected = formatOfName(name);
        if (detected !== undefined && (format === "auto" || format === detected)) {
          files.push({ path: join(path, name), format: detected });
        }
      }
      continue;
    }
    const detected = format === "auto" ? formatOfName(path) : format;
    if (detected === undefined) {
      throw new InputError(
        "CC_INPUT_FORMAT",
        input,
        `cannot tell the format from the name; give --input-format (${URL_LIST_FORMATS.join(", ")})`,
      );
    }
    files.push({ path, format: detected });
  }
  return files;
}

export function formatOfName(name: string): UrlListFormat | undefined {
  const lower = name.toLowerCase();
  if (lower.endsWith(".tsv.gz")) return "tsv.gz";
  const extension = extname(lower).slice(1);
  if (extension === "ndjson") return "jsonl";
  return (URL_LIST_FORMATS as readonly string[]).includes(extension)
    ? (extension as UrlListFormat)
    : undefined;
}

/** The columns of a URL list file and the output type each is carried as. */
export async function listColumns(file: UrlListFile): Promise<ExtraColumn[]> {
  if (file.format === "txt") return [{ name: "url", type: "VARCHAR" }];
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${sourceOf(file)}`);
    return reader.getRowObjectsJS().map((row) => ({
      name: String(row.column_name),
      type: outputType(String(row.column_type)),
    }));
  } catch (error) {
    throw inputError(file, error);
  } finally {
    connection.closeSync();
  }
}

/**
 * The mapping for a URL list: checks that the named columns exist, so a typo fails before any
 * download starts, with the columns there are.
 */
export async function urlListMapping(
  file: UrlListFile,
  options: { urlCol: string; captionCol: string; saveAdditionalColumns: readonly string[] },
): Promise<RowMapping> {
  if (file.format === "txt") {
    if (options.captionCol !== "" || options.saveAdditionalColumns.length > 0) {
      throw new InputError(
        "CC_INPUT_COLUMNS",
        file.path,
        "a txt URL list has one URL a line and no caption or other columns",
      );
    }
    return { urlCol: "url", captionCol: "", extraColumns: [] };
  }
  const columns = await listColumns(file);
  const byName = new Map(columns.map((column) => [column.name, column]));
  const wanted = [options.urlCol, options.captionCol, ...options.saveAdditionalColumns];
  const missing = wanted.filter((name) => name !== "" && !byName.has(name));
  if (missing.length > 0) {
    throw new InputError(
      "CC_INPUT_COLUMNS",
      file.path,
      `no column ${missing.map((name) => JSON.stringify(name)).join(", ")} (columns: ${columns.map((column) => column.name).join(", ")})`,
    );
  }
  const clashing = options.saveAdditionalColumns.filter((name) =>
    (OUTPUT_COLUMNS as readonly string[]).includes(name),
  );
  if (clashing.length > 0) {
    throw new InputError(
      "CC_INPUT_COLUMNS",
      file.path,
      `--save-additional-columns ${clashing.join(", ")}: the output has a column of that name already`,
    );
  }
  return {
    urlCol: options.urlCol,
    captionCol: options.captionCol,
    extraColumns: options.saveAdditionalColumns.map((name) => byName.get(name) as ExtraColumn),
  };
}

export async function countRows(file: UrlListFile): Promise<number> {
  if (file.format === "txt") {
    let count = 0;
    for await (const batch of readTxtUrls(file.path)) count += batch.length;
    return count;
  }
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(`SELECT count(*) FROM ${sourceOf(file)}`);
    return Number(reader.getRowsJS()[0]?.[0] ?? 0);
  } catch (error) {
    throw inputError(file, error);
  } finally {
    connection.closeSync();
  }
}

/** Every row of the file in order, in batches. Rows without a URL get an empty one (and fail). */
export async function* readUrlListFile(
  file: UrlListFile,
  mapping: RowMapping,
): AsyncGenerator<InputSample[]> {
  if (file.format === "txt") {
    yield* readTxtUrls(file.path);
    return;
  }
  yield* streamSamples(file, selectSamples(file, mapping), mapping);
}

/** Rows [from, to) of one file, in order: how a download shard reads its part of a candidate shard. */
export async function readRowRange(
  file: UrlListFile,
  mapping: RowMapping,
  from: number,
  to: number,
): Promise<InputSample[]> {
  const samples: InputSample[] = [];
  if (file.format === "txt") {
    let index = 0;
    for await (const batch of readTxtUrls(file.path)) {
      for (const sample of batch) {
        if (index >= from && index < to) samples.push(sample);
        index++;
      }
      if (index >= to) break;
    }
    return samples;
  }
  const sql = `${selectSamples(file, mapping)} LIMIT ${to - from} OFFSET ${from}`;
  for await (const batch of streamSamples(file, sql, mapping)) samples.push(...batch);
  return samples;
}

async function* streamSamples(
  file: UrlListFile,
  sql: string,
  mapping: RowMapping,
): AsyncGenerator<InputSample[]> {
  const connection = await duckdbConnection();
  try {
    let result: Awaited<ReturnType<typeof connection.stream>>;
    try {
      result = await connection.stream(sql);
    } catch (error) {
      throw inputError(file, error);
    }
    let batch: InputSample[] = [];
    for await (const rows of result.yieldRowsJs()) {
      for (const row of rows) {
        const extra: Record<string, CellValue> = {};
        mapping.extraColumns.forEach((column, index) => {
          extra[column.name] = cellValue(row[index + 2]);
        });
        const caption = row[1];
        batch.push({
          url: typeof row[0] === "string" ? row[0].trim() : "",
          caption: typeof caption === "string" ? caption : null,
          extra,
        });
        if (batch.length >= BATCH_ROWS) {
          yield batch;
          batch = [];
        }
      }
    }
    if (batch.length > 0) yield batch;
  } finally {
    connection.closeSync();
  }
}

async function* readTxtUrls(path: string): AsyncGenerator<InputSample[]> {
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let batch: InputSample[] = [];
  for await (const line of lines) {
    const url = line.trim();
    if (url === "") continue;
    batch.push({ url, caption: null, extra: {} });
    if (batch.length >= BATCH_ROWS) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

function selectSamples(file: UrlListFile, mapping: RowMapping): string {
  const caption =
    mapping.captionCol === "" ? "NULL" : `CAST(${quoteIdentifier(mapping.captionCol)} AS VARCHAR)`;
  const columns = [
    `CAST(${quoteIdentifier(mapping.urlCol)} AS VARCHAR)`,
    caption,
    ...mapping.extraColumns.map(
      (column) => `CAST(${quoteIdentifier(column.name)} AS ${column.type})`,
    ),
  ];
  return `SELECT ${columns.join(", ")} FROM ${sourceOf(file)}`;
}

function sourceOf(file: UrlListFile): string {
  const path = quoteLiteral(file.path);
  switch (file.format) {
    case "parquet":
      return `read_parquet(${path})`;
    case "csv":
      return `read_csv(${path}, header = true)`;
    case "tsv":
    case "tsv.gz":
      return `read_csv(${path}, header = true, delim = '\t')`;
    case "json":
      return `read_json(${path}, format = 'auto')`;
    case "jsonl":
      return `read_json(${path}, format = 'newline_delimited')`;
    case "txt":
      throw new Error("txt URL lists are read line by line");
  }
}

function outputType(duckdbType: string): ColumnType {
  const type = duckdbType.toUpperCase();
  if (["INTEGER", "SMALLINT", "TINYINT", "USMALLINT", "UTINYINT"].includes(type)) return "INTEGER";
  if (["BIGINT", "UINTEGER"].includes(type)) return "BIGINT";
  if (type === "DOUBLE" || type.startsWith("DECIMAL")) return "DOUBLE";
  if (type === "FLOAT") return "FLOAT";
  if (type === "BOOLEAN") return "BOOLEAN";
  return "VARCHAR";
}

function cellValue(value: unknown): CellValue {
  if (value === null || value === undefined) return null;
  if (
    typeof value === "string" ||
    typeof value === "number" ||
    typeof value === "bigint" ||
    typeof value === "boolean"
  ) {
    return value;
  }
  return String(value);
}

function inputError(file: UrlListFile, error: unknown): InputError {
  const message = error instanceof Error ? error.message.split("\n")[0] : String(error);
  return new InputError("CC_INPUT_READ", file.path, `cannot read as ${file.format}: ${message}`, {
    cause: error,
  });
}
