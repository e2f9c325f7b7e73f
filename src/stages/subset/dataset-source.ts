/**
 * The dataset as subset reads it: the shards `dataset/NNNNN.parquet` (filter's output, LAION's
 * columns; a damaged one is left out and named, see src/formats/dataset-shards.ts), their
 * columns, and the checks a user's SQL gets before it runs — so that a mistake
 * is one clear message, not a failure halfway through:
 *
 * - `--where` is parsed and bound by DuckDB against the dataset's columns; its error comes back
 *   with the position in the expression the user wrote, pointed at with a caret; an unknown
 *   column lists the columns there are;
 * - `--where` must be one boolean expression: DuckDB's parse tree of the whole query is compared
 *   with that of a plain filter, so `TRUE) UNION SELECT …` is refused, not run;
 * - `--columns` must name dataset columns.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError } from "../../errors.js";
import {
  type DamagedDatasetShard,
  type DatasetShardsOptions,
  readableDatasetShards,
} from "../../formats/dataset-shards.js";
import { readVersion } from "../../formats/dataset-versions.js";
import { liveRows, NO_TOMBSTONES, type Tombstones } from "../../formats/tombstones.js";
import { quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";

export interface DatasetShard {
  /** Root-relative path. */
  path: string;
  localPath: string;
  bytes: number;
  /** From the footer, where the check parsed it. */
  rows?: number | undefined;
}

/** The readable shards, and the damaged ones left out; none readable is an error. */
export async function datasetShards(
  storage: DatasetStorage,
  options: DatasetShardsOptions = {},
): Promise<{ shards: DatasetShard[]; damaged: DamagedDatasetShard[] }> {
  const { readable, damaged } = await readableDatasetShards(
    storage,
    "no dataset shards (NNNNN.parquet); run clipcrawl filter first",
    options,
  );
  const shards = await Promise.all(
    readable.map(async (shard) => ({
      path: shard.path,
      localPath: await storage.localPath(shard.path),
      bytes: shard.bytes,
      rows: shard.rows,
    })),
  );
  return { shards, damaged };
}

/** The shards a dataset version kept (src/formats/dataset-versions.ts). */
export async function versionShards(storage: DatasetStorage, id: string): Promise<DatasetShard[]> {
  const version = await readVersion(storage, id);
  return Promise.all(
    version.shards.map(async (shard) => ({
      path: shard.path,
      localPath: await storage.localPath(shard.path),
      bytes: shard.bytes,
    })),
  );
}

/**
 * A DuckDB relation over the shards (with `filename` and `file_row_number` when asked), less the
 * rows of removed samples when given the root's tombstones (registered on the connection).
 */
export function parquetRelation(
  shards: readonly DatasetShard[],
  positions = false,
  tombstones: Tombstones = NO_TOMBSTONES,
): string {
  const files = shards.map((shard) => quoteLiteral(shard.localPath)).join(", ");
  return liveRows(
    `read_parquet([${files}]${positions ? ", filename = true, file_row_number = true" : ""})`,
    tombstones,
  );
}

/** The dataset's column names, in order (from the first shard: filter writes one schema). */
export async function datasetColumns(
  connection: DuckDBConnection,
  shards: readonly DatasetShard[],
): Promise<string[]> {
  const reader = await connection.runAndReadAll(
    `DESCRIBE SELECT * FROM ${parquetRelation(shards.slice(0, 1))}`,
  );
  return reader.getRowObjects().map((row) => String(row.column_name));
}

/** `--columns` resolved to the dataset's spelling (DuckDB names are case-insensitive). */
export function resolveColumns(
  wanted: readonly string[],
  available: readonly string[],
  extra: readonly string[] = [],
): string[] {
  const byLower = new Map([...available, ...extra].map((name) => [name.toLowerCase(), name]));
  const resolved: string[] = [];
  for (const name of wanted) {
    const column = byLower.get(name.trim().toLowerCase());
    if (column === undefined) {
      throw new ClipcrawlError(
        "CC_SUBSET_COLUMN",
        `--columns: unknown column ${JSON.stringify(name)}; the dataset's columns are ${[...available, ...extra].join(", ")}`,
      );
    }
    if (!resolved.includes(column)) resolved.push(column);
  }
  return resolved;
}

/**
 * Checks `where` against the dataset: one boolean expression over its columns. Throws a
 * ClipcrawlError whose message has DuckDB's reason and the position, with the expression and a
 * caret under the place. `joins`: the condition has a subquery, so DuckDB may join, and a join
 * does not keep the rows in their order.
 */
export async function checkWhere(
  connection: DuckDBConnection,
  shards: readonly DatasetShard[],
  where: string,
  columns: readonly string[],
): Promise<{ joins: boolean }> {
  if (where.trim() === "") {
    throw new ClipcrawlError("CC_SUBSET_WHERE", "--where: empty expression");
  }
  const query = `SELECT * FROM ${parquetRelation(shards.slice(0, 1))} WHERE (\n${where}\n)`;
  try {
    await connection.prepare(query);
  } catch (error) {
    throw whereError(error instanceof Error ? error.message : String(error), where, columns);
  }
  const tree = await parseTree(connection, `SELECT * FROM t WHERE (\n${where}\n)`);
  const plain = await parseTree(connection, "SELECT * FROM t WHERE (TRUE)");
  if (tree === undefined || plain === undefined || tree.rest !== plain.rest) {
    throw new ClipcrawlError(
      "CC_SUBSET_WHERE",
      `--where must be one condition on the dataset's columns (no closing parenthesis that ends it, UNION, ORDER BY, LIMIT …): ${JSON.stringify(where)}`,
    );
  }
  return { joins: tree.where.includes('"class":"SUBQUERY"') };
}

/** The query's WHERE clause and the rest of its parse tree (no source positions), as JSON. */
async function parseTree(
  connection: DuckDBConnection,
  sql: string,
): Promise<{ where: string; rest: string } | undefined> {
  const reader = await connection.runAndReadAll(
    `SELECT json_serialize_sql(${quoteLiteral(sql)}) AS tree`,
  );
  const parsed = JSON.parse(String(reader.getRowObjects()[0]?.tree)) as {
    error: boolean;
    statements?: { node?: Record<string, unknown> }[];
  };
  const statements = parsed.statements ?? [];
  if (parsed.error || statements.length !== 1 || statements[0]?.node === undefined)
    return undefined;
  const withoutPositions = (value: unknown) =>
    JSON.stringify(value, (name, item) => (name === "query_location" ? undefined : item));
  return {
    where: withoutPositions(statements[0].node.where_clause),
    rest: withoutPositions({ ...statements[0].node, where_clause: null }),
  };
}

/**
 * DuckDB's message, reworded for the user: its first line, and the caret placed in the
 * expression as written (the query puts the expression from line 2 on).
 */
export function whereError(
  message: string,
  where: string,
  columns: readonly string[],
): ClipcrawlError {
  const lines = message.split("\n");
  let reason = (lines[0] ?? message).trim();
  const unknown = /Referenced column "([^"]+)" not found/.exec(reason);
  if (unknown !== null) {
    const suggestion = /Candidate bindings: "([^"]+)"/.exec(message)?.[1];
    reason = `unknown column "${unknown[1]}"${suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`}; the dataset's columns are ${columns.join(", ")}`;
  } else {
    reason = reason.replace(/^([A-Za-z ]+Error): /, "$1: ");
  }
  const position = errorPosition(lines, where);
  if (position === undefined) {
    return new ClipcrawlError("CC_SUBSET_WHERE", `--where: ${reason}`);
  }
  const { line, column, offset } = position;
  const shown = where.split("\n")[line] ?? "";
  return new ClipcrawlError(
    "CC_SUBSET_WHERE",
    `--where, character ${offset + 1}${offset >= where.length ? " (the end)" : ""}: ${reason}\n  ${shown}\n  ${" ".repeat(column)}^`,
  );
}

/** Where DuckDB's `LINE n:` and caret point, as a line, column and offset of `where`. */
function errorPosition(
  lines: readonly string[],
  where: string,
): { line: number; column: number; offset: number } | undefined {
  const at = lines.findIndex((text) => /^LINE \d+: /.test(text));
  const caret = lines[at + 1];
  if (at < 0 || caret === undefined) return undefined;
  const label = /^LINE (\d+): /.exec(lines[at] as string) as RegExpExecArray;
  const queryLine = Number(label[1]);
  let column = Math.max(0, caret.indexOf("^") - label[0].length);
  const whereLines = where.split("\n");
  // DuckDB shows a window of a long line ("...text..."): find where the window starts.
  const shown = (lines[at] as string).slice(label[0].length);
  const excerpt = shown.replace(/^\.\.\./, "").replace(/\.\.\.$/, "");
  const start = (whereLines[queryLine - 2] ?? "").indexOf(excerpt);
  if (start > 0) column += start - (shown.startsWith("...") ? 3 : 0);
  // Line 1 is the SELECT; the expression starts on line 2; the line after it is the `)`.
  if (queryLine < 2) return undefined;
  if (queryLine - 2 >= whereLines.length) {
    const last = whereLines.length - 1;
    return { line: last, column: (whereLines[last] ?? "").length, offset: where.length };
  }
  const line = queryLine - 2;
  const offset = whereLines.slice(0, line).reduce((sum, text) => sum + text.length + 1, 0) + column;
  return { line, column, offset };
}
