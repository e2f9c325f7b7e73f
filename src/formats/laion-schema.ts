/**
 * The dataset's columns: LAION-5B's, in LAION's order, then clipcrawl's provenance columns
 * (DESIGN: `URL, TEXT, WIDTH, HEIGHT, similarity, punsafe, pwatermark, ptoxic, AESTHETIC_SCORE,
 * LANGUAGE, hash, key, sha256, page_url, source`), each with its type and where it comes from in
 * the embeddings metadata. A column the metadata lacks (no score heads ran, tars without
 * extract's columns) is NULL of its type, so every shard has the same schema.
 */

export type DatasetColumnType = "VARCHAR" | "BIGINT" | "DOUBLE";

export interface DatasetColumn {
  name: string;
  type: DatasetColumnType;
  /** What it means, for the README and --help readers. */
  description: string;
}

export const DATASET_COLUMNS: readonly DatasetColumn[] = [
  { name: "URL", type: "VARCHAR", description: "image URL (metadata url)" },
  { name: "TEXT", type: "VARCHAR", description: "caption, as embedded (metadata caption)" },
  {
    name: "WIDTH",
    type: "BIGINT",
    description: "width of the original image (original_width; width when unknown)",
  },
  {
    name: "HEIGHT",
    type: "BIGINT",
    description: "height of the original image (original_height; height when unknown)",
  },
  { name: "similarity", type: "DOUBLE", description: "cosine of the image and text embeddings" },
  {
    name: "punsafe",
    type: "DOUBLE",
    description: "NSFW probability (NULL: no head, or it failed)",
  },
  { name: "pwatermark", type: "DOUBLE", description: "watermark probability" },
  { name: "ptoxic", type: "DOUBLE", description: "toxic-text probability" },
  { name: "AESTHETIC_SCORE", type: "DOUBLE", description: "aesthetic score" },
  {
    name: "LANGUAGE",
    type: "VARCHAR",
    description: "ISO 639-1 code of the caption's language; empty when none was detected",
  },
  {
    name: "hash",
    type: "BIGINT",
    description: "64-bit hash of (URL, TEXT): extract's dedup pair hash (sql-functions.ts)",
  },
  { name: "key", type: "VARCHAR", description: "sample key of the image shards" },
  { name: "sha256", type: "VARCHAR", description: "SHA-256 of the image bytes as downloaded" },
  { name: "page_url", type: "VARCHAR", description: "page the image link was found on" },
  { name: "source", type: "VARCHAR", description: "WAT file the pair came from" },
];

/** The metadata columns each score is read from (absent: NULL, as when its head failed). */
export const SCORE_COLUMNS = ["punsafe", "pwatermark", "ptoxic", "AESTHETIC_SCORE"] as const;
export type ScoreColumn = (typeof SCORE_COLUMNS)[number];

/** Metadata columns without which a file is not embed's metadata. */
export const REQUIRED_METADATA_COLUMNS = ["key", "url", "caption", "similarity"] as const;
