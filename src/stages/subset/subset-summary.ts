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
  rows: number;
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

/** One pass over `relation` (a table, or a subquery in parentheses): per language and overall. */
export async function summariseRows(
  connection: DuckDBConnection,
  relation: string,
  available: readonly string[],
): Promise<RowsSummary> {
  const columns = RANGE_COLUMNS.filter((column) => available.includes(column));
  const aggregates = columns.flatMap((column) => {
    const value = `CAST(${quoteIdentifier(column)} AS DOUBLE)`;
    // NaN (a head that failed) counts as missing, not as a value.
    const valid = `CASE WHEN isnan(${value}) THEN NULL ELSE ${value} END`;
    return [`min(${valid})`, `max(${valid})`, `avg(${valid})`, `count(*) - count(${valid})`];
  });
  const byLanguage = available.includes("LANGUAGE");
  const reader = await connection.runAndReadAll(
    `SELECT ${byLanguage ? "GROUPING(LANGUAGE) AS overall, coalesce(LANGUAGE, '') AS language" : "1 AS overall, '' AS language"}, count(*) AS n${aggregates.map((aggregate) => `, ${aggregate}`).join("")}
     FROM ${relation}${byLanguage ? " GROUP BY GROUPING SETS ((LANGUAGE), ())" : ""}`,
  );
  const rows = reader.getRows();
  const total = rows.find((row) => Number(row[0]) === 1) ?? [];
  const number = (value: unknown) => (value === null || value === undefined ? null : Number(value));
  const ranges: Record<string, ColumnRange> = {};
  columns.forEach((column, index) => {
    const at = 3 + index * 4;
    ranges[column] = {
      min: number(total[at]),
      max: number(total[at + 1]),
      mean: number(total[at + 2]),
      nulls: Number(total[at + 3] ?? 0),
    };
  });
  const languages: Record<string, number> = {};
  if (byLanguage) {
    const counts = rows
      .filter((row) => Number(row[0]) === 0)
      .map((row) => [String(row[1]), Number(row[2])] as const)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    for (const [language, count] of counts.slice(0, TOP_LANGUAGES)) languages[language] = count;
    const other = counts.slice(TOP_LANGUAGES).reduce((sum, [, count]) => sum + count, 0);
    if (other > 0) languages["(other)"] = other;
  }
  return { rows: Number(total[2] ?? 0), languages, ranges };
}
