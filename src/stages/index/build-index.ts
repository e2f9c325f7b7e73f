/**
 * `clipcrawl index`: the dataset's rows (or every embedded row, before filter has run) → an
 * image and a text kNN index with the metadata that queries filter on, under `<root>/index/`
 * (see README.md and src/formats/index/index-manifest.ts).
 *
 * Input shards become segments in the order they are added; ids run on across segments. A new
 * shard is added to the existing graphs (HNSW grows by insertion, so nothing is rebuilt); a
 * shard whose input changed, a removed shard, or a changed parameter rebuilds from scratch. The
 * near-duplicate groups are found with the image graph as rows are added. Every file a build
 * writes has a name of its own and the manifest is written last, so a crash leaves the previous
 * index intact; done markers follow the manifest.
 */
import { cpus } from "node:os";
import type { DuckDBConnection } from "@duckdb/node-api";
import { loadConfig } from "../../config/config-file.js";
import { openExistingRoot } from "../../config/dataset-root.js";
import { errorMessage, InputError } from "../../errors.js";
import { describeDamagedShard } from "../../formats/dataset-shards.js";
import { CompressedGraph } from "../../formats/index/compressed-graph.js";
import {
  DuplicateGroups,
  readDuplicateGroups,
  writeDuplicateGroups,
} from "../../formats/index/duplicate-groups.js";
import { VectorGraph } from "../../formats/index/graph.js";
import {
  generationName,
  INDEX_FORMAT_VERSION,
  type IndexManifest,
  type IndexParams,
  type IndexSegment,
  type IndexShard,
  indexShardName,
  indexShards,
  MODALITIES,
  type Modality,
  readManifest,
  shardGraphPath,
  writeManifest,
} from "../../formats/index/index-manifest.js";
import { MIN_POINTS_PER_LIST } from "../../formats/index/ivf-pq.js";
import type { AddedRows } from "../../formats/index/row-lists.js";
import { SegmentVectors } from "../../formats/index/segment-vectors.js";
import { outputInfo } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import { duckdbConnection, parquetDataDamage, parquetFileDamage } from "../../io/parquet.js";
import type { DatasetStorage, FileInfo } from "../../io/storage.js";
import { toFloat16Bits } from "../../models/float16.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import type { FailedShard } from "../../shard/shard-loop.js";
import { digestOf, ShardState } from "../../shard/shard-state.js";
import type { StageSummary } from "../../shard/stage-definition.js";
import { VERSION } from "../../version.js";
import { type AtlasSummary, ensureAtlas } from "./atlas-build.js";
import type { IndexConfig } from "./config.js";
import { removeUnreferencedFiles } from "./index-cleanup.js";
import { defaultExpansionSearch, graphBytes } from "./index-params.js";
import { type IndexPlan, type PlannedIndexShard, planIndexShards } from "./index-plan.js";
import {
  checkIndexDimensions,
  parquetRowCount,
  readIndexShard,
  releaseIndexShard,
  writeSegment,
} from "./index-shard.js";
import { chooseIndexTier } from "./index-tier.js";
import {
  type BuildGraph,
  duplicateSearchSettings,
  EncodedLists,
  joinAddedDuplicates,
  joinNearDuplicates,
  type NearDuplicateSearch,
} from "./near-duplicates.js";

export const INDEX_STAGE = "index";

export interface IndexOptions {
  /** The dataset root: a directory path, an s3:// URL, or a storage. */
  root: string | DatasetStorage;
  /** Values that override the root's clipcrawl.json for this run. */
  config?: Partial<IndexConfig>;
  /** Rebuild from scratch even when the index could be extended. */
  overwrite?: boolean;
  reporter?: StageReporter;
}

export type FailedIndexShard = FailedShard;

/** Its shards are the dataset shards; `samples` and `outputs` both count the rows added. */
export interface IndexSummary extends StageSummary {
  /** True when every input shard is in the index. */
  ok: boolean;
  source: IndexManifest["source"];
  /** Embedding shards that filter has not turned into dataset shards yet (not indexed). */
  waiting: string[];
  /** True when this run built the index from scratch (no index, or it could not be extended). */
  rebuilt: boolean;
  /** Rows in the index now, and how many this run added. */
  rows: number;
  rowsAdded: number;
  dimensions: number | null;
  duplicateGroups: number;
  params: IndexParams | null;
  /** Estimated memory of the two graphs (or compressed indices), and whether it exceeds the budget. */
  graphBytes: number;
  overBudget: boolean;
  /** Which tier the index is and why (chosen from the rows and the memory budget); null: no index. */
  tierReason: string | null;
  /** Wall seconds per step. */
  /** The web UI's map (`_atlas/`); null when none is made (`atlasPoints` 0, or no rows). */
  atlas: AtlasSummary | null;
  /** Why the atlas could not be written (the index itself is committed). */
  atlasError?: string;
  timings: {
    read: number;
    graph: number;
    duplicates: number;
    write: number;
    atlas: number;
    total: number;
  };
  rowsPerSecond: number;
}

/** A shard of the index being built. */
interface BuildShard {
  name: string;
  firstId: number;
  rows: number;
  /** The graphs this build adds to (in memory, written at the commit); undefined: kept as is. */
  growing: Record<Modality, BuildGraph> | undefined;
  /** A shard this build does not change, as the previous manifest names it. */
  kept: IndexShard | undefined;
  /** Where new rows look for their near-duplicates (the growing graph, or the file opened). */
  image: BuildGraph;
  /**
   * The compressed tier's graphs of the last shard, whose training every next shard takes (the
   * growing graphs, or the last kept shard's files).
   */
  training?: Record<Modality, CompressedGraph>;
}

interface BuildState {
  params: IndexParams;
  dimensions: number;
  shardSize: number;
  shards: BuildShard[];
  tierReason: string;
  /** The compressed tier re-ranks with the rows' float16 vectors: the segments' files so far. */
  imageVectors?: SegmentVectors;
  groups: DuplicateGroups;
  /**
   * Compressed tier: rows whose near-duplicates wait for the index's training (its lists are
   * where they are looked for); the rows the first shard trains on.
   */
  awaitingTraining: { firstId: number; vectors: Float32Array }[];
  /** Compressed tier: rows the first shard gathers before it trains (39 a list, faiss's floor). */
  trainingRows: number;
  /**
   * Memory tier: the rows this build adds (float16), whose near-duplicates among themselves are
   * found once they are all added (joinAddedDuplicates); rows before `firstAdded` are the
   * extended index's, found through its graphs.
   */
  added: AddedRows[];
  firstAdded: number;
  segments: IndexSegment[];
  rows: number;
  overBudget: boolean;
}

export async function buildIndex(options: IndexOptions): Promise<IndexSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  await openExistingRoot(storage);
  const config = (await loadConfig(storage, { index: options.config ?? {} })).index;
  const threads = config.threads > 0 ? config.threads : cpus().length;

  const { plan, identity, previous, base, planned, pending } = await indexBuildStart(
    storage,
    config,
    options.overwrite === true,
  );
  const state = new ShardState(storage, INDEX_STAGE);

  const timings = { read: 0, graph: 0, duplicates: 0, write: 0, atlas: 0, total: 0 };
  const failedShards: FailedIndexShard[] = plan.damaged.map((damaged) => ({
    shard: damaged.shard,
    error: describeDamagedShard(damaged, storage.root),
  }));
  for (const failed of failedShards)
    reporter.warn(`index shard ${failed.shard} failed: ${failed.error}`);
  const added: { shard: PlannedIndexShard; segment: IndexSegment }[] = [];
  let shardsDone = plan.shards.length - pending.length;
  const report = (rows: number) =>
    reporter.progress({
      stage: INDEX_STAGE,
      shardsDone,
      shardsTotal: plan.shards.length,
      samples: rows,
      counters: { rows },
    });
  report(base?.rows ?? 0);

  let build: BuildState | undefined;
  let manifest: IndexManifest | undefined = base;
  if (pending.length > 0) {
    const generation = (previous?.generation ?? 0) + 1;
    const connection = await duckdbConnection();
    try {
      const expectedRows = (base?.rows ?? 0) + (await countRows(connection, storage, pending));
      build = base === undefined ? undefined : await reopen(storage, base, config, expectedRows);
      for (const shard of pending) {
        const step = performance.now();
        let rows: Awaited<ReturnType<typeof readIndexShard>> | undefined;
        const segmentName = `${generationName(generation)}-${shard.name}`;
        try {
          rows = await readIndexShard(storage, connection, shard);
          if (build !== undefined) {
            checkIndexDimensions(storage, shard, rows.dimensions, build.dimensions);
          }
          await writeSegment(storage, connection, segmentName, rows);
        } catch (error) {
          if (rows !== undefined) await releaseIndexShard(connection, rows);
          const message = await shardFailure(storage, shard, error);
          failedShards.push({ shard: shard.name, error: message });
          reporter.warn(`index shard ${shard.name} failed: ${message}`);
          shardsDone++;
          report(build?.rows ?? 0);
          continue;
        }
        await releaseIndexShard(connection, rows);
        timings.read += (performance.now() - step) / 1000;

        build ??= createBuild(config, expectedRows, rows.dimensions);
        const firstId = build.rows;
        const graphStep = performance.now();
        const imageLists = await addRows(build, rows.image, rows.text, threads);
        const duplicateStep = performance.now();
        timings.graph += (duplicateStep - graphStep) / 1000;
        build.groups.grow(build.rows);
        if (build.params.tier === "compressed") {
          await attachImageVectors(storage, build, [
            ...build.segments,
            {
              shard: shard.name,
              digest: shard.digest,
              name: segmentName,
              firstId,
              rows: rows.rows,
            },
          ]);
        }
        if (build.params.tier !== "compressed") {
          build.added.push({ firstId, bits: toFloat16Bits(rows.image) });
          await joinExtendedDuplicates(build, rows.image, firstId, threads);
        } else if (!lastShardTrained(build)) {
          build.awaitingTraining.push({ firstId, vectors: rows.image });
        } else {
          await joinAwaitingDuplicates(build, threads);
          await joinDuplicates(build, rows.image, firstId, threads, imageLists);
        }
        timings.duplicates += (performance.now() - duplicateStep) / 1000;
        const segment: IndexSegment = {
          shard: shard.name,
          digest: shard.digest,
          name: segmentName,
          firstId,
          rows: rows.rows,
        };
        build.segments.push(segment);
        added.push({ shard, segment });
        shardsDone++;
        report(build.rows);
      }

      if (build !== undefined && build.awaitingTraining.length > 0) {
        // Fewer rows came than the training waits for: it trains on those, then they are joined.
        const step = performance.now();
        const last = build.shards.at(-1)?.growing;
        for (const graph of [last?.image, last?.text]) {
          if (graph instanceof CompressedGraph) await graph.trainNow(threads);
        }
        timings.graph += (performance.now() - step) / 1000;
        const duplicateStep = performance.now();
        await joinAwaitingDuplicates(build, threads);
        timings.duplicates += (performance.now() - duplicateStep) / 1000;
      }
      if (build !== undefined && build.added.length > 0) {
        const duplicateStep = performance.now();
        await joinAddedDuplicates(duplicateSearch(build, threads), build.added.splice(0));
        timings.duplicates += (performance.now() - duplicateStep) / 1000;
      }
      if (build !== undefined && added.length > 0) {
        const writeStep = performance.now();
        manifest = await commit(storage, build, generation, plan.source, identity);
        for (const { segment } of added) await markSegmentDone(storage, state, segment);
        await removeUnreferencedFiles(storage, manifest);
        timings.write = (performance.now() - writeStep) / 1000;
      }
    } finally {
      build?.imageVectors?.close();
      connection.closeSync();
    }
  }
  if (manifest !== undefined) await markMissing(storage, state, manifest, planned);
  let atlas: AtlasSummary | null = null;
  let atlasError: string | undefined;
  if (manifest !== undefined && manifest.rows > 0 && config.atlasPoints > 0) {
    const step = performance.now();
    try {
      atlas = await ensureAtlas(storage, manifest, {
        points: config.atlasPoints,
        layoutSample: config.atlasLayoutSample,
        clusters: config.atlasClusters,
        pcaDimensions: config.atlasPcaDimensions,
        threads,
      });
    } catch (error) {
      atlasError = `atlas not written: ${errorMessage(error)}`;
      reporter.warn(`index: ${atlasError}`);
    }
    timings.atlas = (performance.now() - step) / 1000;
  }

  timings.total = (performance.now() - started) / 1000;
  const rowsAdded = added.reduce((sum, entry) => sum + entry.segment.rows, 0);
  return {
    ok: failedShards.length === 0 && atlasError === undefined,
    source: plan.source,
    shards: plan.shards.length,
    shardsWritten: added.length,
    shardsSkipped: plan.shards.length - pending.length,
    failedShards,
    samples: rowsAdded,
    outputs: rowsAdded,
    seconds: timings.total,
    waiting: plan.waiting,
    rebuilt: base === undefined && added.length > 0,
    rows: manifest?.rows ?? 0,
    rowsAdded,
    dimensions: manifest?.dimensions ?? null,
    duplicateGroups: manifest?.duplicateGroups ?? 0,
    params: manifest?.params ?? null,
    graphBytes: manifest?.graphBytes ?? 0,
    overBudget: build?.overBudget ?? false,
    tierReason:
      build?.tierReason ??
      (manifest === undefined
        ? null
        : `${manifest.params.tier ?? "memory"}: the index is unchanged`),
    atlas,
    ...(atlasError === undefined ? {} : { atlasError }),
    timings,
    rowsPerSecond: rowsAdded / Math.max(timings.total, 0.001),
  };
}

/** What a build starts from: the plan, the index it may extend, and the shards it adds. */
export interface IndexBuildStart {
  plan: IndexPlan;
  /** Digest of what shapes the stored graphs and groups (a change rebuilds the index). */
  identity: string;
  previous: IndexManifest | undefined;
  /** The index this build extends; undefined: it builds from scratch. */
  base: IndexManifest | undefined;
  planned: Map<string, PlannedIndexShard>;
  /** Input shards not in `base`, in shard order. */
  pending: PlannedIndexShard[];
}

export async function indexBuildStart(
  storage: DatasetStorage,
  config: IndexConfig,
  overwrite: boolean,
): Promise<IndexBuildStart> {
  const plan = await planIndexShards(storage);
  const identity = digestOf({
    version: INDEX_FORMAT_VERSION,
    source: plan.source,
    // What shapes the stored graphs and groups; threads and the search lists do not.
    config: {
      ...config,
      threads: undefined,
      expansionSearch: undefined,
      duplicateExpansion: undefined,
      // A new size applies from the last shard on: the shards already built stay as they are.
      shardSize: undefined,
      atlasPoints: undefined,
      atlasLayoutSample: undefined,
      atlasClusters: undefined,
      atlasPcaDimensions: undefined,
    },
  });
  const previous = overwrite ? undefined : await readManifest(storage);
  const planned = new Map(plan.shards.map((shard) => [shard.name, shard]));
  const extendable =
    previous !== undefined &&
    previous.identity === identity &&
    previous.segments.every((segment) => planned.get(segment.shard)?.digest === segment.digest) &&
    (await filesPresent(storage, previous));
  const base = extendable ? previous : undefined;
  const inIndex = new Set(base?.segments.map((segment) => segment.shard) ?? []);
  const pending = plan.shards.filter((shard) => !inIndex.has(shard.name));
  return { plan, identity, previous, base, planned, pending };
}

function createBuild(config: IndexConfig, expectedRows: number, dimensions: number): BuildState {
  const chosen = freshBuildParams(config, expectedRows, dimensions);
  return {
    ...chosen,
    dimensions,
    shardSize: config.shardSize,
    shards: [],
    groups: new DuplicateGroups(),
    awaitingTraining: [],
    added: [],
    firstAdded: 0,
    segments: [],
    rows: 0,
  };
}

/** A new index's parameters, tier and why, from its rows and the memory budget. */
export function freshBuildParams(
  config: IndexConfig,
  expectedRows: number,
  dimensions: number,
): Pick<BuildState, "params" | "tierReason" | "overBudget" | "trainingRows"> {
  const chosen = chooseIndexTier(config, expectedRows, dimensions);
  const trainingRows = Math.min(
    expectedRows,
    config.shardSize,
    (chosen.compressed?.lists ?? 0) * MIN_POINTS_PER_LIST,
  );
  if (chosen.compressed !== undefined) {
    return {
      params: { ...chosen.memory.params, tier: "compressed", compressed: chosen.compressed },
      tierReason: chosen.reason,
      overBudget: (chosen.compressedBytes ?? 0) > config.memoryBudgetMb * 1e6,
      trainingRows,
    };
  }
  return {
    params: { ...chosen.memory.params, tier: "memory" },
    tierReason: chosen.reason,
    overBudget: chosen.memory.overBudget,
    trainingRows,
  };
}

/** An extended index keeps its parameters; its search list follows the rows it will hold. */
export function extendedParams(
  manifest: IndexManifest,
  config: IndexConfig,
  expectedRows: number,
): IndexParams {
  return {
    ...manifest.params,
    expansionSearch:
      config.expansionSearch > 0 ? config.expansionSearch : defaultExpansionSearch(expectedRows),
    duplicateExpansion: config.duplicateExpansion,
  };
}

/** A new shard's empty graphs, of the index's tier. */
function newShardGraphs(build: BuildState): Record<Modality, BuildGraph> {
  const { dimensions, params } = build;
  const compressed = params.compressed;
  if (compressed === undefined) {
    return {
      image: VectorGraph.create(dimensions, duplicateSearchSettings(params)),
      text: VectorGraph.create(dimensions, duplicateSearchSettings(params)),
    };
  }
  const training = build.shards.at(-1)?.training;
  const { trainingRows } = build;
  return {
    image: CompressedGraph.create(dimensions, compressed, {
      trainedLike: training?.image,
      trainingRows,
    }),
    text: CompressedGraph.create(dimensions, compressed, {
      trainedLike: training?.text,
      trainingRows,
    }),
  };
}

/** Points every shard's compressed image index's re-rank at the float16 rows of `segments`. */
async function attachImageVectors(
  storage: DatasetStorage,
  build: BuildState,
  segments: readonly IndexSegment[],
): Promise<void> {
  const files = await Promise.all(
    segments.map(async (segment) => ({
      path: await storage.localPath(layout.indexSegmentVectors(segment.name, "image")),
      firstId: segment.firstId,
      rows: segment.rows,
    })),
  );
  build.imageVectors?.close();
  build.imageVectors = await SegmentVectors.open(files, build.dimensions, false);
  for (const shard of build.shards) {
    if (shard.image instanceof CompressedGraph) shard.image.attachVectors(build.imageVectors);
  }
}

/**
 * Adds a segment's rows (ids from build.rows on) to the last shard until it holds shardSize
 * rows, then to new shards. Returns the image rows' lists by training when the compressed tier
 * encoded them all now with one training (joinNearDuplicates needs no second assignment).
 */
async function addRows(
  build: BuildState,
  image: Float32Array,
  text: Float32Array,
  threads: number,
): Promise<Map<string, Uint32Array>> {
  const { dimensions } = build;
  const rows = image.length / dimensions;
  const imageLists = new EncodedLists(rows);
  let done = 0;
  while (done < rows) {
    let shard = build.shards.at(-1);
    if (shard === undefined || shard.growing === undefined || shard.rows >= build.shardSize) {
      const growing = newShardGraphs(build);
      shard = {
        name: indexShardName(build.shards.length),
        firstId: build.rows,
        rows: 0,
        growing,
        kept: undefined,
        image: growing.image,
        ...(growing.image instanceof CompressedGraph && growing.text instanceof CompressedGraph
          ? { training: { image: growing.image, text: growing.text } }
          : {}),
      };
      build.shards.push(shard);
    }
    const take = Math.min(rows - done, build.shardSize - shard.rows);
    const from = done * dimensions;
    const to = (done + take) * dimensions;
    const added = await shard.growing?.image.add(build.rows, image.subarray(from, to), threads);
    await shard.growing?.text.add(build.rows, text.subarray(from, to), threads);
    imageLists.record(added, done);
    shard.rows += take;
    build.rows += take;
    done += take;
  }
  return imageLists.byTraining();
}

/**
 * The previous build's shards and groups: its last shard loaded to be added to while it has room,
 * the others' image graphs memory-mapped (new rows look for near-duplicates there too).
 */
async function reopen(
  storage: DatasetStorage,
  manifest: IndexManifest,
  config: IndexConfig,
  expectedRows: number,
): Promise<BuildState> {
  const params = extendedParams(manifest, config, expectedRows);
  const compressed = manifest.params.compressed;
  const previous = indexShards(manifest);
  const shards: BuildShard[] = [];
  for (const [position, shard] of previous.entries()) {
    const last = position === previous.length - 1;
    const extend = last && shard.rows < config.shardSize;
    const open = async (modality: Modality): Promise<BuildGraph> => {
      const path = shard.graphs[modality];
      const local = await storage.localPath(path);
      const graph =
        compressed === undefined
          ? VectorGraph.open(
              local,
              manifest.dimensions,
              duplicateSearchSettings(params),
              extend ? "load" : "view",
            )
          : await CompressedGraph.open(local, manifest.dimensions, compressed);
      if (graph.size !== shard.rows) {
        throw new Error(
          `${storage.describe(path)} holds ${graph.size} vectors, the manifest says ${shard.rows}; run clipcrawl index --overwrite`,
        );
      }
      return graph;
    };
    const image = await open("image");
    // The last shard's text graph: extended, or (compressed) the training a next shard may take.
    const text = extend || (last && compressed !== undefined) ? await open("text") : undefined;
    shards.push({
      name: shard.name,
      firstId: shard.firstId,
      rows: shard.rows,
      growing: extend && text !== undefined ? { image, text } : undefined,
      kept: extend ? undefined : shard,
      image,
      ...(image instanceof CompressedGraph && text instanceof CompressedGraph
        ? { training: { image, text } }
        : {}),
    });
  }
  const groups = await readDuplicateGroups(storage, manifest.files.duplicateGroups, manifest.rows);
  return {
    params,
    dimensions: manifest.dimensions,
    shardSize: config.shardSize,
    shards,
    tierReason: `${manifest.params.tier ?? "memory"}: extends the existing index (${manifest.rows} rows)`,
    groups: new DuplicateGroups(groups),
    awaitingTraining: [],
    trainingRows: config.shardSize,
    added: [],
    firstAdded: manifest.rows,
    segments: manifest.segments.slice(),
    rows: manifest.rows,
    overBudget: false,
  };
}

/** Whether the last shard's compressed image index is trained (rows are in its lists). */
function lastShardTrained(build: BuildState): boolean {
  const image = build.shards.at(-1)?.image;
  return !(image instanceof CompressedGraph) || image.trained;
}

/** The near-duplicates of rows that waited for the training, once it is done. */
async function joinAwaitingDuplicates(build: BuildState, threads: number): Promise<void> {
  for (const waiting of build.awaitingTraining.splice(0)) {
    await joinDuplicates(build, waiting.vectors, waiting.firstId, threads);
  }
}

/** How the build's near-duplicate steps search and where they join what they find. */
function duplicateSearch(build: BuildState, threads: number): NearDuplicateSearch {
  return { dimensions: build.dimensions, params: build.params, groups: build.groups, threads };
}

/**
 * Memory tier: joins new rows with their near-duplicates among the extended index's rows, in the
 * graphs of the shards that hold them (a reopened last shard's graph holds new rows too).
 */
async function joinExtendedDuplicates(
  build: BuildState,
  vectors: Float32Array,
  firstId: number,
  threads: number,
): Promise<void> {
  const extended = build.shards.filter((shard) => shard.firstId < build.firstAdded);
  if (extended.length === 0) return;
  await joinNearDuplicates(
    duplicateSearch(build, threads),
    extended.map((shard) => shard.image),
    vectors,
    firstId,
  );
}

/** Joins new rows with their near-duplicates in every shard of the build (their own included). */
async function joinDuplicates(
  build: BuildState,
  vectors: Float32Array,
  firstId: number,
  threads: number,
  imageLists?: Map<string, Uint32Array>,
): Promise<void> {
  await joinNearDuplicates(
    duplicateSearch(build, threads),
    build.shards.map((shard) => shard.image),
    vectors,
    firstId,
    imageLists,
  );
}

async function commit(
  storage: DatasetStorage,
  build: BuildState,
  generation: number,
  source: IndexManifest["source"],
  identity: string,
): Promise<IndexManifest> {
  const shards: IndexShard[] = [];
  for (const shard of build.shards) {
    if (shard.growing === undefined) {
      if (shard.kept === undefined) throw new Error(`index shard ${shard.name} has no graphs`);
      shards.push(shard.kept);
      continue;
    }
    shards.push(await saveShardGraphs(storage, shard, shard.growing, generation, build.params));
  }
  return writeIndexCommit(storage, {
    generation,
    source,
    identity,
    dimensions: build.dimensions,
    rows: build.rows,
    params: build.params,
    segments: build.segments,
    shards,
    shardSize: build.shardSize,
    groups: build.groups,
  });
}

/** Writes a shard's two graphs under generation `generation`'s names: the manifest's entry. */
export async function saveShardGraphs(
  storage: DatasetStorage,
  shard: Pick<IndexShard, "name" | "firstId" | "rows">,
  growing: Record<Modality, BuildGraph>,
  generation: number,
  params: IndexParams,
): Promise<IndexShard> {
  const graphs = {} as Record<Modality, string>;
  const bytes = {} as Record<Modality, number>;
  for (const modality of MODALITIES) {
    const path = shardGraphPath(modality, shard.name, generation, params.tier);
    await storage.writeAtomicWith(path, async (localPath) => {
      await growing[modality].save(localPath);
    });
    graphs[modality] = path;
    bytes[modality] = (await storage.stat(path))?.bytes ?? 0;
  }
  return { name: shard.name, firstId: shard.firstId, rows: shard.rows, graphs, bytes };
}

/** What a build commits: its shards (graphs written) and segments, and the rows' groups. */
export interface IndexCommit {
  generation: number;
  source: IndexManifest["source"];
  identity: string;
  dimensions: number;
  rows: number;
  params: IndexParams;
  segments: IndexSegment[];
  shards: IndexShard[];
  shardSize: number;
  groups: DuplicateGroups;
}

/** The duplicate groups, then the manifest: the commit point of a build. */
export async function writeIndexCommit(
  storage: DatasetStorage,
  build: IndexCommit,
): Promise<IndexManifest> {
  const { generation, shards } = build;
  const { groups, count } = build.groups.resolve();
  const duplicateGroups = layout.indexDuplicateGroups(generationName(generation));
  await writeDuplicateGroups(storage, duplicateGroups, groups);
  const manifest: IndexManifest = {
    format: INDEX_FORMAT_VERSION,
    generation,
    source: build.source,
    dimensions: build.dimensions,
    rows: build.rows,
    identity: build.identity,
    params: build.params,
    segments: build.segments,
    files: { duplicateGroups },
    shards,
    shardSize: build.shardSize,
    duplicateGroups: count,
    graphBytes:
      build.params.tier === "compressed"
        ? await compressedBytes(storage, shards)
        : 2 *
          graphBytes(
            build.rows,
            build.dimensions,
            build.params.quantization,
            build.params.connectivity,
          ),
    createdWith: VERSION,
    builtAt: new Date().toISOString(),
  };
  await writeManifest(storage, manifest);
  return manifest;
}

/** The compressed tier holds its files whole: their sizes are its memory. */
async function compressedBytes(
  storage: DatasetStorage,
  shards: readonly IndexShard[],
): Promise<number> {
  let total = 0;
  for (const shard of shards) {
    for (const modality of MODALITIES) {
      total += shard.bytes?.[modality] ?? (await storage.stat(shard.graphs[modality]))?.bytes ?? 0;
    }
  }
  return total;
}

/** Rows of the pending shards (dataset rows, or embedded rows), to size the index up front. */
async function countRows(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  shards: readonly PlannedIndexShard[],
): Promise<number> {
  let total = 0;
  for (const shard of shards) {
    try {
      total += await parquetRowCount(storage, connection, shard.dataset ?? shard.metadata);
    } catch {
      // An unreadable shard fails with its own message when it is read.
    }
  }
  return total;
}

async function filesPresent(storage: DatasetStorage, manifest: IndexManifest): Promise<boolean> {
  const paths = [
    ...indexShards(manifest).flatMap((shard) =>
      MODALITIES.map((modality) => shard.graphs[modality]),
    ),
    manifest.files.duplicateGroups,
    ...manifest.segments.flatMap((segment) => [
      layout.indexSegmentMetadata(segment.name),
      ...MODALITIES.map((modality) => layout.indexSegmentVectors(segment.name, modality)),
    ]),
  ];
  for (const path of paths) if (!(await storage.exists(path))) return false;
  return true;
}

async function segmentFiles(storage: DatasetStorage, segment: string): Promise<FileInfo[]> {
  return outputInfo(storage, [
    layout.indexSegmentMetadata(segment),
    layout.indexSegmentRows(segment),
    ...MODALITIES.map((modality) => layout.indexSegmentVectors(segment, modality)),
  ]);
}

/** A crash between the manifest and the markers leaves indexed shards unmarked: mark them. */
export async function markMissing(
  storage: DatasetStorage,
  state: ShardState,
  manifest: IndexManifest,
  planned: ReadonlyMap<string, PlannedIndexShard>,
): Promise<void> {
  for (const segment of manifest.segments) {
    const shard = planned.get(segment.shard);
    if (shard === undefined || shard.digest !== segment.digest) continue;
    if (await state.findDone(segment.shard, segment.digest)) continue;
    await markSegmentDone(storage, state, segment);
  }
}

/** The done marker of the input shard whose rows a segment holds. */
export async function markSegmentDone(
  storage: DatasetStorage,
  state: ShardState,
  segment: IndexSegment,
): Promise<void> {
  await state.markDone({
    shard: segment.shard,
    inputDigest: segment.digest,
    outputs: await segmentFiles(storage, segment.name),
    counts: { rows: segment.rows },
  });
}

/**
 * Why a shard could not be indexed, naming the file: DuckDB's errors about a damaged page
 * ("Out of buffer", "TProtocolException") do not say which file they met, so the shard's Parquet
 * inputs are checked (only now, after a failure) and the damaged one named, a dataset shard with
 * the command that writes it again.
 */
export async function shardFailure(
  storage: DatasetStorage,
  shard: PlannedIndexShard,
  error: unknown,
): Promise<string> {
  if (error instanceof InputError) return errorMessage(error);
  for (const path of [shard.dataset, shard.metadata]) {
    if (path === undefined) continue;
    const reason =
      (await parquetFileDamage(storage, path)) ?? (await parquetDataDamage(storage, path));
    if (reason === undefined) continue;
    return path === shard.dataset
      ? describeDamagedShard({ shard: shard.name, path, reason }, storage.root)
      : `${storage.describe(path)}: ${reason}`;
  }
  return errorMessage(error);
}
