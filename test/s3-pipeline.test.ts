/**
 * The whole pipeline on an s3:// root, against an S3-compatible server (s3rver) the test starts
 * on 127.0.0.1: `clipcrawl run` through the local runner must leave the same rows, the same tar
 * and embedding bytes and an index that answers the same as the same run on a local root.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { openIndex } from "../src/formats/index/clip-index.js";
import { openRoot } from "../src/io/open-root.js";
import type { DatasetStorage } from "../src/io/storage.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { readRunState } from "../src/runner/run-state.js";
import { runStatus } from "../src/runner/run-status.js";
import { serve } from "../src/server/serve.js";
import { type PipelineWorld, pipelineOutput, pipelineWorld } from "./support/run-root.js";
import { startS3Server, type TestS3Server } from "./support/s3-server.js";
import { tempDir } from "./support/temp.js";

let s3: TestS3Server;
let dir: string;
let world: PipelineWorld;
let localRoot: string;
let reference: Record<string, unknown>;
/** The root the first test ran the pipeline on. */
const s3Root = () => `s3://${s3.bucket}/runs/first`;

before(async () => {
  s3 = await startS3Server();
  dir = await tempDir("s3-pipeline");
  process.env.AWS_ENDPOINT_URL = s3.endpoint;
  process.env.CLIPCRAWL_CACHE_DIR = join(dir, "cache");
  world = await pipelineWorld(dir, { files: 2, pages: 3 });
  localRoot = join(dir, "local");
  await world.makeRoot(localRoot);
  const summary = await runPipeline({ root: localRoot, inputs: world.inputs });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  reference = await pipelineOutput(localRoot);
});

after(async () => {
  await world?.close();
  await s3?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** The top 5 of each modality, by key, for queries made of the dataset's own embeddings. */
async function indexAnswers(root: string | DatasetStorage): Promise<unknown[]> {
  const index = await openIndex(root);
  try {
    const answers: unknown[] = [];
    const dimensions = index.manifest.dimensions;
    for (let query = 0; query < 4; query++) {
      const vector = Float32Array.from({ length: dimensions }, (_, i) =>
        Math.sin((query + 1) * (i + 1)),
      );
      for (const modality of ["image", "text"] as const) {
        const found = index.search({ vector, k: 5, modality });
        const keys = index.metadata(
          found.map((result) => result.id),
          ["key"],
        );
        answers.push(
          found.map((result, at) => [keys[at]?.key, result.similarity.toFixed(5)].join(" ")),
        );
      }
    }
    return answers;
  } finally {
    index.close();
  }
}

test("clipcrawl run on an s3:// root leaves the rows, embeddings and index answers of a local run", async () => {
  const url = s3Root();
  await world.makeRoot(url);
  const summary = await runPipeline({ root: url, inputs: world.inputs });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  assert.equal(summary.logPath, `${url}/_logs/run.log`);
  const storage = openRoot(url);
  assert.match(await storage.readText("_logs/run.log"), /"event":"run finished"/);
  assert.equal((await readRunState(storage))?.status, "finished");

  assert.deepEqual(await pipelineOutput(url), reference);
  const answers = await indexAnswers(url);
  assert.equal(answers.length, 8);
  assert.deepEqual(answers, await indexAnswers(localRoot));

  const again = await runPipeline({ root: url, inputs: world.inputs });
  assert.equal(again.ok, true);
  for (const [stage, totals] of Object.entries(again.stages)) {
    assert.equal(totals?.done, totals?.shards, `${stage} resumes with every shard done`);
  }
  assert.deepEqual(await pipelineOutput(url), reference);
});

test("serve answers from an s3:// root as from a local one, thumbnails included, and status reads it", async () => {
  const status = await runStatus(s3Root());
  assert.equal(status.run?.status, "finished");
  for (const stage of status.stages) {
    assert.equal(stage.done, stage.shards, stage.stage);
    assert.deepEqual(stage.damaged, [], stage.stage);
  }
  const server = await serve({
    indices: [
      { name: "local", root: localRoot, model: world.model },
      { name: "remote", root: s3Root(), model: world.model },
    ],
    config: { port: 0, rateLimitPerMinute: 0 },
  });
  try {
    const ask = async (index: string) => {
      const response = await fetch(`${server.url}/knn-service`, {
        method: "POST",
        body: JSON.stringify({
          text: "a red circle",
          modality: "image",
          num_images: 5,
          indice_name: index,
        }),
      });
      assert.equal(response.status, 200);
      return (await response.json()) as { id: number; url: string; key?: string }[];
    };
    const remote = await ask("remote");
    assert.ok(remote.length > 0);
    assert.deepEqual(remote, await ask("local"));
    const index = await openIndex(s3Root());
    const key = index.metadata([remote[0]?.id ?? 0], ["key"])[0]?.key;
    index.close();
    const thumbnail = async (index: string) => {
      const response = await fetch(`${server.url}/api/thumbnail/${index}/${key}`);
      assert.equal(response.status, 200);
      return Buffer.from(await response.arrayBuffer());
    };
    const bytes = await thumbnail("remote");
    assert.ok(bytes.length > 100);
    assert.deepEqual(bytes, await thumbnail("local"));
  } finally {
    await server.close();
  }
});
