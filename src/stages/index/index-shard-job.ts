/**
 * One index shard job of a distributed build (index-job-plan.ts): the shard's rows read from
 * their input shards, the segments whose first row it holds written, its two graphs built (or
 * the base's last shard extended) and saved under the build's generation, and its rows'
 * near-duplicates within the shard found. What it leaves for the commit is a record naming the
 * graphs and a file of each row's group within the shard; nothing a reader sees changes until
 * the commit writes the manifest. A job run again finds its record and builds nothing; one that
 * failed before its record writes the same files again.
 */
import { rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../config/config-file.js";
import { errorMessage, InputError } from "../../errors.js";
import { CompressedGraph } from "../../formats/index/compressed-graph.js";
import { DuplicateGroups } from "../../formats/index/duplicate-groups.js";
import { VectorGraph } from "../../formats/index/graph.js";
import { type IndexShard, MODALITIES, type Modality } from "../../formats/index/index-manifest.js";
import { encodeSegmentVectors, SegmentVectors } from "../../formats/index/segment-vectors.js";
import { layout } from "../../io/layout.js";
import { duckdbConnection } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { toFloat16Bits } from "../../models/float16.js";
import type { StageCall } from "../../shard/stage-definition.js";
import { INDEX_STAGE, type IndexSummary, saveShardGraphs, shardFailure } from "./build-index.js";
import type { IndexShardJob } from "./index-job-plan.js";
import {
  checkIndexDimensions,
  readIndexShard,
  releaseIndexShard,
  writeSegment,
} from "./index-shard.js";
import {
  type BuildGraph,
  duplicateSearchSettings,
  EncodedLists,
  joinAddedDuplicates,
  joinNearDuplicates,
} from "./near-duplicates.js";

/** What a job leaves for the commit (`layout.indexBuildRecord`). */
export interface IndexShardRecord {
  build: string;
  /** The shard as the manifest will name it (graphs written under the build's generation). */
  shard: IndexShard;
  /** Rows this job added (an extended shard's earlier rows not counted). */
  rowsAdded: number;
  timings: { read: number; graph: number; duplicates: number; write: number };
}

/** A job's input shard that could not be indexed: names the input shard, as a local build does. */
export class IndexInputFailure extends Error {
  constructor(
    readonly shard: string,
    message: string,
  ) {
    super(message);
  }
}

/** A queue job's call: the shard built, as a stage summary (the commit comes after every job). */
export async function runIndexShardJob(call: StageCall, job: IndexShardJob): Promise<IndexSummary> {
  const started = performance.now();
  const { storage } = call;
  const config = (await loadConfig(storage, { index: call.config?.index ?? {} })).index;
  const threads = config.threads > 0 ? config.threads : cpus().length;
  const name = job.shard.name;
  call.reporter.progress({
    stage: INDEX_STAGE,
    shardsDone: 0,
    shardsTotal: 1,
    samples: 0,
    counters: { rows: 0 },
  });
  // A job queued again (after a Redis loss, or a crash after its record) finds its shard built.
  let record = await readShardRecord(storage, job);
  const done = record !== undefined;
  let error: string | undefined;
  try {
    record ??= await buildIndexShard(storage, job, threads);
  } catch (failure) {
    error =
      failure instanceof IndexInputFailure
        ? `input shard ${failure.shard}: ${failure.message}`
        : errorMessage(failure);
    call.reporter.warn(`index shard ${name} failed: ${error}`);
  }
  const rowsAdded = record?.rowsAdded ?? 0;
  const seconds = (performance.now() - started) / 1000;
  const timings = record?.timings ?? { read: 0, graph: 0, duplicates: 0, write: 0 };
  return {
    ok: error === undefined,
    source: job.source,
    shards: 1,
    shardsWritten: record === undefined || done ? 0 : 1,
    shardsSkipped: done ? 1 : 0,
    failedShards: error === undefined ? [] : [{ shard: name, error }],
    samples: rowsAdded,
    outputs: rowsAdded,
    seconds,
    waiting: [],
    rebuilt: job.baseGeneration === null,
    rows: job.rows,
    rowsAdded,
    dimensions: job.dimensions,
    duplicateGroups: 0,
    params: job.params,
    graphBytes: 0,
    overBudget: job.overBudget,
    tierReason: job.tierReason,
    atlas: null,
    timings: { ...timings, atlas: 0, total: seconds },
    rowsPerSecond: rowsAdded / Math.max(seconds, 0.001),
  };
}

async function buildIndexShard(
  storage: DatasetStorage,
  job: IndexShardJob,
  threads: number,
): Promise<IndexShardRecord> {
  const { dimensions, params } = job;
  const timings = { read: 0, graph: 0, duplicates: 0, write: 0 };
  const graphs = await shardGraphs(storage, job);
  const earlierRows = job.extends?.rows ?? 0;
  const firstNew = job.shard.firstId + earlierRows;
  const added = job.shard.rows - earlierRows;
  const images = new Float32Array(added * dimensions);
  const lists = new EncodedLists(added);
  let at = 0;
  const connection = await duckdbConnection();
  try {
    for (const slice of job.slices) {
      let step = performance.now();
      let rows: Awaited<ReturnType<typeof readIndexShard>> | undefined;
      try {
        rows = await readIndexShard(storage, connection, slice.input);
        if (rows.rows !== slice.segment.rows) {
          throw new InputError(
            "CC_INPUT_CHANGED",
            storage.describe(slice.input.dataset ?? slice.input.metadata),
            `${rows.rows} rows, ${slice.segment.rows} when the build was planned: run it again`,
          );
        }
        checkIndexDimensions(storage, slice.input, rows.dimensions, dimensions);
        if (slice.writes) await writeSegment(storage, connection, slice.segment.name, rows);
      } catch (error) {
        throw new IndexInputFailure(
          slice.input.name,
          await shardFailure(storage, slice.input, error),
        );
      } finally {
        if (rows !== undefined) await releaseIndexShard(connection, rows);
      }
      timings.read += (performance.now() - step) / 1000;
      step = performance.now();
      const from = slice.from * dimensions;
      const to = (slice.from + slice.rows) * dimensions;
      const id = slice.segment.firstId + slice.from;
      const image = rows.image.subarray(from, to);
      lists.record(await graphs.image.add(id, image, threads), at);
      await graphs.text.add(id, rows.text.subarray(from, to), threads);
      images.set(image, at * dimensions);
      at += slice.rows;
      timings.graph += (performance.now() - step) / 1000;
    }
  } finally {
    connection.closeSync();
  }

  let step = performance.now();
  for (const graph of MODALITIES.map((modality) => graphs[modality])) {
    if (graph instanceof CompressedGraph && !graph.trained) await graph.trainNow(threads);
  }
  timings.graph += (performance.now() - step) / 1000;

  step = performance.now();
  const groups = new DuplicateGroups();
  groups.grow(job.shard.rows);
  const first = job.shard.firstId;
  const rerank = await attachRerankVectors(storage, job, graphs.image, images, firstNew);
  try {
    const search = {
      dimensions,
      params,
      groups: { union: (left: number, right: number) => groups.union(left - first, right - first) },
      threads,
    };
    // A new memory-tier shard's rows are all new: compared through their lists, as a local
    // build's. An extended shard's graph also holds the rows before them.
    if (params.tier !== "compressed" && earlierRows === 0) {
      await joinAddedDuplicates(search, [{ firstId: firstNew, bits: toFloat16Bits(images) }]);
    } else {
      await joinNearDuplicates(search, [graphs.image], images, firstNew, lists.byTraining());
    }
  } finally {
    await rerank.close();
  }
  timings.duplicates = (performance.now() - step) / 1000;

  step = performance.now();
  const shard = await saveShardGraphs(storage, job.shard, graphs, job.generation, params);
  const resolved = groups.resolve().groups;
  await storage.writeAtomic(
    layout.indexBuildGroups(job.build, job.shard.name),
    new Uint8Array(resolved.buffer, resolved.byteOffset, resolved.byteLength),
  );
  timings.write = (performance.now() - step) / 1000;
  const record: IndexShardRecord = { build: job.build, shard, rowsAdded: added, timings };
  await storage.writeAtomic(
    layout.indexBuildRecord(job.build, job.shard.name),
    `${JSON.stringify(record)}\n`,
  );
  return record;
}

/** The record a job of this build left for its shard, if it finished (the commit reads it too). */
export async function readShardRecord(
  storage: DatasetStorage,
  job: IndexShardJob,
): Promise<IndexShardRecord | undefined> {
  const path = layout.indexBuildRecord(job.build, job.shard.name);
  if (!(await storage.exists(path))) return undefined;
  const record = JSON.parse(await storage.readText(path)) as IndexShardRecord;
  return record.build === job.build && record.shard.rows === job.shard.rows ? record : undefined;
}

/**
 * The shard's graphs: the base's last shard loaded to be extended, or new empty ones (compressed:
 * with the training the build's shards share).
 */
async function shardGraphs(
  storage: DatasetStorage,
  job: IndexShardJob,
): Promise<Record<Modality, BuildGraph>> {
  const { dimensions, params } = job;
  const compressed = params.compressed;
  const extended = job.extends;
  if (extended !== undefined) {
    const open = async (modality: Modality): Promise<BuildGraph> => {
      const path = extended.graphs[modality];
      const local = await storage.localPath(path);
      const graph =
        compressed === undefined
          ? VectorGraph.open(local, dimensions, duplicateSearchSettings(params), "load")
          : await CompressedGraph.open(local, dimensions, compressed);
      if (graph.size !== extended.rows) {
        throw new Error(
          `${storage.describe(path)} holds ${graph.size} vectors, the manifest says ${extended.rows}; run clipcrawl index --overwrite`,
        );
      }
      return graph;
    };
    return { image: await open("image"), text: await open("text") };
  }
  if (compressed === undefined) {
    return {
      image: VectorGraph.create(dimensions, duplicateSearchSettings(params)),
      text: VectorGraph.create(dimensions, duplicateSearchSettings(params)),
    };
  }
  const { training } = job;
  if (training === undefined) throw new Error(`index shard ${job.shard.name}: no training named`);
  const create = async (modality: Modality) =>
    CompressedGraph.create(dimensions, compressed, {
      trainedLike: await CompressedGraph.open(
        await storage.localPath(training[modality]),
        dimensions,
        compressed,
      ),
    });
  return { image: await create("image"), text: await create("text") };
}

/**
 * The compressed tier checks near-duplicate candidates with the rows' float16 vectors: the
 * extended shard's earlier rows from their segments, the new rows from a scratch file (their
 * segments may be another job's to write).
 */
async function attachRerankVectors(
  storage: DatasetStorage,
  job: IndexShardJob,
  image: BuildGraph,
  images: Float32Array,
  firstNew: number,
): Promise<{ close(): Promise<void> }> {
  if (!(image instanceof CompressedGraph)) return { close: async () => {} };
  const { dimensions } = job;
  const scratch = join(
    tmpdir(),
    `clipcrawl-index-${job.build}-${job.shard.name}-${process.pid}.npy`,
  );
  await writeFile(scratch, encodeSegmentVectors(images, dimensions));
  let vectors: SegmentVectors | undefined;
  try {
    const earlier = await Promise.all(
      (job.extendsSegments ?? []).map(async (segment) => ({
        path: await storage.localPath(layout.indexSegmentVectors(segment.name, "image")),
        firstId: segment.firstId,
        rows: segment.rows,
      })),
    );
    vectors = await SegmentVectors.open(
      [...earlier, { path: scratch, firstId: firstNew, rows: images.length / dimensions }],
      dimensions,
      false,
    );
  } catch (error) {
    await rm(scratch, { force: true });
    throw new Error(`the rows of ${job.shard.name} for near-duplicates: ${errorMessage(error)}`);
  }
  image.attachVectors(vectors);
  return {
    close: async () => {
      vectors?.close();
      await rm(scratch, { force: true });
    },
  };
}
