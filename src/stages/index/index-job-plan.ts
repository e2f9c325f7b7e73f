/**
 * An index build cut into shard jobs, for a distributed run (`clipcrawl run --queue`): one job
 * an index shard, so several workers build one index at once. The plan is made once, by the
 * coordinator: it counts the pending input shards' rows, so each row's id, and so each index
 * shard's rows (ids kShardSize … at most shardSize rows, as a local build cuts them), is known
 * before any job runs. A job builds its shard's graphs and its rows' near-duplicates within the
 * shard (index-shard-job.ts), a compressed one with the training the build's shards share
 * (index-job-training.ts); the commit, once every job is over, joins near-duplicates across
 * shards and writes the manifest (index-job-commit.ts).
 *
 * An input shard whose files cannot be indexed as they are (a damaged or truncated npy, row
 * counts that disagree, another dimension) is left out of the plan and reported by the commit,
 * as a local build reports it; the others are indexed.
 */
import { randomBytes } from "node:crypto";
import type { DuckDBConnection } from "@duckdb/node-api";
import { loadConfig } from "../../config/config-file.js";
import { errorMessage, InputError } from "../../errors.js";
import { describeDamagedShard } from "../../formats/dataset-shards.js";
import {
  generationName,
  type IndexParams,
  type IndexSegment,
  type IndexShard,
  indexShardName,
  indexShards,
  type Modality,
} from "../../formats/index/index-manifest.js";
import { layout } from "../../io/layout.js";
import { decodeNpyHeader, npyItemSize } from "../../io/npy.js";
import { duckdbConnection } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import type { FailedShard } from "../../shard/shard-loop.js";
import { type PlanEntry, WHOLE_DATASET } from "../../shard/stage-definition.js";
import { extendedParams, freshBuildParams, indexBuildStart, shardFailure } from "./build-index.js";
import type { IndexConfig } from "./config.js";
import type { PlannedIndexShard } from "./index-plan.js";
import {
  checkEmbeddingShapes,
  checkIndexDimensions,
  checkMetadataRows,
  parquetRowCount,
} from "./index-shard.js";

/** Rows of one input shard that one index shard holds: ids segment.firstId + from … */
export interface IndexSlice {
  input: PlannedIndexShard;
  /** The segment the input shard becomes (all its rows). */
  segment: IndexSegment;
  /** The first of the segment's rows in this index shard, and how many. */
  from: number;
  rows: number;
  /** This job writes the segment's files (it holds the segment's first row). */
  writes: boolean;
}

/** What one index shard job builds; every job of a build carries the build's common fields. */
export interface IndexShardJob {
  kind: "index shard";
  /** Names the build's staged records (a re-planned build never reads an older one's). */
  build: string;
  generation: number;
  identity: string;
  source: "dataset" | "embeddings";
  /** The manifest's generation this build extends; null: a build from scratch. */
  baseGeneration: number | null;
  params: IndexParams;
  tierReason: string;
  overBudget: boolean;
  dimensions: number;
  shardSize: number;
  /** Rows the index holds once the build is committed. */
  rows: number;
  /** The shard's name, first id and rows once built (an extended shard's earlier rows included). */
  shard: Pick<IndexShard, "name" | "firstId" | "rows">;
  /** The base's last shard, when this job adds rows to it, and the segments of its rows. */
  extends?: IndexShard;
  extendsSegments?: IndexSegment[];
  slices: IndexSlice[];
  /** Compressed tier: rows the first shard of a new index gathers before it trains. */
  trainingRows: number;
  /**
   * Compressed tier: the files whose training (lists and codebooks) every new shard takes, as a
   * local build's shards take the first one's: the extended index's last shard, or for a new
   * index the build's own, trained on the first rows before any job runs (index-job-training.ts).
   */
  training?: Record<Modality, string>;
  /** Input shards left out of the plan, and why (the first job only; the commit reports them). */
  excluded: FailedShard[];
}

export function isIndexShardJob(plan: unknown): plan is IndexShardJob {
  return (
    typeof plan === "object" && plan !== null && (plan as { kind?: unknown }).kind === "index shard"
  );
}

/**
 * The jobs of the next build: one entry an index shard to build or extend. With nothing to add,
 * one entry for the whole dataset (the stage's local call: it marks what is indexed and keeps
 * the atlas current).
 */
export async function planIndexJobs(
  storage: DatasetStorage,
  overrides: Partial<IndexConfig> = {},
): Promise<PlanEntry[]> {
  const config = (await loadConfig(storage, { index: overrides })).index;
  const start = await indexBuildStart(storage, config, false);
  const { base, previous } = start;
  const excluded: FailedShard[] = start.plan.damaged.map((damaged) => ({
    shard: damaged.shard,
    error: describeDamagedShard(damaged, storage.root),
  }));
  const counted: { input: PlannedIndexShard; rows: number }[] = [];
  let dimensions = base?.dimensions;
  const connection = await duckdbConnection();
  try {
    for (const input of start.pending) {
      try {
        const shape = await inputShape(storage, connection, input);
        if (dimensions !== undefined) {
          checkIndexDimensions(storage, input, shape.dimensions, dimensions);
        }
        dimensions = shape.dimensions;
        counted.push({ input, rows: shape.rows });
      } catch (error) {
        excluded.push({ shard: input.name, error: await shardFailure(storage, input, error) });
      }
    }
  } finally {
    connection.closeSync();
  }
  const added = counted.reduce((sum, entry) => sum + entry.rows, 0);
  // Nothing to add (or only empty shards): the local call does what is left.
  if (dimensions === undefined || added === 0) return [{ shard: WHOLE_DATASET }];

  const baseRows = base?.rows ?? 0;
  const rows = baseRows + added;
  const generation = (previous?.generation ?? 0) + 1;
  const chosen =
    base === undefined
      ? freshBuildParams(config, rows, dimensions)
      : {
          params: extendedParams(base, config, rows),
          tierReason: `${base.params.tier ?? "memory"}: extends the existing index (${base.rows} rows)`,
          overBudget: false,
          trainingRows: config.shardSize,
        };
  const build = randomBytes(8).toString("hex");
  const common = {
    kind: "index shard" as const,
    build,
    generation,
    identity: start.identity,
    source: start.plan.source,
    baseGeneration: base?.generation ?? null,
    ...chosen,
    dimensions,
    shardSize: config.shardSize,
    rows,
    ...(chosen.params.tier !== "compressed"
      ? {}
      : {
          training: trainingFiles(build, base === undefined ? undefined : indexShards(base).at(-1)),
        }),
    excluded: [] as FailedShard[],
  };

  const jobs: IndexShardJob[] = [];
  const kept = base === undefined ? [] : indexShards(base);
  const last = kept.at(-1);
  let current: IndexShardJob | undefined =
    last !== undefined && last.rows < config.shardSize
      ? {
          ...common,
          shard: { ...pick(last) },
          extends: last,
          extendsSegments: (base?.segments ?? []).filter(
            (segment) => segment.firstId + segment.rows > last.firstId,
          ),
          slices: [],
        }
      : undefined;
  // The shards kept as they are come first; the extended one is the first job.
  const unchanged = kept.length - (current === undefined ? 0 : 1);
  const open = (): IndexShardJob => {
    if (current !== undefined && current.shard.rows < config.shardSize) return current;
    if (current !== undefined) jobs.push(current);
    const firstId = current === undefined ? baseRows : current.shard.firstId + current.shard.rows;
    current = {
      ...common,
      shard: { name: indexShardName(unchanged + jobs.length), firstId, rows: 0 },
      slices: [],
    };
    return current;
  };
  let id = baseRows;
  for (const { input, rows: inputRows } of counted) {
    const segment: IndexSegment = {
      shard: input.name,
      digest: input.digest,
      name: `${generationName(generation)}-${input.name}`,
      firstId: id,
      rows: inputRows,
    };
    let from = 0;
    do {
      // An input shard without rows still becomes a segment: the job before takes it.
      const job = inputRows === 0 && current !== undefined ? current : open();
      const take = Math.min(inputRows - from, config.shardSize - job.shard.rows);
      job.slices.push({ input, segment, from, rows: take, writes: from === 0 });
      job.shard.rows += take;
      from += take;
    } while (from < inputRows);
    id += inputRows;
  }
  if (current !== undefined) jobs.push(current);
  (jobs[0] as IndexShardJob).excluded = excluded;
  return jobs.map((job) => ({ shard: job.shard.name, plan: job }));
}

function trainingFiles(build: string, last: IndexShard | undefined): Record<Modality, string> {
  if (last !== undefined) return last.graphs;
  return {
    image: layout.indexBuildTraining(build, "image"),
    text: layout.indexBuildTraining(build, "text"),
  };
}

function pick(shard: IndexShard): IndexShardJob["shard"] {
  return { name: shard.name, firstId: shard.firstId, rows: shard.rows };
}

/**
 * An input shard's rows and dimensions, from its npy headers and Parquet footers, with the checks
 * that can be made without reading its rows: both npy files whole and of one shape, as many
 * metadata rows as vectors.
 */
async function inputShape(
  storage: DatasetStorage,
  connection: DuckDBConnection,
  input: PlannedIndexShard,
): Promise<{ rows: number; dimensions: number }> {
  const image = await npyShape(storage, input.imageVectors);
  const text = await npyShape(storage, input.textVectors);
  checkEmbeddingShapes(storage, input, image, text);
  checkMetadataRows(
    storage,
    input,
    await parquetRowCount(storage, connection, input.metadata),
    image.rows,
  );
  const rows =
    input.dataset === undefined
      ? image.rows
      : await parquetRowCount(storage, connection, input.dataset);
  return { rows, dimensions: image.dimensions };
}

async function npyShape(
  storage: DatasetStorage,
  path: string,
): Promise<{ rows: number; dimensions: number }> {
  const stat = await storage.stat(path);
  if (stat === undefined) {
    throw new InputError("CC_MISSING_EMBEDDINGS", storage.describe(path), "file not found");
  }
  try {
    const header = decodeNpyHeader(await storage.readRange(path, 0, Math.min(stat.bytes, 65_546)));
    const [rows, dimensions] = header.shape;
    if (
      header.shape.length !== 2 ||
      rows === undefined ||
      dimensions === undefined ||
      dimensions < 1
    ) {
      throw new Error(`shape [${header.shape.join(", ")}], expected [rows, dimensions]`);
    }
    const expected = header.dataOffset + rows * dimensions * npyItemSize(header.dtype);
    if (stat.bytes !== expected) {
      throw new Error(
        `${stat.bytes} bytes, its header's shape [${rows}, ${dimensions}] needs ${expected}`,
      );
    }
    return { rows, dimensions };
  } catch (error) {
    throw new InputError("CC_BAD_EMBEDDINGS", storage.describe(path), errorMessage(error), {
      cause: error,
    });
  }
}
