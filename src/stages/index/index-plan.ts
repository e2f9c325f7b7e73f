/**
 * Which input shards the index holds, and the digest of each one's input. The index holds the
 * rows of the dataset (`dataset/NNNNN.parquet`, with their vectors from embeddings shard NNNNN);
 * a root that has no dataset yet gets every embedded row (`embeddings/metadata/metadata_NNNNN`).
 * A digest covers the input files' size and modification time and the upstream stages' own
 * digests (hashing every file on every run would cost more than a skip check should). A dataset
 * shard that is not readable Parquet is left out of the plan and listed as damaged.
 */
import { InputError } from "../../errors.js";
import { type DamagedDatasetShard, datasetShardFiles } from "../../formats/dataset-shards.js";
import { fileIdentity } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import type { DatasetStorage } from "../../io/storage.js";
import { digestOf, ShardState } from "../../shard/shard-state.js";

const METADATA_SHARD = /^metadata_(\d{5})\.parquet$/;

export interface PlannedIndexShard {
  name: string;
  digest: string;
  /** Root-relative paths of the inputs. */
  imageVectors: string;
  textVectors: string;
  metadata: string;
  /** The dataset shard whose rows are indexed; absent: every row of `metadata`. */
  dataset?: string;
}

export interface IndexPlan {
  source: "dataset" | "embeddings";
  shards: PlannedIndexShard[];
  /** Embedding shards with no dataset shard yet (filter has not run on them): not indexed. */
  waiting: string[];
  /** Dataset shards that are not readable Parquet: not indexed. */
  damaged: DamagedDatasetShard[];
}

export async function planIndexShards(storage: DatasetStorage): Promise<IndexPlan> {
  const dataset = await datasetShardFiles(storage);
  const datasetNames = dataset.readable.map((shard) => shard.shard);
  const damagedNames = new Set(dataset.damaged.map((shard) => shard.shard));
  const embeddedNames = matching(
    await storage.list(layout.embeddingMetadataFolder()),
    METADATA_SHARD,
  );
  const source = datasetNames.length + damagedNames.size > 0 ? "dataset" : "embeddings";
  const names = source === "dataset" ? datasetNames : embeddedNames;
  if (names.length === 0 && damagedNames.size === 0) {
    throw new InputError(
      "CC_NO_INDEX_INPUT",
      storage.describe(layout.embeddingsFolder()),
      "no embedding shards (metadata_NNNNN.parquet) and no dataset shards; run clipcrawl embed (and filter) first",
    );
  }
  const embeds = new ShardState(storage, "embed");
  const filters = new ShardState(storage, "filter");
  const shards: PlannedIndexShard[] = [];
  for (const name of names) {
    const shard: PlannedIndexShard = {
      name,
      digest: "",
      imageVectors: layout.imageEmbeddings(name),
      textVectors: layout.textEmbeddings(name),
      metadata: layout.embeddingMetadata(name),
    };
    if (source === "dataset") shard.dataset = layout.datasetShard(name);
    shard.digest = digestOf({
      image: await fileIdentity(storage, shard.imageVectors),
      text: await fileIdentity(storage, shard.textVectors),
      metadata: await fileIdentity(storage, shard.metadata),
      dataset: shard.dataset === undefined ? null : await fileIdentity(storage, shard.dataset),
      embed: (await embeds.read(name))?.inputDigest ?? null,
      filter: source === "dataset" ? ((await filters.read(name))?.inputDigest ?? null) : null,
    });
    shards.push(shard);
  }
  const indexed = new Set(names);
  const waiting =
    source === "dataset"
      ? embeddedNames.filter((name) => !indexed.has(name) && !damagedNames.has(name))
      : [];
  return { source, shards, waiting, damaged: dataset.damaged };
}

function matching(files: readonly string[], pattern: RegExp): string[] {
  return files
    .map((file) => pattern.exec(file)?.[1])
    .filter((name): name is string => name !== undefined)
    .sort();
}
