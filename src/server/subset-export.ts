/**
 * A query's results as a file a downloader takes as it is: `url, caption, similarity, punsafe,
 * pwatermark, ptoxic, AESTHETIC_SCORE, LANGUAGE, key`, as Parquet, CSV or JSON lines, written by
 * DuckDB (so pandas, img2dataset and `clipcrawl download --input-format` read it). `expand`
 * gathers that many nearest rows across the index instead of the page's `num_images`, up to the
 * server's limit; the export jobs (export-jobs.ts) do the same in the background with progress.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { SearchResult } from "../formats/index/clip-index.js";
import { duckdbConnection, quoteLiteral } from "../io/parquet.js";
import {
  asObject,
  integerField,
  type KnnLimits,
  type KnnQuery,
  numericField,
  parseKnnQuery,
  stringField,
} from "./knn-request.js";
import { RequestError } from "./request-error.js";
import type { ServedIndex } from "./served-index.js";

export const EXPORT_FORMATS = ["parquet", "csv", "jsonl"] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/** What is exported: a query's results, or rows chosen by id (the Atlas page's lasso). */
export type ExportSelection =
  | {
      kind: "query";
      query: KnnQuery;
      /** Rows to gather: `expand` when given, else the query's num_images. */
      rows: number;
    }
  | { kind: "rows"; ids: number[]; maxPunsafe: number | undefined };

export interface ExportRequest {
  /** undefined: the server's first index. */
  indexName: string | undefined;
  selection: ExportSelection;
  format: ExportFormat;
}

const COLUMNS = [
  { name: "url", column: "URL", type: "VARCHAR" },
  { name: "caption", column: "TEXT", type: "VARCHAR" },
  { name: "similarity", column: undefined, type: "DOUBLE" },
  { name: "punsafe", column: "punsafe", type: "DOUBLE" },
  { name: "pwatermark", column: "pwatermark", type: "DOUBLE" },
  { name: "ptoxic", column: "ptoxic", type: "DOUBLE" },
  { name: "AESTHETIC_SCORE", column: "AESTHETIC_SCORE", type: "DOUBLE" },
  { name: "LANGUAGE", column: "LANGUAGE", type: "VARCHAR" },
  { name: "key", column: "key", type: "VARCHAR" },
] as const;

const ROWS_PER_CHUNK = 5000;

export function parseExportRequest(
  body: unknown,
  limits: KnnLimits,
  maxExport: number,
): ExportRequest {
  const fields = asObject(body);
  const format = fields.format ?? "parquet";
  if (typeof format !== "string" || !(EXPORT_FORMATS as readonly string[]).includes(format)) {
    throw new RequestError("format", `format must be one of ${EXPORT_FORMATS.join(", ")}`);
  }
  if (fields.ids !== undefined && fields.ids !== null) {
    const indexName = stringField(fields, "indice_name", 1000);
    const ids = fields.ids;
    if (
      !Array.isArray(ids) ||
      ids.length === 0 ||
      ids.length > maxExport ||
      !ids.every((id) => Number.isInteger(id) && (id as number) >= 0)
    ) {
      throw new RequestError(
        "ids",
        `ids must be an array of 1 to ${maxExport} row ids (integers ≥ 0), as /knn-service returns them`,
      );
    }
    const maxPunsafe = numericField(fields, "max_punsafe");
    return {
      indexName,
      selection: { kind: "rows", ids: ids as number[], maxPunsafe },
      format: format as ExportFormat,
    };
  }
  const expand = integerField(fields, "expand", 1, maxExport);
  const query = parseKnnQuery(
    expand === undefined ? fields : { ...fields, num_images: 1, num_result_ids: 1, offset: 0 },
    limits,
  );
  return {
    indexName: query.indexName,
    selection: { kind: "query", query, rows: expand ?? query.numImages },
    format: format as ExportFormat,
  };
}

/**
 * The rows of an id selection as export results (no query, so no similarity): each id once, in
 * the order given; an id past the index is a 400 naming `ids`; rows above `maxPunsafe` are left
 * out, as safe mode leaves them out of a search.
 */
export function selectedRows(
  served: ServedIndex,
  selection: Extract<ExportSelection, { kind: "rows" }>,
): SearchResult[] {
  const ids = [...new Set(selection.ids)];
  const outside = ids.find((id) => id >= served.index.size);
  if (outside !== undefined) {
    throw new RequestError(
      "ids",
      `row ${outside} is not in index ${served.name} (0 … ${served.index.size - 1})`,
    );
  }
  const { maxPunsafe } = selection;
  const kept =
    maxPunsafe === undefined
      ? ids
      : ids.filter((id) => {
          const punsafe = served.index.metadata([id], ["punsafe"])[0]?.punsafe;
          return typeof punsafe !== "number" || punsafe <= maxPunsafe;
        });
  return kept.map((id) => ({ id, similarity: Number.NaN }));
}

export function exportFileName(format: ExportFormat): string {
  return `clipcrawl-subset.${format}`;
}

export function exportContentType(format: ExportFormat): string {
  return format === "parquet"
    ? "application/vnd.apache.parquet"
    : format === "csv"
      ? "text/csv; charset=utf-8"
      : "application/x-ndjson; charset=utf-8";
}

/** A fresh temporary folder for one export's file; the caller removes it. */
export async function exportFolder(): Promise<string> {
  return mkdtemp(join(tmpdir(), "clipcrawl-export-"));
}

export async function removeExportFolder(folder: string): Promise<void> {
  await rm(folder, { recursive: true, force: true });
}

/**
 * Writes the results' rows to `path`, a chunk of metadata at a time (the event loop breathes in
 * between, and `progress` hears the rows written so far).
 */
export async function writeExport(
  served: ServedIndex,
  results: readonly SearchResult[],
  format: ExportFormat,
  path: string,
  progress: (done: number) => void = () => {},
): Promise<void> {
  const connection = await duckdbConnection();
  const table = `export_${randomUUID().replaceAll("-", "")}`;
  try {
    await connection.run(
      `CREATE TABLE ${table} (${COLUMNS.map((column) => `"${column.name}" ${column.type}`).join(", ")})`,
    );
    const appender = await connection.createAppender(table);
    const metadataColumns = COLUMNS.flatMap((column) =>
      column.column === undefined ? [] : [column.column],
    );
    for (let start = 0; start < results.length; start += ROWS_PER_CHUNK) {
      const chunk = results.slice(start, start + ROWS_PER_CHUNK);
      const rows = served.index.metadata(
        chunk.map((result) => result.id),
        metadataColumns,
      );
      chunk.forEach((result, position) => {
        const row = rows[position] ?? {};
        for (const column of COLUMNS) {
          const value = column.column === undefined ? result.similarity : row[column.column];
          if (
            value === null ||
            value === undefined ||
            (typeof value === "number" && Number.isNaN(value))
          ) {
            appender.appendNull();
          } else if (column.type === "DOUBLE") appender.appendDouble(Number(value));
          else appender.appendVarchar(String(value));
        }
        appender.endRow();
      });
      progress(start + chunk.length);
      await new Promise((resolve) => setImmediate(resolve));
    }
    appender.closeSync();
    const options =
      format === "parquet"
        ? "FORMAT parquet, COMPRESSION snappy"
        : format === "csv"
          ? "FORMAT csv, HEADER"
          : "FORMAT json";
    await connection.run(`COPY ${table} TO ${quoteLiteral(path)} (${options})`);
  } finally {
    await connection.run(`DROP TABLE IF EXISTS ${table}`);
    connection.closeSync();
  }
}
