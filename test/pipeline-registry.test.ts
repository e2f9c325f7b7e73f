/**
 * The pipeline is declared once: a stage added to the registry's list (a declaration and one
 * line) runs through both runners, shows in `status` and in the run report, with nothing else
 * taught about it. The extra stage here is built from the shard kit as the real ones are: after
 * filter, shard by shard, it writes each dataset shard's captions to `captions/NNNNN.txt`.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { PIPELINE, type Stages, stageChains } from "../src/pipeline/pipeline.js";
import { readLatestRunReport } from "../src/pipeline/run-report.js";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { startShardWorker } from "../src/runner/distributed/shard-worker.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { runStatus } from "../src/runner/run-status.js";
import { runShardLoop } from "../src/shard/shard-loop.js";
import { ShardSelection } from "../src/shard/shard-selection.js";
import { digestOf, ShardState } from "../src/shard/shard-state.js";
import type { StageDefinition, StageSummary } from "../src/shard/stage-definition.js";
import { deletePrefix, REDIS_URL, redisSkipReason, uniquePrefix } from "./support/redis.js";
import { type PipelineWorld, pipelineWorld } from "./support/run-root.js";
import { tempDir } from "./support/temp.js";

const CAPTIONS = "captions";

/** dataset/NNNNN.parquet → captions/NNNNN.txt, one caption a line; a shard a call of the loop. */
const captionsStage: StageDefinition<typeof CAPTIONS, StageSummary> = {
  name: CAPTIONS,
  reads: "dataset/NNNNN.parquet",
  writes: "captions/NNNNN.txt",
  link: "each shard",
  counts: { samples: "rows", outputs: "captions written" },
  run: async (call) => {
    const started = performance.now();
    const { storage } = call;
    const names = (await storage.list(layout.datasetFolder()))
      .filter((name) => /^\d{5}\.parquet$/.test(name))
      .map((name) => name.slice(0, 5));
    const plan = await Promise.all(
      names.map(async (name) => ({
        name,
        digest: digestOf((await storage.stat(layout.datasetShard(name)))?.bytes ?? null),
      })),
    );
    let rows = 0;
    const loop = await runShardLoop({
      stage: CAPTIONS,
      shards: plan,
      planned: plan.length,
      selection: ShardSelection.of(call.shards),
      state: new ShardState(storage, CAPTIONS),
      overwrite: false,
      reporter: call.reporter,
      progress: () => ({ samples: rows, counters: { rows } }),
      open: async () => ({
        run: async (shard) => {
          const texts = (await readParquet(storage, layout.datasetShard(shard.name), ["TEXT"])).map(
            (row) => String(row.TEXT),
          );
          const path = `${CAPTIONS}/${shard.name}.txt`;
          await storage.writeAtomic(path, texts.map((text) => `${text}\n`).join(""));
          const bytes = (await storage.stat(path))?.bytes ?? -1;
          return {
            outputs: [{ path, bytes }],
            counts: { rows: texts.length },
            samples: texts.length,
            passedOn: texts.length,
            result: texts.length,
          };
        },
        close: async () => {},
      }),
      written: (count) => {
        rows += count;
      },
    });
    return {
      ok: loop.failedShards.length === 0,
      shards: loop.shardsTotal,
      shardsWritten: loop.shardsWritten,
      shardsSkipped: loop.shardsSkipped,
      failedShards: loop.failedShards,
      samples: rows,
      outputs: rows,
      seconds: (performance.now() - started) / 1000,
    };
  },
};

/** The registry's pipeline with the captions stage after filter, before index. */
const withCaptions: Stages = [
  ...PIPELINE.filter((stage) => stage.name !== "index"),
  captionsStage,
  ...PIPELINE.filter((stage) => stage.name === "index"),
];

const skipRedis = await redisSkipReason();
let dir: string;
let world: PipelineWorld;
const prefixes: string[] = [];

before(async () => {
  dir = await tempDir("pipeline-registry");
  world = await pipelineWorld(dir, { files: 2, pages: 3 });
});

after(async () => {
  await world?.close();
  for (const prefix of prefixes) await deletePrefix(REDIS_URL, prefix);
});

/** Every dataset shard's captions file holds its TEXT column, in row order. */
async function assertCaptionsWritten(root: string): Promise<void> {
  const shards = (await readdir(join(root, "dataset"))).filter((name) =>
    /^\d{5}\.parquet$/.test(name),
  );
  assert.ok(shards.length >= 2, `${shards.length} dataset shards`);
  for (const name of shards) {
    const shard = name.slice(0, 5);
    const rows = await readParquet(new LocalStorage(root), layout.datasetShard(shard), ["TEXT"]);
    const text = await readFile(join(root, CAPTIONS, `${shard}.txt`), "utf8");
    assert.equal(text, rows.map((row) => `${String(row.TEXT)}\n`).join(""), shard);
  }
}

test("the registry's chains: extract; download → embed → filter; index", () => {
  assert.deepEqual(
    stageChains(PIPELINE).map((chain) => chain.stages.map((stage) => stage.name)),
    [["extract"], ["download", "embed", "filter"], ["index"]],
  );
  assert.deepEqual(
    stageChains(withCaptions).map((chain) => chain.stages.map((stage) => stage.name)),
    [["extract"], ["download", "embed", "filter", CAPTIONS], ["index"]],
  );
});

test("a stage added to the registry runs through the local runner, status and the run report", {
  timeout: 300_000,
}, async () => {
  const root = join(dir, "local");
  await world.makeRoot(root);
  const summary = await runPipeline({ root, inputs: world.inputs, stages: withCaptions });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  const captions = summary.stages[CAPTIONS];
  assert.ok(captions !== undefined);
  assert.equal(captions.done, summary.stages.filter.done);
  assert.equal(captions.samples, captions.successes);
  assert.ok(captions.samples > 0);
  await assertCaptionsWritten(root);

  const status = await runStatus(root, withCaptions);
  const row = status.stages.find((stage) => stage.stage === CAPTIONS);
  assert.equal(row?.done, summary.stages.filter.done);
  assert.equal(row?.shards, row?.done);

  const report = await readLatestRunReport(new LocalStorage(root));
  assert.deepEqual(
    report?.stages.map((stage) => stage.stage),
    withCaptions.map((stage) => stage.name),
  );
  assert.equal(
    report?.stages.find((stage) => stage.stage === CAPTIONS)?.run?.shardsDone,
    captions.done,
  );

  // A second run finds the captions done, as every other stage's shards.
  const again = await runPipeline({ root, stages: withCaptions });
  assert.equal(again.ok, true);
  assert.equal(again.stages[CAPTIONS]?.samples, 0);
});

test("a stage added to the registry runs through the distributed runner and its workers", {
  skip: skipRedis,
  timeout: 300_000,
}, async () => {
  const prefix = uniquePrefix("registry");
  prefixes.push(prefix);
  const root = join(dir, "distributed");
  await world.makeRoot(root);
  const queue = { url: REDIS_URL, prefix };
  const workers = await Promise.all(
    ["a", "b"].map((name) =>
      startShardWorker({ queue, pipeline: withCaptions, name, lockSeconds: 10 }),
    ),
  );
  try {
    const summary = await runDistributed({
      root,
      inputs: world.inputs,
      queue,
      pipeline: withCaptions,
      pollMs: 100,
    });
    assert.equal(summary.ok, true, JSON.stringify(summary.failed));
    const captions = summary.stages[CAPTIONS];
    assert.ok(captions !== undefined && captions.jobs > 0);
    assert.equal(captions.completed, summary.stages.filter.completed);
    assert.equal(summary.stages.index.completed, 1);
    await assertCaptionsWritten(root);
    // The same inputs through either runner give the same captions.
    const local = join(dir, "local");
    for (const name of await readdir(join(root, CAPTIONS))) {
      assert.equal(
        await readFile(join(root, CAPTIONS, name), "utf8"),
        await readFile(join(local, CAPTIONS, name), "utf8"),
        name,
      );
    }
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
  }
});
