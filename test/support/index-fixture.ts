/**
 * Small embedding shards for the index tests: random unit vectors (rounded to float16 as embed
 * stores them, so exact scores here are the index's), planted near-duplicates, scores and
 * languages, written as embed writes them; and the exact answers to compare the index with.
 */
import { seededUniform } from "../../src/demo/sample/wat-generator.js";
import { layout } from "../../src/io/layout.js";
import { LocalStorage } from "../../src/io/local-storage.js";
import { encodeNpy } from "../../src/io/npy.js";
import { type ParquetColumn, writeParquet } from "../../src/io/parquet.js";
import { fromFloat16Bits, toFloat16Bits } from "../../src/models/float16.js";

export const DIMENSIONS = 32;

export interface FixtureRow {
  key: string;
  image: Float32Array;
  text: Float32Array;
  punsafe: number | null;
  pwatermark: number;
  aesthetic: number;
  language: string;
}

/** Normalised, then rounded to float16 as embed stores it, so exact scores here are the index's. */
export function unit(values: Float32Array): Float32Array {
  const norm = Math.sqrt(values.reduce((sum, value) => sum + value * value, 0));
  return fromFloat16Bits(toFloat16Bits(values.map((value) => value / norm)));
}

export function randomUnit(next: () => number, dimensions = DIMENSIONS): Float32Array {
  return unit(Float32Array.from({ length: dimensions }, () => next() * 2 - 1));
}

/** `base` moved by a small random step: cosine with it ≈ 1 − scale²·d/6. */
export function near(base: Float32Array, next: () => number, scale: number): Float32Array {
  return unit(base.map((value) => value + (next() * 2 - 1) * scale));
}

/** Makes row `at` of `rows` a near-duplicate of `of`: its image vector moved by `scale` (see near). */
export function plantNear(
  rows: FixtureRow[],
  at: number,
  of: FixtureRow,
  next: () => number,
  scale = 0.02,
): void {
  rows[at] = { ...(rows[at] as FixtureRow), image: near(of.image, next, scale) };
}

export const dot = (left: Float32Array, right: Float32Array) =>
  left.reduce((sum, value, index) => sum + value * (right[index] as number), 0);

/** Rows whose vectors are random, plus the planted near-duplicates the caller adds. */
export function randomRows(
  shard: string,
  count: number,
  seed: number,
  dimensions = DIMENSIONS,
): FixtureRow[] {
  const next = seededUniform(seed);
  return Array.from({ length: count }, (_, index) => ({
    key: `${shard}${String(index).padStart(4, "0")}`,
    image: randomUnit(next, dimensions),
    text: randomUnit(next, dimensions),
    punsafe: index % 10 === 9 ? null : next(),
    pwatermark: next(),
    aesthetic: 3 + next() * 5,
    language: index % 50 === 7 ? "sw" : index % 2 === 0 ? "en" : "fr",
  }));
}

export async function writeEmbeddingShard(
  root: string,
  shard: string,
  rows: readonly FixtureRow[],
): Promise<void> {
  const storage = new LocalStorage(root);
  const dimensions = rows[0]?.image.length ?? DIMENSIONS;
  const matrix = (side: "image" | "text") => {
    const data = new Float32Array(rows.length * dimensions);
    rows.forEach((row, index) => {
      data.set(row[side], index * dimensions);
    });
    return encodeNpy({
      dtype: "<f2",
      shape: [rows.length, dimensions],
      data: toFloat16Bits(data),
    });
  };
  await storage.writeAtomic(layout.imageEmbeddings(shard), matrix("image"));
  await storage.writeAtomic(layout.textEmbeddings(shard), matrix("text"));
  const columns: ParquetColumn<FixtureRow>[] = [
    { name: "key", type: "VARCHAR", value: (row) => row.key },
    { name: "url", type: "VARCHAR", value: (row) => `https://img.example/${row.key}.jpg` },
    { name: "caption", type: "VARCHAR", value: (row) => `caption of ${row.key}` },
    { name: "similarity", type: "DOUBLE", value: (row) => dot(row.image, row.text) },
    { name: "language", type: "VARCHAR", value: (row) => row.language },
    { name: "width", type: "INTEGER", value: () => 256 },
    { name: "height", type: "INTEGER", value: () => 256 },
    { name: "punsafe", type: "DOUBLE", value: (row) => row.punsafe },
    { name: "pwatermark", type: "DOUBLE", value: (row) => row.pwatermark },
    { name: "AESTHETIC_SCORE", type: "DOUBLE", value: (row) => row.aesthetic },
  ];
  await writeParquet(storage, layout.embeddingMetadata(shard), columns, rows);
}

/** The k best ids by exact inner product among the rows that `keep` accepts. */
export function bruteForce(
  rows: readonly FixtureRow[],
  query: Float32Array,
  k: number,
  keep: (row: FixtureRow) => boolean = () => true,
  side: "image" | "text" = "image",
): number[] {
  return rows
    .map((row, id) => ({ id, score: dot(row[side], query), keep: keep(row) }))
    .filter((entry) => entry.keep)
    .sort((a, b) => b.score - a.score)
    .slice(0, k)
    .map((entry) => entry.id);
}
