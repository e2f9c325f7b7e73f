/**
 * The numbers behind the statistics page (`/api/stats/:index`) and `clipcrawl stats`: the funnel
 * from links to kept pairs and the reasons for each drop, read from the stages' own stats files;
 * histograms of the similarity over every embedded pair (so the thresholds can be marked on it),
 * and of the sizes and scores over the kept rows, computed with DuckDB over the Parquet files.
 * The kept rows are the caller's: the server passes an index's segments, `stats` the dataset
 * shards; the rows of tombstoned samples (src/formats/tombstones.ts) are left out of every
 * distribution, as they are out of the caller's count. A stage the root has no stats for gives
 * nulls and empty lists, not an error.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { layout } from "../io/layout.js";
import {
  duckdbConnection,
  parquetFilesDamage,
  quoteIdentifier,
  quoteLiteral,
} from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { type LinkRotStats, readLatestLinkRot } from "./link-rot.js";
import { liveRows, NO_TOMBSTONES, registerTombstones, type Tombstones } from "./tombstones.js";

/** [lower, upper, count] */
export type HistogramBin = [number, number, number];

export interface Histogram {
  bins: HistogramBin[];
}

export interface DatasetStats {
  funnel: {
    links: number | null;
    candidates: number | null;
    downloaded: number | null;
    embedded: number | null;
    kept: number;
  };
  thresholds: { en: number; multi: number; nolang: number } | null;
  similarity: Histogram;
  languages: [string, number][];
  sizes: { width: Histogram; height: Histogram };
  punsafe: Histogram;
  pwatermark: Histogram;
  aesthetic: Histogram;
  downloadErrors: [string, number][];
  dropReasons: [string, number][];
  /** The latest `clipcrawl recheck`: how much of the dataset is still online; null before one. */
  linkRot: LinkRotStats | null;
}

export type StatsFile = Record<string, unknown>;

/** The kept rows the distributions are computed over: the index's segments, or the dataset shards. */
export interface KeptRows {
  /** Local paths of Parquet files in the LAION schema (LANGUAGE, WIDTH, HEIGHT, the scores). */
  paths: readonly string[];
  /** How many rows they hold, tombstoned ones left out (the funnel's last step). */
  rows: number;
  /** The root's tombstones: their rows are left out of the distributions. */
  tombstones?: Tombstones;
}

export async function readDatasetStats(
  storage: DatasetStorage,
  kept: KeptRows,
): Promise<DatasetStats> {
  const candidates = await readStatsFiles(storage, layout.candidatesFolder());
  const images = await readStatsFiles(storage, layout.imagesFolder());
  const embeddings = await readStatsFiles(storage, layout.embeddingsFolder());
  const dataset = await readStatsFiles(storage, layout.datasetFolder());
  const embedded = await existingFiles(storage, layout.embeddingMetadataFolder(), (name) =>
    name.endsWith(".parquet"),
  );
  const connection = await duckdbConnection();
  try {
    const tombstones = kept.tombstones ?? NO_TOMBSTONES;
    await registerTombstones(connection, tombstones);
    const keptRows = parquetRows(fileList(kept.paths), tombstones);
    const maxSize = await maxima(connection, keptRows);
    return {
      funnel: {
        links: sum(candidates, "imageLinks"),
        candidates: sum(candidates, "kept"),
        downloaded: sum(images, "successes"),
        embedded: sum(embeddings, "embedded"),
        kept: kept.rows,
      },
      thresholds: thresholds(dataset[0]),
      similarity: await histogram(
        connection,
        parquetRows(fileList(embedded), tombstones),
        "similarity",
        -1,
        1,
        100,
      ),
      languages: await languages(connection, keptRows),
      sizes: {
        width: await histogram(connection, keptRows, "WIDTH", 0, niceCeiling(maxSize.width), 20),
        height: await histogram(connection, keptRows, "HEIGHT", 0, niceCeiling(maxSize.height), 20),
      },
      punsafe: await histogram(connection, keptRows, "punsafe", 0, 1, 20),
      pwatermark: await histogram(connection, keptRows, "pwatermark", 0, 1, 20),
      aesthetic: await histogram(connection, keptRows, "AESTHETIC_SCORE", 0, 10, 20),
      downloadErrors: mergedCounts(images, "status_dict", (name) => name !== "success"),
      dropReasons: mergedCounts(dataset, "dropped_by_reason", () => true),
      linkRot: await readLatestLinkRot(storage),
    };
  } finally {
    connection.closeSync();
  }
}

/** Every `NNNNN_stats.json` of a stage's folder, parsed. */
export async function readStatsFiles(
  storage: DatasetStorage,
  folder: string,
): Promise<StatsFile[]> {
  const files: StatsFile[] = [];
  for (const name of await storage.list(folder)) {
    if (!/^\d+_stats\.json$/.test(name)) continue;
    try {
      files.push(JSON.parse(await storage.readText(`${folder}/${name}`)) as StatsFile);
    } catch {
      // A damaged stats file is left out of the counts rather than failing the page.
    }
  }
  return files;
}

async function existingFiles(
  storage: DatasetStorage,
  folder: string,
  keep: (name: string) => boolean,
): Promise<string[]> {
  const found = (await storage.list(folder)).filter(keep).map((name) => `${folder}/${name}`);
  const damage = await parquetFilesDamage(storage, found);
  const paths: string[] = [];
  // A damaged file is left out of the distributions, as a damaged stats file of the counts.
  for (const [position, path] of found.entries()) {
    if (damage[position] === undefined) paths.push(await storage.localPath(path));
  }
  return paths;
}

/** A DuckDB list of files, or undefined when there are none. */
export function fileList(paths: readonly string[]): string | undefined {
  return paths.length === 0 ? undefined : `[${paths.map(quoteLiteral).join(", ")}]`;
}

/**
 * The rows of a DuckDB list of Parquet files, less the tombstoned ones (the connection prepared
 * by registerTombstones); undefined when there are no files.
 */
export function parquetRows(
  files: string | undefined,
  tombstones: Tombstones = NO_TOMBSTONES,
): string | undefined {
  if (files === undefined) return undefined;
  return liveRows(`read_parquet(${files}, union_by_name = true)`, tombstones);
}

export function sum(files: readonly StatsFile[], field: string): number | null {
  if (files.length === 0) return null;
  return files.reduce(
    (total, file) => total + (typeof file[field] === "number" ? file[field] : 0),
    0,
  );
}

function thresholds(file: StatsFile | undefined): DatasetStats["thresholds"] {
  const config = file?.config as Record<string, unknown> | undefined;
  const en = config?.minSimilarityEn;
  const multi = config?.minSimilarityMulti;
  const nolang = config?.minSimilarityNolang;
  if (typeof en !== "number" || typeof multi !== "number" || typeof nolang !== "number") {
    return null;
  }
  return { en, multi, nolang };
}

/** Counts under `field` summed over the files, largest first. */
export function mergedCounts(
  files: readonly StatsFile[],
  field: string,
  keep: (name: string) => boolean,
): [string, number][] {
  const counts = new Map<string, number>();
  for (const file of files) {
    const entries = file[field];
    if (entries === null || typeof entries !== "object") continue;
    for (const [name, count] of Object.entries(entries as Record<string, unknown>)) {
      if (typeof count === "number" && count > 0 && keep(name)) {
        counts.set(name, (counts.get(name) ?? 0) + count);
      }
    }
  }
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

/** `rows`: a relation (parquetRows), or undefined for none. */
export async function histogram(
  connection: DuckDBConnection,
  rows: string | undefined,
  column: string,
  lower: number,
  upper: number,
  count: number,
): Promise<Histogram> {
  const width = (upper - lower) / count;
  const bins: HistogramBin[] = Array.from({ length: count }, (_, bin) => [
    round(lower + bin * width),
    round(lower + (bin + 1) * width),
    0,
  ]);
  if (rows === undefined) return { bins };
  const value = `TRY_CAST(${quoteIdentifier(column)} AS DOUBLE)`;
  const reader = await connection.runAndReadAll(
    `SELECT least(greatest(floor((v - ${lower}) / ${width}), 0), ${count - 1})::INTEGER AS bin, count(*)::INTEGER AS n
     FROM (SELECT ${value} AS v FROM ${rows})
     WHERE v IS NOT NULL AND NOT isnan(v) GROUP BY bin`,
  );
  for (const [bin, n] of reader.getRows() as [number, number][]) {
    (bins[bin] as HistogramBin)[2] = n;
  }
  return { bins };
}

export async function languages(
  connection: DuckDBConnection,
  rows: string | undefined,
): Promise<[string, number][]> {
  if (rows === undefined) return [];
  const reader = await connection.runAndReadAll(
    `SELECT coalesce(LANGUAGE, '') AS language, count(*)::INTEGER AS n FROM ${rows}
     GROUP BY language ORDER BY n DESC, language`,
  );
  return reader.getRows() as [string, number][];
}

async function maxima(
  connection: DuckDBConnection,
  rows: string | undefined,
): Promise<{ width: number; height: number }> {
  if (rows === undefined) return { width: 0, height: 0 };
  const reader = await connection.runAndReadAll(
    `SELECT coalesce(max(WIDTH), 0)::DOUBLE, coalesce(max(HEIGHT), 0)::DOUBLE FROM ${rows}`,
  );
  const [width, height] = (reader.getRows()[0] ?? [0, 0]) as [number, number];
  return { width, height };
}

/** The smallest of 1, 2, 5 × 10^n at or above `value` (at least 1). */
function niceCeiling(value: number): number {
  if (!(value > 1)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power;
  return 10 * power;
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}
