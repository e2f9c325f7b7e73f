/**
 * The metadata of a result as clip-back clients read it: the index's columns under the names
 * clip-back uses for the ones it has (`url`, `caption`) and the LAION names for the rest. The
 * dataset's `similarity` (the pair's image–text cosine) is left out: in a result, `similarity` is
 * the query's, as in clip-back. So are `hash` and `sha256`, which only `clipcrawl subset` needs.
 */
import type { MetadataValue, SearchResult } from "../formats/index/clip-index.js";
import type { ServedIndex } from "./served-index.js";

export interface ResultColumn {
  /** The index's column. */
  column: string;
  /** Its name in answers. */
  output: string;
}

export const RESULT_COLUMNS: readonly ResultColumn[] = [
  { column: "URL", output: "url" },
  { column: "TEXT", output: "caption" },
  { column: "key", output: "key" },
  { column: "punsafe", output: "punsafe" },
  { column: "pwatermark", output: "pwatermark" },
  { column: "ptoxic", output: "ptoxic" },
  { column: "AESTHETIC_SCORE", output: "AESTHETIC_SCORE" },
  { column: "LANGUAGE", output: "LANGUAGE" },
  { column: "WIDTH", output: "WIDTH" },
  { column: "HEIGHT", output: "HEIGHT" },
  { column: "page_url", output: "page_url" },
  { column: "source", output: "source" },
  { column: "dup_group", output: "dup_group" },
];

const INDEX_COLUMNS = RESULT_COLUMNS.map((column) => column.column);

export type ResultMetadata = Record<string, MetadataValue>;

/** The metadata of each id, in order, under the answer's column names. */
export function resultMetadata(served: ServedIndex, ids: readonly number[]): ResultMetadata[] {
  return served.index.metadata(ids, INDEX_COLUMNS).map((row) => {
    const renamed: ResultMetadata = {};
    for (const { column, output } of RESULT_COLUMNS) renamed[output] = row[column] ?? null;
    return renamed;
  });
}

/**
 * clip-back's answer: every result with its `id` and `similarity`, the first `withMetadata` of
 * them with their metadata too (clip-front asks for thousands of ids and fetches the metadata of
 * the rest through `/metadata` as the user scrolls).
 */
export function knnAnswer(
  served: ServedIndex,
  results: readonly SearchResult[],
  withMetadata: number,
): Record<string, MetadataValue>[] {
  const described = results.slice(0, withMetadata);
  const metadata = resultMetadata(
    served,
    described.map((result) => result.id),
  );
  return results.map((result, position) => {
    // The metadata object of the row gets the query's id and similarity: no copy per result.
    const row: Record<string, MetadataValue> = metadata[position] ?? {};
    row.id = result.id;
    row.similarity = result.similarity;
    return row;
  });
}
