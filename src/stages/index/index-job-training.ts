/**
 * The training a new compressed index's shards share, made before a distributed build queues its
 * shard jobs: each modality's lists and codebooks, trained on the first shard's first rows as a
 * local build trains them (the rows of the adds that reach `trainingRows`), saved without rows.
 * Every shard job then takes it, as a local build's later shards take the first one's, so the
 * shards' files are the ones a local build writes. An extended index's shards take its last
 * shard's training instead (index-job-plan.ts names the files).
 */
import { cpus } from "node:os";
import { errorMessage } from "../../errors.js";
import { CompressedGraph } from "../../formats/index/compressed-graph.js";
import { MODALITIES, type Modality } from "../../formats/index/index-manifest.js";
import { duckdbConnection } from "../../io/parquet.js";
import type { SharedStageRun } from "../../shard/stage-definition.js";
import { shardFailure } from "./build-index.js";
import { isIndexShardJob } from "./index-job-plan.js";
import { readIndexShard, releaseIndexShard } from "./index-shard.js";

export async function trainSharedCodes(run: SharedStageRun): Promise<void> {
  const first = run.plan.map((entry) => entry.plan).find(isIndexShardJob);
  const compressed = first?.params.compressed;
  const training = first?.training;
  if (first === undefined || compressed === undefined || training === undefined) return;
  if (first.baseGeneration !== null) return;
  const { storage } = run;
  // Queued again after a Redis loss: the training is already there.
  const present = await Promise.all(
    MODALITIES.map((modality) => storage.exists(training[modality])),
  );
  if (present.every(Boolean)) return;
  // No index job runs meanwhile: every core of the coordinator's machine (index.threads sizes
  // each job).
  const threads = cpus().length;
  const { dimensions } = first;
  const graphs: Record<Modality, CompressedGraph> = {
    image: CompressedGraph.create(dimensions, compressed, { trainingRows: first.trainingRows }),
    text: CompressedGraph.create(dimensions, compressed, { trainingRows: first.trainingRows }),
  };
  const connection = await duckdbConnection();
  try {
    for (const slice of first.slices) {
      if (graphs.image.trained && graphs.text.trained) break;
      let rows: Awaited<ReturnType<typeof readIndexShard>> | undefined;
      try {
        rows = await readIndexShard(storage, connection, slice.input);
      } catch (error) {
        run.fail(
          slice.input.name,
          `index shard ${slice.input.name} failed: ${await shardFailure(storage, slice.input, error)}`,
        );
        return;
      } finally {
        if (rows !== undefined) await releaseIndexShard(connection, rows);
      }
      const from = slice.from * dimensions;
      const to = (slice.from + slice.rows) * dimensions;
      const id = slice.segment.firstId + slice.from;
      for (const modality of MODALITIES) {
        const graph = graphs[modality];
        if (!graph.trained) await graph.add(id, rows[modality].subarray(from, to), threads);
      }
    }
  } finally {
    connection.closeSync();
  }
  try {
    for (const modality of MODALITIES) {
      const graph = graphs[modality];
      if (!graph.trained) await graph.trainNow(threads);
      const codes = CompressedGraph.create(dimensions, compressed, { trainedLike: graph });
      await storage.writeAtomicWith(training[modality], (localPath) => codes.save(localPath));
    }
  } catch (error) {
    run.fail(first.shard.name, `index: the shards' training failed: ${errorMessage(error)}`);
  }
}
