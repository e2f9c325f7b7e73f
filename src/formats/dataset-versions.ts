/**
 * Dataset versions: every finished `clipcrawl run` records what the dataset was — its dataset
 * shards (kept as they were: `_versions/<id>/dataset/NNNNN.parquet`, hard links on a local disk,
 * so an unchanged shard costs no space), the config and the CLIP model that made it — in
 * `_versions/<id>.json`, ids `v1`, `v2`, … in order. A version stays readable (`subset
 * --version`, `clipcrawl diff`) for as long as its folder is kept.
 */
import { readConfig } from "../config/config-file.js";
import { ClipcrawlError } from "../errors.js";
import { endsChecksum } from "../io/file-info.js";
import { layout } from "../io/layout.js";
import { duckdbConnection, quoteLiteral } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { datasetShardFiles } from "./dataset-shards.js";
import { readStatsFiles } from "./dataset-stats.js";

export interface DatasetVersion {
  id: string;
  createdAt: string;
  /** What made it: `run`, `run --queue`. */
  command: string;
  /** Rows over its shards, and the shards (root-relative paths of the kept copies). */
  rows: number;
  shards: { shard: string; path: string; bytes: number }[];
  /** The CLIP model(s) the dataset was embedded with (their digests, from embed's stats). */
  models: string[];
  config: unknown;
}

const VERSION_FILE = /^v(\d+)\.json$/;

export async function listVersions(storage: DatasetStorage): Promise<DatasetVersion[]> {
  const names = (await storage.list(layout.versionsFolder()))
    .map((name) => VERSION_FILE.exec(name))
    .filter((match): match is RegExpExecArray => match !== null)
    .sort((a, b) => Number(a[1]) - Number(b[1]));
  return Promise.all(
    names.map(
      async (match) =>
        JSON.parse(await storage.readText(layout.version(`v${match[1]}`))) as DatasetVersion,
    ),
  );
}

export async function readVersion(storage: DatasetStorage, id: string): Promise<DatasetVersion> {
  if (!(await storage.exists(layout.version(id)))) {
    const known = (await listVersions(storage)).map((version) => version.id);
    throw new ClipcrawlError(
      "CC_NO_VERSION",
      `${storage.describe(layout.version(id))}: no dataset version "${id}" (versions: ${known.join(", ") || "none yet; every finished clipcrawl run records one"})`,
    );
  }
  const version = JSON.parse(await storage.readText(layout.version(id))) as DatasetVersion;
  for (const shard of version.shards) {
    if ((await storage.stat(shard.path))?.bytes !== shard.bytes) {
      throw new ClipcrawlError(
        "CC_VERSION_GONE",
        `${storage.describe(shard.path)}: dataset version ${id}'s files are no longer kept (removed or changed since)`,
      );
    }
  }
  return version;
}

/**
 * Records the dataset as it is now as the next version, unless it equals the latest one (a run
 * that changed nothing adds no version); returns the version, new or latest.
 */
export async function recordVersion(
  storage: DatasetStorage,
  command: string,
): Promise<DatasetVersion | undefined> {
  const { readable } = await datasetShardFiles(storage);
  if (readable.length === 0) return undefined;
  const versions = await listVersions(storage);
  const latest = versions.at(-1);
  const same =
    latest !== undefined &&
    latest.shards.length === readable.length &&
    (
      await Promise.all(
        readable.map(async (shard, index) => {
          const kept = latest.shards[index];
          return (
            kept?.shard === shard.shard &&
            kept.bytes === shard.bytes &&
            (await endsChecksum(storage, kept.path, kept.bytes)) ===
              (await endsChecksum(storage, shard.path, shard.bytes))
          );
        }),
      )
    ).every(Boolean);
  if (same) return latest;
  const id = `v${versions.length === 0 ? 1 : Number(latest?.id.slice(1)) + 1}`;
  const shards = [];
  for (const shard of readable) {
    const path = layout.versionShard(id, shard.shard);
    await storage.copy(shard.path, path);
    shards.push({ shard: shard.shard, path, bytes: shard.bytes });
  }
  const models = new Set<string>();
  for (const stats of await readStatsFiles(storage, layout.embeddingsFolder())) {
    const model = stats.model as { digest?: unknown } | undefined;
    if (typeof model?.digest === "string") models.add(model.digest);
  }
  const version: DatasetVersion = {
    id,
    createdAt: new Date().toISOString(),
    command,
    rows: await countRows(await Promise.all(shards.map((shard) => storage.localPath(shard.path)))),
    shards,
    models: [...models].sort(),
    config: (await readConfig(storage)) ?? null,
  };
  // The record last: a version whose record exists has every file.
  await storage.writeAtomic(layout.version(id), `${JSON.stringify(version, null, 2)}\n`);
  return version;
}

/** Rows over Parquet files (local paths), from their footers. */
async function countRows(paths: readonly string[]): Promise<number> {
  const connection = await duckdbConnection();
  try {
    const files = paths.map(quoteLiteral).join(", ");
    const reader = await connection.runAndReadAll(
      `SELECT count(*)::BIGINT AS rows FROM read_parquet([${files}])`,
    );
    return Number(reader.getRowObjects()[0]?.rows ?? 0);
  } finally {
    connection.closeSync();
  }
}
