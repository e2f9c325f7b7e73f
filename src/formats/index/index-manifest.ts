/**
 * `index/manifest.json`: the commit point of the index. A build writes every new file under a
 * name of its own (segments, the graphs and the duplicate groups of its generation), then the
 * manifest atomically; a crash before that leaves the previous manifest naming the previous
 * files, which are still there. Readers (openIndex, serve) trust only what the manifest names.
 */
import { layout } from "../../io/layout.js";
import type { DatasetStorage } from "../../io/storage.js";

export const MODALITIES = ["image", "text"] as const;

/**
 * The segment (or a file of one) holding row `id`: the last of `segments`, in id order, whose
 * firstId is at most `id` (the caller knows `id` is in the index).
 */
export function segmentHolding<Segment extends { firstId: number }>(
  segments: readonly Segment[],
  id: number,
): Segment {
  let low = 0;
  let high = segments.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >>> 1;
    if ((segments[middle] as Segment).firstId <= id) low = middle;
    else high = middle - 1;
  }
  return segments[low] as Segment;
}
export type Modality = (typeof MODALITIES)[number];

/** Bump when the files a build writes change meaning, so an older index is rebuilt. */
export const INDEX_FORMAT_VERSION = 1;

export type GraphQuantization = "f32" | "f16" | "i8";

/** memory: an HNSW graph a modality (graph.ts); compressed: IVF-PQ + float16 re-rank. */
export type IndexTier = "memory" | "compressed";

/** The compressed tier's IVF-PQ (ivf-pq.ts, compressed-graph.ts). */
export interface CompressedParams {
  lists: number;
  /** Bytes of PQ code a row. */
  subQuantizers: number;
  /** Lists scanned a query (faiss's nprobe). */
  probes: number;
  /** Candidates re-ranked with their float16 rows. */
  rerank: number;
}

/** The parameters an index was built with (config values resolved for its size). */
export interface IndexParams {
  quantization: GraphQuantization;
  connectivity: number;
  expansionAdd: number;
  /** The default candidate list of a search; openIndex may choose another. */
  expansionSearch: number;
  /** At most this many rows: every query is answered by exact search. */
  flatMaxVectors: number;
  duplicateThreshold: number;
  duplicateNeighbors: number;
  /**
   * HNSW candidate list of the build's near-duplicate search (memory tier). Absent in indices
   * built before it: their search list was used.
   */
  duplicateExpansion?: number;
  /** Absent in indices built before the compressed tier: memory. */
  tier?: IndexTier;
  /** Set when tier is compressed; the graph files are then IVF-PQ files. */
  compressed?: CompressedParams;
}

/**
 * An index shard: the graphs of rows firstId … firstId + rows − 1 (whole or part segments), at
 * most the build's `shardSize`. A build rewrites only the shard it adds to (the last); the
 * others keep their files, and a serve process may hold any subset of them.
 */
export interface IndexShard {
  /** sNNNNN, in id order. */
  name: string;
  firstId: number;
  rows: number;
  graphs: Record<Modality, string>;
  /** Each graph file's size: a copy of another size is refused at load (truncated, damaged). */
  bytes?: Record<Modality, number>;
}

/** The rows one input shard added: ids firstId … firstId + rows − 1. */
export interface IndexSegment {
  /** The input shard (dataset/NNNNN.parquet, or embeddings shard NNNNN). */
  shard: string;
  /** Digest of the input files the rows were read from. */
  digest: string;
  /** Folder under index/segments/. */
  name: string;
  firstId: number;
  rows: number;
}

export interface IndexManifest {
  format: number;
  /** Increases with every build; names the graph and duplicate-group files of this build. */
  generation: number;
  /** dataset: the rows of dataset/NNNNN.parquet; embeddings: every embedded row (no dataset yet). */
  source: "dataset" | "embeddings";
  dimensions: number;
  rows: number;
  /** Digest of the configured parameters and the source: when it changes, the index is rebuilt. */
  identity: string;
  params: IndexParams;
  segments: IndexSegment[];
  /**
   * The graphs of an index written before shards (one graph a modality over every row); a
   * sharded index names its graphs in `shards` instead.
   */
  files: { graphs?: Record<Modality, string>; duplicateGroups: string };
  /** The index shards, in id order; absent in an index written before shards (one shard). */
  shards?: IndexShard[];
  /** The most rows a shard of this index holds (absent: one shard). */
  shardSize?: number;
  /** Number of distinct near-duplicate groups (rows − rows that duplicate an earlier row). */
  duplicateGroups: number;
  /** Estimated memory of the two graphs, in bytes. */
  graphBytes: number;
  createdWith: string;
  builtAt: string;
}

export function generationName(generation: number): string {
  return `g${String(generation).padStart(6, "0")}`;
}

export function indexShardName(index: number): string {
  return `s${String(index).padStart(5, "0")}`;
}

/** Where generation `generation` writes the graph (HNSW, or IVF-PQ when compressed) of one shard. */
export function shardGraphPath(
  modality: Modality,
  shard: string,
  generation: number,
  tier: IndexTier = "memory",
): string {
  return tier === "compressed"
    ? layout.indexShardCompressed(modality, shard, generationName(generation))
    : layout.indexShardGraph(modality, shard, generationName(generation));
}

/** The index's shards; an index written before shards is one shard over every row. */
export function indexShards(manifest: IndexManifest): IndexShard[] {
  if (manifest.shards !== undefined) return manifest.shards;
  const graphs = manifest.files.graphs;
  if (graphs === undefined) throw new Error("index manifest names neither shards nor graphs");
  return [{ name: indexShardName(0), firstId: 0, rows: manifest.rows, graphs }];
}

/** The manifest, or undefined when there is none or it cannot be read (the index is rebuilt). */
export async function readManifest(storage: DatasetStorage): Promise<IndexManifest | undefined> {
  const path = layout.indexManifest();
  if (!(await storage.exists(path))) return undefined;
  try {
    const manifest = JSON.parse(await storage.readText(path)) as IndexManifest;
    return manifest.format === INDEX_FORMAT_VERSION ? manifest : undefined;
  } catch {
    return undefined;
  }
}

export async function writeManifest(
  storage: DatasetStorage,
  manifest: IndexManifest,
): Promise<void> {
  await storage.writeAtomic(layout.indexManifest(), `${JSON.stringify(manifest, null, 2)}\n`);
}
