/**
 * After a manifest is committed, the files of earlier generations that it no longer names (old
 * graphs, old duplicate groups, segments of a rebuilt index, leftovers of a crashed build) are
 * removed. A server that memory-mapped an old graph keeps reading it: an unlinked file lives on
 * until it is unmapped.
 */
import { type IndexManifest, indexShards, MODALITIES } from "../../formats/index/index-manifest.js";
import { layout } from "../../io/layout.js";
import type { DatasetStorage } from "../../io/storage.js";

/** Graphs (HNSW or the compressed tier's IVF-PQ, sharded or from before shards) and groups. */
const GENERATION_FILE =
  /^(image|text)(-s\d{5})?-g\d{6}\.(usearch|ivfpq)$|^dup_groups-g\d{6}\.parquet$/;

export async function removeUnreferencedFiles(
  storage: DatasetStorage,
  manifest: IndexManifest,
): Promise<void> {
  const kept = new Set([
    ...indexShards(manifest).flatMap((shard) =>
      MODALITIES.map((modality) => shard.graphs[modality]),
    ),
    manifest.files.duplicateGroups,
  ]);
  for (const name of await storage.list(layout.indexFolder())) {
    const path = `${layout.indexFolder()}/${name}`;
    if (GENERATION_FILE.test(name) && !kept.has(path)) await storage.remove(path);
  }
  const segments = new Set(manifest.segments.map((segment) => segment.name));
  for (const name of await storage.listFolders(layout.indexSegmentFolder(""))) {
    if (!segments.has(name)) await storage.remove(layout.indexSegmentFolder(name));
  }
}
