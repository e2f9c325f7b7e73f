/**
 * What a subset holds, for its summary (and a paper's data section): rows per language, and the
 * range, mean and missing values of the similarity, the scores and the original image size.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { quoteIdentifier } from "../../io/parquet.js";

export interface ColumnRange {
  min: number | null;
  max: number | null;
  mean: number | null;
  /** Rows without a value (no head scored them, size unknown). */
  nulls: number;
}

export interface RowsSummary {
  languages: Record<string, number>;
  ranges: Record<string, ColumnRange>;
}

const RANGE_COLUMNS = [
  "similarity",
  "punsafe",
  "pwatermark",
  "ptoxic",
  "AESTHETIC_SCORE",
  "WIDTH",
  "HEIGHT",
];
const TOP_LANGUAGES = 12;

export async function summariseRows(
  connection: DuckDBConnection,
  table: string,
  available: readonly string[],
): Promise<RowsSummary> {
  const languages: Record<string, number> = {};
  if (available.includes("LANGUAGE")) {
    const reader = await connection.runAndReadAll(
      `SELECT coalesce(LANGUAGE, '') AS language, count(*) AS n FROM ${table} GROUP BY ALL ORDER BY n DESC, language LIMIT ${TOP_LANGUAGES + 1}`,
    );
    const rows = reader.getRowObjects();
    for (const row of rows.slice(0, TOP_LANGUAGES)) languages[String(row.language)] = Number(row.n);
    if (rows.length > TOP_LANGUAGES) {
      const total = await connection.runAndReadAll(`SELECT count(*) AS n FROM ${table}`);
      const shown = Object.values(languages).reduce((sum, count) => sum + count, 0);
      languages["(other)"] = Number(total.getRowObjects()[0]?.n ?? 0) - shown;
    }
  }
  const columns = RANGE_COLUMNS.filter((column) => available.includes(column));
  const ranges: Record<string, ColumnRange> = {};
  if (columns.length > 0) {
    const aggregates = columns.flatMap((column) => {
      const value = `CAST(${quoteIdentifier(column)} AS DOUBLE)`;
      // NaN (a head that failed) counts as missing, not as a value.
      const valid = `CASE WHEN isnan(${value}) THEN NULL ELSE ${value} END`;
      return [`min(${valid})`, `max(${valid})`, `avg(${valid})`, `count(*) - count(${valid})`];
    });
    const reader = await connection.runAndReadAll(`SELECT ${aggregates.join(", ")} FROM ${table}`);
    const values = reader.getRows()[0] ?? [];
    columns.forEach((column, index) => {
      const number = (value: unknown) =>
        value === null || value === undefined ? null : Number(value);
      ranges[column] = {
        min: number(values[index * 4]),
        max: number(values[index * 4 + 1]),
        mean: number(values[index * 4 + 2]),
        nulls: Number(values[index * 4 + 3] ?? 0),
      };
    });
  }
  return { languages, ranges };
}
