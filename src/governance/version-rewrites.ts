/**
 * Dataset versions (src/formats/dataset-versions.ts) keep their dataset shards as hard links:
 * rewriting `dataset/NNNNN.parquet` leaves a version's link holding the old bytes, removed samples
 * included. So a compaction also takes the samples out of every version snapshot that holds them:
 *
 * - a snapshot file that was the live shard itself (the same inode when planned) is linked again
 *   to the rewritten live shard: no bytes written, and the version still shares it;
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
import type { LocalStorage } from "../io/local-storage.js";
import { quoteLiteral } from "../io/parquet.js";
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
  storage: LocalStorage,
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
      const own = await stat(await storage.localPath(shard.path));
      const live = await stat(await storage.localPath(layout.datasetShard(shard.shard))).catch(
        () => undefined,
      );
      const sameFile = live !== undefined && live.ino === own.ino && live.dev === own.dev;
      rewrites.push({
        version: version.id,
        path: shard.path,
        keys,
        inode: `${own.dev}:${own.ino}`,
        ...(sameFile ? { linkedTo: layout.datasetShard(shard.shard) } : {}),
      });
    }
  }
  return rewrites;
}

/**
 * Applies the plan (after the live dataset shards were rewritten), then updates the records of
 * the versions it touched. Safe to run again: a file without the keys is left as it is.
 */
export async function applyVersionRewrites(
  connection: DuckDBConnection,
  storage: LocalStorage,
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
