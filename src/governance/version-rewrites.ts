/**
 * Dataset versions (src/formats/dataset-versions.ts) keep their dataset shards as hard links
 * (server-side copies on object storage):
 * rewriting `dataset/NNNNN.parquet` leaves a version's link holding the old bytes, removed samples
 * included. So a compaction also takes the samples out of every version snapshot that holds them:
 *
 * - a snapshot file that was the live shard itself (the same inode when planned; on object
 *   storage, where a snapshot is a server-side copy, the same ETag) is linked (copied) again to
 *   the rewritten live shard: no rows rewritten, and locally the version still shares it;
 * - any other snapshot file is rewritten without the rows (once for all the versions that link
 *   the same file; the others are linked to the result);
 * - then each version's record gets its shards' new sizes and its new row count, so it stays
 *   readable (`subset --version`, `diff`) and says what it holds now.
 */
import { stat } from "node:fs/promises";
import type { DuckDBConnection } from "@duckdb/node-api";
import { listVersions } from "../formats/dataset-versions.js";
import { TOMBSTONED_KEYS_TABLE } from "../formats/tombstones.js";
import { layout } from "../io/layout.js";
import { quoteLiteral } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import type { AuditFileChange } from "./audit-log.js";
import { dropParquetRows } from "./file-rewrites.js";

export interface VersionRewrite {
  version: string;
  /** The snapshot file (root-relative). */
  path: string;
  /** Its tombstoned keys. */
  keys: string[];
  /** The live dataset shard it was (same inode) when planned: linked to it again afterwards. */
  linkedTo?: string;
  /** Snapshot files that are the same file (inode) share one rewrite. */
  inode: string;
}

/** The snapshot files holding keys of TOMBSTONED_KEYS_TABLE (registered on the connection). */
export async function planVersionRewrites(
  connection: DuckDBConnection,
  storage: DatasetStorage,
): Promise<VersionRewrite[]> {
  const rewrites: VersionRewrite[] = [];
  for (const version of await listVersions(storage)) {
    const paths = new Map<string, { path: string; shard: string }>();
    for (const shard of version.shards) {
      if ((await storage.stat(shard.path)) === undefined) continue;
      paths.set(await storage.localPath(shard.path), shard);
    }
    if (paths.size === 0) continue;
    const files = [...paths.keys()].map(quoteLiteral).join(", ");
    const reader = await connection.runAndReadAll(
      `SELECT filename, list(key ORDER BY key) AS keys FROM read_parquet([${files}], filename = true)
       WHERE key IN (SELECT key FROM ${TOMBSTONED_KEYS_TABLE}) GROUP BY filename ORDER BY filename`,
    );
    for (const row of reader.getRowObjects()) {
      const shard = paths.get(String(row.filename));
      if (shard === undefined) continue;
      const keys = (row.keys as { items: unknown[] }).items.map(String);
      const own = await fileIdentity(storage, shard.path);
      const live = await fileIdentity(storage, layout.datasetShard(shard.shard));
      const sameFile = live !== undefined && live === own;
      rewrites.push({
        version: version.id,
        path: shard.path,
        keys,
        inode: own ?? shard.path,
        ...(sameFile ? { linkedTo: layout.datasetShard(shard.shard) } : {}),
      });
    }
  }
  return rewrites;
}

/**
 * What tells whether two paths hold the same file: locally its inode (a version's hard link is
 * the live shard's inode until the live shard is replaced); on object storage, where a version's
 * shard is a server-side copy, its ETag and size (the same content). Undefined when missing.
 */
async function fileIdentity(storage: DatasetStorage, path: string): Promise<string | undefined> {
  const info = await storage.stat(path);
  if (info === undefined) return undefined;
  if (info.version !== undefined) return `${info.version}:${info.bytes}`;
  const local = await stat(await storage.localPath(path));
  return `${local.dev}:${local.ino}`;
}

/**
 * Applies the plan (after the live dataset shards were rewritten), then updates the records of
 * the versions it touched. Safe to run again: a file without the keys is left as it is.
 */
export async function applyVersionRewrites(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  rewrites: readonly VersionRewrite[],
): Promise<AuditFileChange[]> {
  const changes: AuditFileChange[] = [];
  const firstOfInode = new Map<string, string>();
  for (const rewrite of rewrites) {
    const bytesBefore = (await storage.stat(rewrite.path))?.bytes ?? 0;
    const shared = firstOfInode.get(rewrite.inode);
    if (rewrite.linkedTo !== undefined) {
      await storage.copy(rewrite.linkedTo, rewrite.path);
    } else if (shared !== undefined) {
      await storage.copy(shared, rewrite.path);
    } else {
      await dropParquetRows(connection, storage, rewrite.path, rewrite.keys);
      firstOfInode.set(rewrite.inode, rewrite.path);
    }
    changes.push({
      path: rewrite.path,
      removed: rewrite.keys.length,
      bytesBefore,
      bytesAfter: (await storage.stat(rewrite.path))?.bytes ?? 0,
    });
  }
  const touched = new Set(rewrites.map((rewrite) => rewrite.version));
  for (const version of await listVersions(storage)) {
    if (!touched.has(version.id)) continue;
    const shards = await Promise.all(
      version.shards.map(async (shard) => ({
        ...shard,
        bytes: (await storage.stat(shard.path))?.bytes ?? shard.bytes,
      })),
    );
    const files = await Promise.all(shards.map((shard) => storage.localPath(shard.path)));
    const counted = await connection.runAndReadAll(
      `SELECT count(*)::BIGINT AS n FROM read_parquet([${files.map(quoteLiteral).join(", ")}])`,
    );
    const rows = Number(counted.getRowObjects()[0]?.n ?? 0);
    await storage.writeAtomic(
      layout.version(version.id),
      `${JSON.stringify({ ...version, rows, shards }, null, 2)}\n`,
    );
  }
  return changes;
}
