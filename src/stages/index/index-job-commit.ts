/**
 * The commit of a distributed index build (index-job-plan.ts), once every shard job is over: the
 * near-duplicate groups joined across shards (joinAcrossShards; each row's groups within its own
 * shard came with its job), then the groups and the manifest written, the input shards marked
 * done and the atlas brought up to date. When a job failed nothing is committed: the index stays
 * as it was, and the failed shards are named.
 */
import { cpus } from "node:os";
import { loadConfig } from "../../config/config-file.js";
import { errorMessage } from "../../errors.js";
import { CompressedGraph } from "../../formats/index/compressed-graph.js";
import { DuplicateGroups, readDuplicateGroups } from "../../formats/index/duplicate-groups.js";
import { VectorGraph } from "../../formats/index/graph.js";
import {
  type IndexManifest,
  type IndexSegment,
  type IndexShard,
  indexShards,
  readManifest,
} from "../../formats/index/index-manifest.js";
import type { AddedRows } from "../../formats/index/row-lists.js";
import { SegmentVectors } from "../../formats/index/segment-vectors.js";
import { layout } from "../../io/layout.js";
import { decodeNpy } from "../../io/npy.js";
import type { DatasetStorage } from "../../io/storage.js";
import { fromFloat16Bits } from "../../models/float16.js";
import { ShardState } from "../../shard/shard-state.js";
import { type SharedStageRun, WHOLE_DATASET } from "../../shard/stage-definition.js";
import { ensureAtlas } from "./atlas-build.js";
import { INDEX_STAGE, markMissing, markSegmentDone, writeIndexCommit } from "./build-index.js";
import { removeUnreferencedFiles } from "./index-cleanup.js";
import { type IndexShardJob, type IndexSlice, isIndexShardJob } from "./index-job-plan.js";
import { planIndexShards } from "./index-plan.js";
import { type IndexShardRecord, readShardRecord } from "./index-shard-job.js";
import {
  type BuildGraph,
  duplicateSearchSettings,
  joinAddedDuplicates,
  joinNearDuplicates,
  type NearDuplicateSearch,
} from "./near-duplicates.js";

export async function commitIndexJobs(run: SharedStageRun): Promise<Record<string, unknown>> {
  try {
    return await commit(run);
  } catch (error) {
    run.fail(
      WHOLE_DATASET,
      `index: the build's commit failed: ${errorMessage(error)} (before its manifest, the index stays as it was)`,
    );
    return { committed: false };
  }
}

async function commit(run: SharedStageRun): Promise<Record<string, unknown>> {
  const jobs = run.plan.map((entry) => entry.plan).filter(isIndexShardJob);
  const first = jobs[0];
  // No jobs: the stage's whole-dataset call did the work.
  if (first === undefined) return {};
  const started = performance.now();
  const { storage } = run;
  for (const excluded of first.excluded) {
    run.fail(excluded.shard, `index shard ${excluded.shard} failed: ${excluded.error}`);
  }
  const config = (await loadConfig(storage, { index: run.config?.index ?? {} })).index;
  // No index job runs meanwhile: every core of the coordinator's machine (index.threads sizes
  // each job).
  const threads = cpus().length;

  const previous = await readManifest(storage);
  const expected = first.generation - 1;
  if ((previous?.generation ?? 0) !== expected) {
    run.fail(
      WHOLE_DATASET,
      `index not committed: the index changed while this build ran (generation ${previous?.generation ?? 0}, planned on ${expected}); run again`,
    );
    return { committed: false };
  }
  const base = first.baseGeneration === null ? undefined : previous;

  const records: IndexShardRecord[] = [];
  const missing: string[] = [];
  for (const job of jobs) {
    const record = await readShardRecord(storage, job);
    if (record === undefined) missing.push(job.shard.name);
    else records.push(record);
  }
  if (missing.length > 0) {
    run.fail(
      WHOLE_DATASET,
      `index not committed: shard jobs ${missing.join(", ")} did not finish; the index stays at generation ${expected}`,
    );
    return { committed: false, failedJobs: missing };
  }
  const kept = (base === undefined ? [] : indexShards(base)).filter(
    (shard) => shard.name !== first.extends?.name,
  );
  const segments = [
    ...(base?.segments ?? []),
    ...unique(jobs.flatMap((job) => job.slices.map((slice) => slice.segment))),
  ];
  const groups = new DuplicateGroups(
    base === undefined
      ? new Uint32Array(0)
      : await readDuplicateGroups(storage, base.files.duplicateGroups, base.rows),
  );
  groups.grow(first.rows);
  for (const record of records) {
    const within = new Uint32Array(
      new Uint8Array(await storage.read(layout.indexBuildGroups(first.build, record.shard.name)))
        .buffer,
    );
    const { firstId } = record.shard;
    within.forEach((root, row) => {
      if (root !== row) groups.union(firstId + row, firstId + root);
    });
  }
  const duplicateStep = performance.now();
  await joinAcrossShards(storage, jobs, kept, records, segments, groups, threads);
  const duplicateSeconds = (performance.now() - duplicateStep) / 1000;

  const manifest = await writeIndexCommit(storage, {
    generation: first.generation,
    source: first.source,
    identity: first.identity,
    dimensions: first.dimensions,
    rows: first.rows,
    params: first.params,
    segments,
    shards: [...kept, ...records.map((record) => record.shard)],
    shardSize: first.shardSize,
    groups,
  });
  const state = new ShardState(storage, INDEX_STAGE);
  for (const segment of segments.slice(base?.segments.length ?? 0)) {
    await markSegmentDone(storage, state, segment);
  }
  await removeUnreferencedFiles(storage, manifest);
  const planned = new Map(
    (await planIndexShards(storage)).shards.map((shard) => [shard.name, shard]),
  );
  await markMissing(storage, state, manifest, planned);
  for (const build of await storage.listFolders(layout.indexBuildFolder(""))) {
    await storage.remove(layout.indexBuildFolder(build));
  }
  const atlasError = await keepAtlas(storage, manifest, config, threads);
  if (atlasError !== undefined) run.fail(WHOLE_DATASET, `index: ${atlasError}`);
  return {
    committed: true,
    generation: manifest.generation,
    rows: manifest.rows,
    rowsAdded: records.reduce((sum, record) => sum + record.rowsAdded, 0),
    shardsBuilt: records.length,
    duplicateGroups: manifest.duplicateGroups,
    tierReason: first.tierReason,
    commitSeconds: (performance.now() - started) / 1000,
    crossShardDuplicateSeconds: duplicateSeconds,
  };
}

/**
 * Joins the pairs that cross shards, each found from its later row as when a local build adds
 * rows: a compressed tier's new row searches the shards before its own (the kept ones, then the
 * new ones in order); the memory tier's go through lists (joinListedAcrossShards).
 */
async function joinAcrossShards(
  storage: DatasetStorage,
  jobs: readonly IndexShardJob[],
  kept: readonly IndexShard[],
  records: readonly IndexShardRecord[],
  segments: readonly IndexSegment[],
  groups: DuplicateGroups,
  threads: number,
): Promise<void> {
  const first = jobs[0] as IndexShardJob;
  const { dimensions, params } = first;
  const shards = [...kept, ...records.map((record) => record.shard)].sort(
    (left, right) => left.firstId - right.firstId,
  );
  if (shards.length < 2) return;
  const search = { dimensions, params, groups, threads };
  if (params.compressed === undefined) {
    await joinListedAcrossShards(storage, jobs, kept, records, search);
    return;
  }
  const vectors = await SegmentVectors.open(
    await Promise.all(
      segments
        .filter((segment) => segment.rows > 0)
        .map(async (segment) => ({
          path: await storage.localPath(layout.indexSegmentVectors(segment.name, "image")),
          firstId: segment.firstId,
          rows: segment.rows,
        })),
    ),
    dimensions,
    false,
  );
  const images: BuildGraph[] = [];
  try {
    for (const shard of shards.slice(0, -1)) {
      const local = await storage.localPath(shard.graphs.image);
      const graph = await CompressedGraph.open(local, dimensions, params.compressed);
      graph.attachVectors(vectors);
      images.push(graph);
    }
    for (const job of jobs) {
      const earlier = shards.findIndex((shard) => shard.name === job.shard.name);
      if (earlier <= 0) continue;
      for (const slice of job.slices) {
        if (slice.rows === 0) continue;
        await joinNearDuplicates(
          search,
          images.slice(0, earlier),
          fromFloat16Bits(await sliceImageBits(storage, slice, dimensions)),
          slice.segment.firstId + slice.from,
        );
      }
    }
  } finally {
    vectors.close();
  }
}

/**
 * Memory tier: the build's new rows, every job's together, are compared through their lists
 * (joinAddedDuplicates, as a local build's), which costs about one search a row whatever the
 * number of shards, where each row searching the graphs before its own costs one a shard. Rows
 * the index held before the build are found through the graphs that hold them, as when a local
 * build extends an index: every new row searches the kept shards, and the rows of the other jobs
 * the shard the build extends (its own job searched it). Each slice is read once for both.
 */
async function joinListedAcrossShards(
  storage: DatasetStorage,
  jobs: readonly IndexShardJob[],
  kept: readonly IndexShard[],
  records: readonly IndexShardRecord[],
  search: NearDuplicateSearch,
): Promise<void> {
  const { dimensions, params } = search;
  const extendedName = jobs.find((job) => job.extends !== undefined)?.extends?.name;
  const extended = records.find((record) => record.shard.name === extendedName)?.shard;
  const open = async (shard: IndexShard) =>
    VectorGraph.open(
      await storage.localPath(shard.graphs.image),
      dimensions,
      duplicateSearchSettings(params),
      "view",
    );
  const keptImages = await Promise.all(kept.map(open));
  const extendedImages = extended === undefined ? [] : [await open(extended)];
  const added: AddedRows[] = [];
  for (const job of jobs) {
    const images =
      job.shard.name === extendedName ? keptImages : [...keptImages, ...extendedImages];
    for (const slice of job.slices) {
      if (slice.rows === 0) continue;
      const firstId = slice.segment.firstId + slice.from;
      const bits = await sliceImageBits(storage, slice, dimensions);
      if (images.length > 0) {
        await joinNearDuplicates(search, images, fromFloat16Bits(bits), firstId);
      }
      // One job's rows were compared among themselves by the job.
      if (jobs.length > 1) added.push({ firstId, bits });
    }
  }
  if (added.length === 0) return;
  added.sort((left, right) => left.firstId - right.firstId);
  added.forEach((chunk, index) => {
    const next = added[index + 1];
    if (next !== undefined && next.firstId !== chunk.firstId + chunk.bits.length / dimensions) {
      throw new Error(`the build's new rows are not consecutive at id ${next.firstId}`);
    }
  });
  await joinAddedDuplicates(search, added);
}

/** A slice's image rows as float16 bits, copied out of its segment's file. */
async function sliceImageBits(
  storage: DatasetStorage,
  slice: IndexSlice,
  dimensions: number,
): Promise<Uint16Array> {
  const array = decodeNpy(
    await storage.read(layout.indexSegmentVectors(slice.segment.name, "image")),
  );
  if (array.dtype !== "<f2") throw new Error(`${slice.segment.name}: not a float16 segment`);
  return array.data.slice(slice.from * dimensions, (slice.from + slice.rows) * dimensions);
}

function unique(segments: readonly IndexSegment[]): IndexSegment[] {
  const seen = new Set<string>();
  return segments.filter((segment) => !seen.has(segment.name) && seen.add(segment.name));
}

async function keepAtlas(
  storage: DatasetStorage,
  manifest: IndexManifest,
  config: Awaited<ReturnType<typeof loadConfig>>["index"],
  threads: number,
): Promise<string | undefined> {
  if (manifest.rows === 0 || config.atlasPoints === 0) return undefined;
  try {
    await ensureAtlas(storage, manifest, {
      points: config.atlasPoints,
      layoutSample: config.atlasLayoutSample,
      clusters: config.atlasClusters,
      pcaDimensions: config.atlasPcaDimensions,
      threads,
    });
    return undefined;
  } catch (error) {
    return `atlas not written: ${errorMessage(error)}`;
  }
}
