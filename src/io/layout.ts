/** The data layout of a dataset root (see docs/architecture.md): every path a stage writes. */

export const SHARD_DIGITS = 5;

/** Shard 3 is "00003": names are deterministic so re-runs and retries write the same files. */
export function shardName(index: number): string {
  if (!Number.isInteger(index) || index < 0) throw new Error(`invalid shard index ${index}`);
  return String(index).padStart(SHARD_DIGITS, "0");
}

export const layout = {
  candidatesFolder: () => "candidates",
  candidates: (shard: string) => `candidates/${shard}.parquet`,
  candidateStats: (shard: string) => `candidates/${shard}_stats.json`,
  extractSummary: () => "candidates/_summary.json",
  imagesFolder: () => "images",
  imageTar: (shard: string) => `images/${shard}.tar`,
  imageParquet: (shard: string) => `images/${shard}.parquet`,
  imageStats: (shard: string) => `images/${shard}_stats.json`,
  /** `--output-format files`: the shard's KEY.jpg, KEY.txt, KEY.json in one folder. */
  imageFilesFolder: (shard: string) => `images/${shard}`,
  embeddingsFolder: () => "embeddings",
  imageEmbeddings: (shard: string) => `embeddings/img_emb/img_emb_${shard}.npy`,
  textEmbeddings: (shard: string) => `embeddings/text_emb/text_emb_${shard}.npy`,
  embeddingMetadataFolder: () => "embeddings/metadata",
  embeddingMetadata: (shard: string) => `embeddings/metadata/metadata_${shard}.parquet`,
  /** Samples that could not be embedded, with status and error_message (not in the npy files). */
  embeddingFailures: (shard: string) => `embeddings/failures/failures_${shard}.parquet`,
  embeddingStats: (shard: string) => `embeddings/${shard}_stats.json`,
  datasetFolder: () => "dataset",
  /** The final rows in the LAION schema; shard NNNNN is filtered from embeddings shard NNNNN. */
  datasetShard: (shard: string) => `dataset/${shard}.parquet`,
  datasetStats: (shard: string) => `dataset/${shard}_stats.json`,
  indexFolder: () => "index",
  /** The index's commit point: its parameters, segments and the files of its generation. */
  indexManifest: () => "index/manifest.json",
  /** The HNSW graph of one index shard ("s00000") and modality, as written by generation N. */
  indexShardGraph: (modality: string, shard: string, generation: string) =>
    `index/${modality}-${shard}-${generation}.usearch`,
  /** The compressed tier's IVF-PQ of one index shard and modality (ivf-pq.ts), generation N. */
  indexShardCompressed: (modality: string, shard: string, generation: string) =>
    `index/${modality}-${shard}-${generation}.ivfpq`,
  /** The near-duplicate group id of every index row, in id order, as of generation N. */
  indexDuplicateGroups: (generation: string) => `index/dup_groups-${generation}.parquet`,
  /** A segment: the rows one input shard added, immutable once the manifest names it. */
  indexSegmentFolder: (segment: string) => `index/segments/${segment}`,
  indexSegmentVectors: (segment: string, modality: string) =>
    `index/segments/${segment}/${modality}_emb.npy`,
  indexSegmentMetadata: (segment: string) => `index/segments/${segment}/metadata.parquet`,
  indexSegmentRows: (segment: string) => `index/segments/${segment}/metadata.rows`,
  governanceFolder: () => "_governance",
  /** Append-only: one JSON line per removal (what, when, why, how many per file). */
  auditLog: () => "_governance/audit.jsonl",
  /** What `clipcrawl remove` took out, by kind (urls, domains, sha256, md5, sha1, keys). */
  governanceBlocklist: (kind: string) => `_governance/blocklists/${kind}.txt`,
  /** A removal's plan, written before its first rewrite and deleted after its commit. */
  removalJournal: (id: string) => `_governance/pending/${id}.json`,
  removalJournalFolder: () => "_governance/pending",
  removalLock: () => "_governance/remove.lock",
  /** The samples a removal took out, honoured by every reader until compact rewrites the files. */
  tombstonesFolder: () => "_governance/tombstones",
  tombstones: (removal: string) => `_governance/tombstones/${removal}.txt`,
  /** A compaction's plan (like a removal's journal), deleted once it is applied. */
  compactionJournal: (id: string) => `_governance/compaction/${id}.json`,
  compactionJournalFolder: () => "_governance/compaction",
  compactionLock: () => "_governance/compact.lock",
  recheckFolder: () => "_recheck",
  /** A recheck's rows, one file a recheck (`date`: YYYY-MM-DD, or with a suffix). */
  recheck: (date: string) => `_recheck/${date}.parquet`,
  recheckPart: (date: string, shard: string) => `_recheck/${date}/${shard}.parquet`,
  recheckAvailable: (date: string) => `_recheck/${date}.available.parquet`,
  recheckOptedOut: (date: string) => `_recheck/${date}.opted-out.txt`,
  recheckSummary: (date: string) => `_recheck/${date}.json`,
  atlasFolder: () => "_atlas",
  /** The atlas's commit point: the index generation it maps, its files, clusters and method. */
  atlasManifest: () => "_atlas/manifest.json",
  /** One of an atlas build's files (`points.f32`, `rows.u32`, `clusters.u16`, `keys.txt`). */
  atlasFile: (build: string, name: string) => `_atlas/${build}-${name}`,
  versionsFolder: () => "_versions",
  /** A dataset version's record; its dataset shards are kept under `_versions/<id>/dataset/`. */
  version: (id: string) => `_versions/${id}.json`,
  versionShard: (id: string, shard: string) => `_versions/${id}/dataset/${shard}.parquet`,
  /** The root's inputs (WAT files, URLs) in shard order: extract's shard NNNNN is entry NNNNN. */
  rootInputs: () => "_state/inputs.json",
  /** extract's (url, text) dedup filter as it stood after the first N shards (a later crawl's start). */
  pairFilterSnapshot: () => "_state/pair-filter.bin",
  /** A distributed index build's staged records (one an index shard job), until its commit. */
  indexBuildFolder: (build: string) => `_state/index-build/${build}`,
  indexBuildRecord: (build: string, shard: string) => `_state/index-build/${build}/${shard}.json`,
  /** The compressed tier's training a new index's shards share (an IVF-PQ file without rows). */
  indexBuildTraining: (build: string, modality: string) =>
    `_state/index-build/${build}/training-${modality}.ivfpq`,
  /** Each row's near-duplicate group within its index shard (uint32, ids from the shard's first). */
  indexBuildGroups: (build: string, shard: string) => `_state/index-build/${build}/${shard}.groups`,
  doneMarker: (stage: string, shard: string) => `_state/${stage}/${shard}.json`,
  stateFolder: (stage: string) => `_state/${stage}`,
} as const;
