/**
 * `clipcrawl run --queue` builds the index one index shard a job, on several workers, and
 * commits once every job is over: the index must be the one a local build makes of the same
 * rows (shards, segments, near-duplicate groups across shard boundaries, answers), extended the
 * same way by later rows, and bad input shards named while the rest is indexed.
 */
import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, readFile, rm, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Queue } from "bullmq";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { openIndex } from "../src/formats/index/clip-index.js";
import { type IndexManifest, shardGraphPath } from "../src/formats/index/index-manifest.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { writeParquet } from "../src/io/parquet.js";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { redisOptions } from "../src/runner/distributed/queue-names.js";
import { silentReporter } from "../src/shard/reporter.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import type { IndexConfig } from "../src/stages/index/config.js";
import { isIndexShardJob, planIndexJobs } from "../src/stages/index/index-job-plan.js";
import { runIndexShardJob } from "../src/stages/index/index-shard-job.js";
import { indexStage } from "../src/stages/index/stage.js";
import {
  bruteForce,
  type FixtureRow,
  plantNear,
  randomRows,
  randomUnit,
  writeEmbeddingShard,
} from "./support/index-fixture.js";
import {
  logEvents,
  startWorker,
  stopWorkers,
  type WorkerProcess,
} from "./support/queue-workers.js";
import { deletePrefix, REDIS_URL, redisSkipReason, uniquePrefix } from "./support/redis.js";
import { tempDir } from "./support/temp.js";

const skip = await redisSkipReason();
const MEMORY: Partial<IndexConfig> = {
  threads: 1,
  flatMaxVectors: 0,
  atlasPoints: 0,
  shardSize: 100,
};

let dir: string;
let workers: WorkerProcess[] = [];
let prefix: string;

before(async () => {
  if (skip !== undefined) return;
  dir = await tempDir("index-distributed");
  prefix = uniquePrefix("index-jobs");
  workers = ["i1", "i2"].map((name) => startWorker(dir, REDIS_URL, prefix, name));
});

after(async () => {
  if (skip !== undefined) return;
  await stopWorkers(workers);
  await deletePrefix(REDIS_URL, prefix);
  await rm(dir, { recursive: true, force: true });
});

async function manifestOf(root: string): Promise<IndexManifest> {
  return JSON.parse(await readFile(join(root, layout.indexManifest()), "utf8")) as IndexManifest;
}

/** The same rows in both roots: three shards of 150, with near-duplicates across shards. */
async function writeShards(roots: readonly string[], shards: readonly FixtureRow[][]) {
  for (const root of roots) {
    for (const [position, rows] of shards.entries()) {
      await writeEmbeddingShard(root, String(position).padStart(5, "0"), rows);
    }
  }
}

function plantedShards(): FixtureRow[][] {
  const next = seededUniform(11);
  const shards = [0, 1, 2].map((shard) =>
    randomRows(String(shard).padStart(5, "0"), 150, 70 + shard),
  );
  const [first, second, third] = shards as [FixtureRow[], FixtureRow[], FixtureRow[]];
  // Across shards (ids 3 ↔ 170 ↔ 320), within the segment that spans shards s00001 and s00002
  // (ids 160 ↔ 260), and within one shard (ids 10 ↔ 11).
  plantNear(second, 20, first[3] as FixtureRow, next);
  plantNear(third, 20, first[3] as FixtureRow, next);
  plantNear(second, 110, second[10] as FixtureRow, next);
  plantNear(first, 11, first[10] as FixtureRow, next);
  return shards;
}

async function groupsOf(root: string, rows: number): Promise<unknown[]> {
  const index = await openIndex(root);
  try {
    return index
      .metadata(
        Array.from({ length: rows }, (_, id) => id),
        ["dup_group"],
      )
      .map((row) => row.dup_group);
  } finally {
    index.close();
  }
}

async function runOnQueue(root: string, config: Partial<IndexConfig>) {
  return runDistributed({
    root,
    queue: { url: REDIS_URL, prefix },
    attempts: 2,
    pollMs: 100,
    // The roots hold embeddings only: the index stage alone (the workers hold every stage).
    pipeline: [indexStage],
    config: { index: config },
  });
}

test("run --queue builds the index a shard a job on two workers: the same index as a local build, groups across shards", {
  skip,
  timeout: 300_000,
}, async () => {
  const queued = join(dir, "queued");
  const local = join(dir, "local");
  const shards = plantedShards();
  await writeShards([queued, local], shards);
  const summary = await runOnQueue(queued, MEMORY);
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  assert.equal(summary.stages.index?.jobs, 5, "one job an index shard");
  assert.ok((await buildIndex({ root: local, config: MEMORY })).ok);
  for (const worker of workers) {
    const events = await logEvents(worker);
    assert.ok(
      events.some(
        (event) => event.event === "job completed" && /\.index\.s\d{5}$/.test(event.job ?? ""),
      ),
      `${worker.name} built index shards`,
    );
  }

  const fromQueue = await manifestOf(queued);
  const fromLocal = await manifestOf(local);
  const shape = (manifest: IndexManifest) => ({
    rows: manifest.rows,
    shards: manifest.shards?.map((shard) => [shard.name, shard.firstId, shard.rows]),
    segments: manifest.segments.map((segment) => [segment.shard, segment.firstId, segment.rows]),
    groups: manifest.duplicateGroups,
    params: manifest.params,
  });
  assert.deepEqual(shape(fromQueue), shape(fromLocal));
  const groups = await groupsOf(queued, 450);
  assert.deepEqual(groups, await groupsOf(local, 450));
  assert.equal(groups[170], groups[3], "a group across shards s00000 and s00001");
  assert.equal(groups[320], groups[3], "and s00003");
  assert.equal(groups[260], groups[160], "a group across the jobs of one segment");
  assert.equal(groups[11], groups[10]);
  const markers = await readFile(join(queued, "_state", "index", "00002.json"), "utf8");
  assert.match(markers, /"rows": 150/);

  const rows = shards.flat();
  const index = await openIndex(queued);
  try {
    const next = seededUniform(5);
    for (let query = 0; query < 10; query++) {
      const vector = randomUnit(next);
      for (const modality of ["image", "text"] as const) {
        assert.deepEqual(
          index.search({ vector, k: 10, modality }).map((hit) => hit.id),
          bruteForce(rows, vector, 10, () => true, modality),
          `query ${query} ${modality}`,
        );
      }
    }
  } finally {
    index.close();
  }

  // New rows: the last shard (50 rows) is extended by one job, new shards by others.
  const added = randomRows("00003", 150, 90);
  const nextNear = seededUniform(4);
  plantNear(added, 5, (shards[0] as FixtureRow[])[3] as FixtureRow, nextNear);
  // A new shard's row near the extended shard's earlier row 420, and near its new row 460.
  plantNear(added, 120, (shards[2] as FixtureRow[])[120] as FixtureRow, nextNear);
  plantNear(added, 60, added[10] as FixtureRow, nextNear);
  for (const root of [queued, local]) await writeEmbeddingShard(root, "00003", added);
  const grown = await runOnQueue(queued, MEMORY);
  assert.equal(grown.ok, true, JSON.stringify(grown.failed));
  assert.equal(grown.stages.index?.jobs, 2, "s00004 extended, s00005 new");
  assert.equal((await buildIndex({ root: local, config: MEMORY })).rebuilt, false);
  const afterQueue = await manifestOf(queued);
  assert.deepEqual(shape(afterQueue), shape(await manifestOf(local)));
  assert.deepEqual(afterQueue.shards?.[0], fromQueue.shards?.[0], "a full shard is kept as it was");
  const grownGroups = await groupsOf(queued, 600);
  assert.deepEqual(grownGroups, await groupsOf(local, 600));
  assert.equal(grownGroups[455], grownGroups[3], "a new row joins the group of row 3");
  assert.equal(grownGroups[570], grownGroups[420], "a new shard's row, an extended one's old row");
  assert.equal(grownGroups[510], grownGroups[460], "new rows of the extended and the new shard");

  // Nothing new: one whole-dataset job, nothing rewritten.
  const again = await runOnQueue(queued, MEMORY);
  assert.equal(again.ok, true, JSON.stringify(again.failed));
  assert.equal(again.stages.index?.jobs, 1);
  assert.equal((await manifestOf(queued)).generation, afterQueue.generation);
});

test("run --queue, compressed tier: shard files identical to a local build's, the small last shard trained like the one before", {
  skip,
  timeout: 300_000,
}, async () => {
  const queued = join(dir, "compressed-queued");
  const local = join(dir, "compressed-local");
  const shards = [0, 1, 2].map((shard) =>
    randomRows(String(shard).padStart(5, "0"), 430, 120 + shard),
  );
  await writeShards([queued, local], shards);
  const config: Partial<IndexConfig> = {
    threads: 1,
    atlasPoints: 0,
    tier: "compressed",
    shardSize: 600,
  };
  const summary = await runOnQueue(queued, config);
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  assert.ok((await buildIndex({ root: local, config })).ok);
  const fromQueue = await manifestOf(queued);
  const fromLocal = await manifestOf(local);
  assert.equal(fromQueue.params.tier, "compressed");
  assert.deepEqual(
    fromQueue.shards?.map((shard) => [shard.name, shard.rows]),
    [
      ["s00000", 600],
      ["s00001", 600],
      ["s00002", 90],
    ],
  );
  for (const [position, shard] of (fromQueue.shards ?? []).entries()) {
    for (const modality of ["image", "text"] as const) {
      const queuedBytes = await readFile(join(queued, shard.graphs[modality]));
      const localShard = fromLocal.shards?.[position];
      assert.ok(localShard !== undefined);
      const localBytes = await readFile(join(local, localShard.graphs[modality]));
      assert.ok(queuedBytes.equals(localBytes), `${shard.name} ${modality}: the same IVF-PQ file`);
    }
  }
  assert.deepEqual(await groupsOf(queued, 1290), await groupsOf(local, 1290));
});

test("run --queue: a truncated embeddings file is named and left out, the other shards are indexed", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "damaged");
  const shards = plantedShards();
  await writeShards([root], shards);
  const damaged = join(root, layout.imageEmbeddings("00001"));
  await truncate(damaged, 2000);
  const summary = await runOnQueue(root, MEMORY);
  assert.equal(summary.ok, false);
  const failure = summary.failed.find((item) => item.stage === "index");
  assert.ok(failure !== undefined, JSON.stringify(summary.failed));
  assert.equal(failure.shard, "00001");
  assert.match(failure.error, /img_emb_00001\.npy.*2000 bytes/);
  assert.equal(failure.error.split("\n").length, 1, "one line");
  const manifest = await manifestOf(root);
  assert.equal(manifest.rows, 300);
  assert.deepEqual(
    manifest.segments.map((segment) => segment.shard),
    ["00000", "00002"],
  );
});

/** dataset/NNNNN.parquet keeping `keys` of the embedding shard (as filter writes it, key first). */
async function writeDatasetShard(root: string, shard: string, keys: readonly string[]) {
  await writeParquet(
    new LocalStorage(root),
    layout.datasetShard(shard),
    [{ name: "key", type: "VARCHAR", value: (key: string) => key }],
    keys,
  );
}

test("run --queue: a job that fails (a dataset key with no embedding) commits nothing; the index stays readable and a later run adds the repaired shard", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "job-fails");
  const shards = plantedShards();
  await writeShards([root], shards);
  const keys = (shard: number) => (shards[shard] as FixtureRow[]).map((row) => row.key);
  await writeDatasetShard(root, "00000", keys(0));
  await writeDatasetShard(root, "00001", keys(1));
  const first = await runOnQueue(root, MEMORY);
  assert.equal(first.ok, true, JSON.stringify(first.failed));
  const before = await manifestOf(root);
  assert.equal(before.rows, 300);

  await writeDatasetShard(root, "00002", [...keys(2).slice(0, 149), "not-embedded"]);
  const failed = await runOnQueue(root, MEMORY);
  assert.equal(failed.ok, false);
  const jobFailure = failed.failed.find((item) => item.shard === "s00003");
  assert.ok(jobFailure !== undefined, JSON.stringify(failed.failed));
  assert.match(
    jobFailure.error,
    /input shard 00002: .*dataset\/00002\.parquet.*first: not-embedded/,
  );
  assert.ok(
    failed.failed.some((item) => /index not committed/.test(item.error)),
    JSON.stringify(failed.failed),
  );
  assert.deepEqual(await manifestOf(root), before, "the index is as it was");
  const index = await openIndex(root);
  try {
    assert.equal(index.size, 300);
  } finally {
    index.close();
  }

  await writeDatasetShard(root, "00002", keys(2));
  const repaired = await runOnQueue(root, MEMORY);
  assert.equal(repaired.ok, true, JSON.stringify(repaired.failed));
  const after = await manifestOf(root);
  assert.equal(after.rows, 450);
  assert.deepEqual(after.shards?.slice(0, 3), before.shards, "the full shards are kept");
  const groups = await groupsOf(root, 450);
  assert.equal(groups[320], groups[3], "the new rows join groups across shards");
});

test("run --queue: a worker killed in the middle of an index job; the job runs again on another and the index is the local build's", {
  skip,
  timeout: 300_000,
}, async () => {
  const queued = join(dir, "killed-queued");
  const local = join(dir, "killed-local");
  const dimensions = 256;
  const shards = [0, 1, 2].map((shard) =>
    randomRows(String(shard).padStart(5, "0"), 1500, 150 + shard, dimensions),
  );
  await writeShards([queued, local], shards);
  const config = { ...MEMORY, shardSize: 1500 };
  const killPrefix = uniquePrefix("index-kill");
  const indexJobs = new Queue("index", { connection: redisOptions(REDIS_URL), prefix: killPrefix });
  const first = startWorker(dir, REDIS_URL, killPrefix, "k1");
  const others: WorkerProcess[] = [];
  let killed: string | undefined;
  const killer = setInterval(async () => {
    if (killed !== undefined) return;
    const active = await indexJobs.getJobs(["active"]).catch(() => []);
    const victim = active.find((job) => job?.processedBy === "k1");
    if (victim === undefined || killed !== undefined) return;
    killed = victim.id;
    first.child.kill("SIGKILL");
    others.push(startWorker(dir, REDIS_URL, killPrefix, "k2"));
  }, 10);
  try {
    const summary = await runDistributed({
      root: queued,
      queue: { url: REDIS_URL, prefix: killPrefix },
      attempts: 3,
      pollMs: 100,
      pipeline: [indexStage],
      config: { index: config },
    });
    clearInterval(killer);
    assert.equal(summary.ok, true, JSON.stringify(summary.failed));
    assert.ok(killed !== undefined, "k1 was killed while it built an index shard");
    const retried = await indexJobs.getJob(killed);
    assert.equal(retried?.processedBy, "k2", "the other worker built the killed worker's shard");
    assert.ok((await buildIndex({ root: local, config })).ok);
    const shape = (manifest: IndexManifest) =>
      manifest.shards?.map((shard) => [shard.name, shard.firstId, shard.rows]);
    assert.deepEqual(shape(await manifestOf(queued)), shape(await manifestOf(local)));
    assert.deepEqual(await groupsOf(queued, 4500), await groupsOf(local, 4500));
  } finally {
    clearInterval(killer);
    await indexJobs.close();
    await stopWorkers([first, ...others]);
    await deletePrefix(REDIS_URL, killPrefix);
  }
});

test("an index shard job run again (queued again after a Redis loss) finds its shard built and rebuilds nothing", {
  skip,
}, async () => {
  const root = join(dir, "job-again");
  await writeShards([root], plantedShards());
  const storage = new LocalStorage(root);
  const entries = await planIndexJobs(storage, MEMORY);
  const job = entries[1]?.plan;
  assert.ok(isIndexShardJob(job));
  const call = { storage, reporter: silentReporter, config: { index: MEMORY } };
  const first = await runIndexShardJob(call, job);
  assert.deepEqual([first.ok, first.shardsWritten, first.shardsSkipped], [true, 1, 0]);
  const graph = join(root, shardGraphPath("image", job.shard.name, job.generation, "memory"));
  const written = (await stat(graph)).mtimeMs;
  const again = await runIndexShardJob(call, job);
  assert.deepEqual([again.ok, again.shardsWritten, again.shardsSkipped], [true, 0, 1]);
  assert.equal(again.rowsAdded, first.rowsAdded);
  assert.equal((await stat(graph)).mtimeMs, written, "the graph was not written again");
});

test("run --queue: a commit that fails fails the run with its reason, writes no manifest, and the next run commits", {
  skip,
  timeout: 300_000,
}, async () => {
  const root = join(dir, "commit-fails");
  await writeShards([root], plantedShards());
  // The commit's first write, the groups of generation 1, meets a folder where its file goes.
  const blocked = join(root, layout.indexDuplicateGroups("g000001"));
  await mkdir(blocked, { recursive: true });
  const failed = await runOnQueue(root, MEMORY);
  assert.equal(failed.ok, false);
  const failure = failed.failed.find((item) => /commit failed/.test(item.error));
  assert.ok(failure !== undefined, JSON.stringify(failed.failed));
  assert.equal(failure.error.split("\n").length, 1, "one line");
  assert.equal(existsSync(join(root, layout.indexManifest())), false, "no manifest");

  await rm(blocked, { recursive: true });
  const again = await runOnQueue(root, MEMORY);
  assert.equal(again.ok, true, JSON.stringify(again.failed));
  assert.equal((await manifestOf(root)).rows, 450);
  const staged = join(root, "_state", "index-build");
  assert.deepEqual(existsSync(staged) ? readdirSync(staged) : [], [], "the staged builds are gone");
});
