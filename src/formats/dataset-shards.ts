/**
 * The dataset's shards (`dataset/NNNNN.parquet`, filter's output) as every reader finds them
 * (subset, stats, index): each one is first checked to be a Parquet file — the `PAR1` magic at
 * both ends and a footer that fits, 12 bytes read — so that one damaged shard is named, with the
 * command that redoes it, and the readers go on with the others, instead of DuckDB failing the
 * whole query with "No magic bytes found". A damaged page inside a shard shows only when it is
 * read: a reader runs its query, and only if that fails runs it again with every shard decoded
 * whole first (`readRows`, `againNamingDamage`), so that the damaged one is named and left out.
 * The whole decode costs a second read of the dataset, paid only when something is wrong.
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError, InputError } from "../errors.js";
import { layout } from "../io/layout.js";
import { checkParquetFiles, parquetDataDamage } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";

const DATASET_SHARD = /^(\d{5})\.parquet$/;

export interface DatasetShardFile {
  /** The shard's name, `NNNNN`. */
  shard: string;
  /** Root-relative path. */
  path: string;
  bytes: number;
  /** From the footer (undefined where the footers were parsed one by one, after a failure). */
  rows: number | undefined;
}

export interface DamagedDatasetShard {
  shard: string;
  path: string;
  /** What is wrong with the file, e.g. `not a Parquet file (no PAR1 magic at its start)`. */
  reason: string;
}

export interface DatasetShards {
  readable: DatasetShardFile[];
  damaged: DamagedDatasetShard[];
}

export interface DatasetShardsOptions {
  /** Decode every shard whole (a damaged page shows only then). */
  readRows?: boolean;
  /** The DuckDB to parse the footers on (see checkParquetFiles). */
  footers?: DuckDBConnection | Promise<DuckDBConnection>;
}

/** The dataset folder's shard files in name order, before any check. */
export async function listDatasetShards(
  storage: DatasetStorage,
): Promise<{ shard: string; path: string }[]> {
  return (await storage.list(layout.datasetFolder())).flatMap((name) => {
    const shard = DATASET_SHARD.exec(name)?.[1];
    return shard === undefined ? [] : [{ shard, path: layout.datasetShard(shard) }];
  });
}

/** The dataset shards in name order, split into the readable and the damaged ones. */
export async function datasetShardFiles(
  storage: DatasetStorage,
  options: DatasetShardsOptions = {},
): Promise<DatasetShards> {
  const shards: DatasetShards = { readable: [], damaged: [] };
  const found = await listDatasetShards(storage);
  const checks = await checkParquetFiles(
    storage,
    found.map(({ path }) => path),
    options.footers,
  );
  for (const [position, { shard, path }] of found.entries()) {
    const { bytes, rows } = checks[position] ?? { bytes: undefined, rows: undefined };
    let reason = checks[position]?.damage;
    if (reason === undefined && options.readRows === true)
      reason = await parquetDataDamage(storage, path);
    if (reason === undefined) shards.readable.push({ shard, path, bytes: bytes ?? 0, rows });
    else shards.damaged.push({ shard, path, reason });
  }
  return shards;
}

/**
 * datasetShardFiles for a reader that needs at least one readable shard: none at all is an
 * InputError with `advice` (what to run), all damaged one naming the command that redoes them.
 */
export async function readableDatasetShards(
  storage: DatasetStorage,
  advice: string,
  options: DatasetShardsOptions = {},
): Promise<DatasetShards> {
  const shards = await datasetShardFiles(storage, options);
  const { readable, damaged } = shards;
  if (readable.length === 0 && damaged.length > 0) {
    const names = damaged.map((shard) => shard.shard);
    throw new InputError(
      "CC_DATASET_DAMAGED",
      storage.describe(layout.datasetFolder()),
      `every dataset shard is damaged (${damaged[0]?.path}: ${damaged[0]?.reason}); redo them with: ${redoFilterCommand(storage.describe(""), names)}`,
    );
  }
  if (readable.length === 0) {
    throw new InputError("CC_NO_DATASET", storage.describe(layout.datasetFolder()), advice);
  }
  return shards;
}

/**
 * Runs `attempt` with the shards checked by their ends and footers only; if it fails on something
 * else than a clipcrawl error (DuckDB failing on a damaged page), runs it once more with every
 * shard decoded whole first, so the damaged one is found, named and left out.
 */
export async function againNamingDamage<T>(attempt: (readRows: boolean) => Promise<T>): Promise<T> {
  try {
    return await attempt(false);
  } catch (error) {
    if (error instanceof ClipcrawlError) throw error;
    return attempt(true);
  }
}

/** One line: which shard, what is wrong, and the command that writes it again. */
export function describeDamagedShard(damaged: DamagedDatasetShard, root: string): string {
  return `${damaged.path} is damaged: ${damaged.reason}; redo it with: ${redoFilterCommand(root, [damaged.shard])}`;
}

/** `clipcrawl filter --root ROOT --redo 00002,00005`. */
export function redoFilterCommand(root: string, shards: readonly string[]): string {
  return `clipcrawl filter --root ${root} --redo ${shards.join(",")}`;
}
