/**
 * The metadata an index keeps for every row, read at query time: the dataset's LAION columns
 * (as `clipcrawl filter` writes them) and `dup_group`. When a root has no dataset yet, the same
 * columns are taken from embed's metadata (url → URL, caption → TEXT, …). A column the input
 * lacks is NULL, so every segment has the same schema.
 */
import { quoteIdentifier } from "../../io/parquet.js";

export type IndexColumnType = "VARCHAR" | "BIGINT" | "DOUBLE";

export interface IndexColumn {
  name: string;
  type: IndexColumnType;
}

/** The columns of a segment's metadata.parquet, in order. */
export const SEGMENT_COLUMNS: readonly IndexColumn[] = [
  { name: "URL", type: "VARCHAR" },
  { name: "TEXT", type: "VARCHAR" },
  { name: "WIDTH", type: "BIGINT" },
  { name: "HEIGHT", type: "BIGINT" },
  { name: "similarity", type: "DOUBLE" },
  { name: "punsafe", type: "DOUBLE" },
  { name: "pwatermark", type: "DOUBLE" },
  { name: "ptoxic", type: "DOUBLE" },
  { name: "AESTHETIC_SCORE", type: "DOUBLE" },
  { name: "LANGUAGE", type: "VARCHAR" },
  { name: "hash", type: "BIGINT" },
  { name: "key", type: "VARCHAR" },
  { name: "sha256", type: "VARCHAR" },
  { name: "page_url", type: "VARCHAR" },
  { name: "source", type: "VARCHAR" },
];

/** The near-duplicate group of a row: the smallest id of the rows it is a near-duplicate of. */
export const DUPLICATE_GROUP_COLUMN: IndexColumn = { name: "dup_group", type: "BIGINT" };

export const INDEX_COLUMNS: readonly IndexColumn[] = [...SEGMENT_COLUMNS, DUPLICATE_GROUP_COLUMN];

/**
 * SELECT expressions giving the segment columns from a relation aliased `m` whose columns are
 * `available` (lower-case name → actual name): the dataset's, or embed's metadata.
 */
export function segmentColumnExpressions(
  available: ReadonlyMap<string, string>,
  source: "dataset" | "embeddings",
): string[] {
  const column = (name: string, type: IndexColumnType) => {
    const actual = available.get(name.toLowerCase());
    return actual === undefined
      ? `CAST(NULL AS ${type})`
      : `TRY_CAST(m.${quoteIdentifier(actual)} AS ${type})`;
  };
  const fromEmbeddings: Record<string, string> = {
    URL: column("url", "VARCHAR"),
    TEXT: column("caption", "VARCHAR"),
    WIDTH: `coalesce(${column("original_width", "BIGINT")}, ${column("width", "BIGINT")})`,
    HEIGHT: `coalesce(${column("original_height", "BIGINT")}, ${column("height", "BIGINT")})`,
    LANGUAGE: `coalesce(${column("language", "VARCHAR")}, '')`,
  };
  return SEGMENT_COLUMNS.map(({ name, type }) => {
    const expression =
      source === "embeddings" && name in fromEmbeddings
        ? (fromEmbeddings[name] as string)
        : column(name, type);
    return `${expression} AS ${quoteIdentifier(name)}`;
  });
}
