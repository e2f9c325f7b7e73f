import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { layout } from "../src/io/layout.js";
import {
  executionProviders,
  onnxruntimeBinaryFolder,
  parseInferenceDevice,
} from "../src/models/inference-device.js";
import { ModelError } from "../src/models/model-error.js";
import { embed } from "../src/stages/embed/embed.js";
import { runCli } from "./support/cli.js";
import { writeImageShardFixture } from "./support/embed-fixture.js";
import { tempDir } from "./support/temp.js";

let workDir: string;
let modelDir: string;

before(async () => {
  workDir = await tempDir("embed-device");
  modelDir = join(workDir, "model");
  await generateTinyClipModel(modelDir);
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

const cudaInstalled = existsSync(
  join(onnxruntimeBinaryFolder(), "libonnxruntime_providers_cuda.so"),
);

test("cuda:N puts the towers on GPU N with the CPU for the nodes CUDA lacks; cuda is GPU 0", () => {
  assert.deepEqual(executionProviders(parseInferenceDevice("cuda:2")), [
    { name: "cuda", deviceId: 2 },
    "cpu",
  ]);
  assert.deepEqual(executionProviders(parseInferenceDevice("cuda")), [
    { name: "cuda", deviceId: 0 },
    "cpu",
  ]);
  assert.deepEqual(executionProviders(parseInferenceDevice("cpu")), ["cpu"]);
  for (const bad of ["gpu", "cuda:", "cuda:x", "CUDA", "cuda:0 ", "cuda:-1"]) {
    assert.throws(
      () => parseInferenceDevice(bad),
      (error: unknown) => error instanceof ModelError && error.code === "CC_MODEL_DEVICE",
      bad,
    );
  }
});

test("an embed.device that is not cpu, cuda or cuda:N is refused in one line naming the setting", async () => {
  const root = join(workDir, "bad-device");
  await writeImageShardFixture(root);
  await assert.rejects(
    embed({ root, config: { model: modelDir, device: "gpu0" } }),
    (error: unknown) =>
      error instanceof Error &&
      /embed\.device/.test(error.message) &&
      /cpu, cuda or cuda:N/.test(error.message) &&
      !error.message.includes("\n"),
  );
  assert.equal(existsSync(join(root, layout.embeddingsFolder())), false);
});

test("asking for cuda where onnxruntime's CUDA provider is not installed stops embed before any shard, naming the fix", {
  skip: cudaInstalled ? "the CUDA provider is installed here" : false,
}, async () => {
  const root = join(workDir, "no-cuda");
  await writeImageShardFixture(root);
  await assert.rejects(
    embed({ root, config: { model: modelDir, device: "cuda:1" } }),
    (error: unknown) =>
      error instanceof ModelError &&
      error.code === "CC_MODEL_DEVICE" &&
      error.message.startsWith("embed.device cuda:1: ") &&
      error.message.includes("libonnxruntime_providers_cuda.so") &&
      error.message.includes("ONNXRUNTIME_NODE_INSTALL=cuda12"),
  );
  assert.equal(existsSync(join(root, layout.embeddingsFolder())), false);
  assert.equal(existsSync(join(root, "_state", "embed")), false);

  const cli = await runCli(["embed", "--root", root, "--model", modelDir, "--device", "cuda"]);
  assert.equal(cli.code, 1);
  assert.equal(cli.stderr.trim().split("\n").length, 1, cli.stderr);
  assert.match(cli.stderr, /embed\.device cuda:0: .*ONNXRUNTIME_NODE_INSTALL=cuda12/);
  assert.equal(existsSync(join(root, layout.embeddingsFolder())), false);
});

test("a shard's stats and the summary say what share of the wall time the towers ran", async () => {
  const root = join(workDir, "busy");
  await writeImageShardFixture(root);
  const summary = await embed({
    root,
    config: { model: modelDir, device: "cpu", batchSize: 4, threads: 1 },
  });
  assert.equal(summary.ok, true);
  const stats = JSON.parse(await readFile(join(root, layout.embeddingStats("00000")), "utf8")) as {
    model_busy_share: number;
    timings: { image: number; text: number; total: number };
  };
  assert.ok(
    stats.model_busy_share > 0 && stats.model_busy_share <= 1,
    String(stats.model_busy_share),
  );
  const { image, text, total } = stats.timings;
  assert.ok(image > 0 && text > 0, JSON.stringify(stats.timings));
  assert.ok(Math.abs(stats.model_busy_share - (image + text) / total) < 1e-9);
  assert.ok(Math.abs((summary.modelBusyShare ?? -1) - stats.model_busy_share) < 1e-9);
});
