import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { decodeNpy } from "../src/io/npy.js";
import { readParquet } from "../src/io/parquet.js";
import { fromFloat16Bits } from "../src/models/float16.js";
import { ModelError } from "../src/models/model-error.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { type EmbedSummary, embed } from "../src/stages/embed/embed.js";
import { runCli } from "./support/cli.js";
import { type FixtureSample, writeImageShardFixture } from "./support/embed-fixture.js";
import { tempDir } from "./support/temp.js";

let workDir: string;
let modelDir: string;
let root: string;
let samples: FixtureSample[];
let first: EmbedSummary;
const reporter = collectingReporter();

const DIMENSIONS = 48;

before(async () => {
  workDir = await tempDir("embed");
  modelDir = join(workDir, "model");
  root = join(workDir, "root");
  await generateTinyClipModel(modelDir);
  samples = await writeImageShardFixture(root);
  first = await embed({
    root,
    config: { model: modelDir, batchSize: 4, threads: 1 },
    reporter,
  });
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function readMatrix(bytes: Buffer): { rows: number; dimensions: number; data: Float32Array } {
  const array = decodeNpy(bytes);
  assert.equal(array.dtype, "<f2");
  assert.equal(array.shape.length, 2);
  const [rows, dimensions] = array.shape as [number, number];
  return { rows, dimensions, data: fromFloat16Bits(array.data as Uint16Array) };
}

async function outputs() {
  const storage = new LocalStorage(root);
  return {
    images: readMatrix(await storage.read(layout.imageEmbeddings("00000"))),
    texts: readMatrix(await storage.read(layout.textEmbeddings("00000"))),
    metadata: await readParquet(storage, layout.embeddingMetadata("00000")),
    failures: await readParquet(storage, layout.embeddingFailures("00000")),
  };
}

const row = (matrix: { dimensions: number; data: Float32Array }, index: number) =>
  matrix.data.subarray(index * matrix.dimensions, (index + 1) * matrix.dimensions);

const dot = (left: Float32Array, right: Float32Array) =>
  left.reduce((sum, value, index) => sum + value * (right[index] as number), 0);

test("embed writes clip-retrieval's layout: float16 npy rows aligned with the metadata parquet", async () => {
  assert.equal(first.ok, true, JSON.stringify(first));
  assert.equal(first.shardsWritten, 1);
  const { images, texts, metadata } = await outputs();
  const embedded = samples.filter((sample) =>
    ["match", "mismatch", "long-caption"].includes(sample.kind),
  );
  assert.equal(images.rows, embedded.length);
  assert.equal(texts.rows, embedded.length);
  assert.equal(images.dimensions, DIMENSIONS);
  assert.deepEqual(
    metadata.map((entry) => entry.key),
    embedded.map((sample) => sample.key),
  );
  for (const entry of metadata) {
    assert.equal(entry.status, "embedded");
    for (const column of ["url", "caption", "similarity", "width", "height", "language"]) {
      assert.notEqual(entry[column], null, `${column} of ${entry.key}`);
    }
    for (const column of ["language_tier", "sha256", "page_url", "source"]) {
      assert.ok(column in entry, column);
    }
  }
  for (let index = 0; index < images.rows; index++) {
    assert.ok(Math.abs(Math.hypot(...row(images, index)) - 1) < 2e-3, `image row ${index}`);
    assert.ok(Math.abs(Math.hypot(...row(texts, index)) - 1) < 2e-3, `text row ${index}`);
    const similarity = metadata[index]?.similarity as number;
    assert.ok(Math.abs(dot(row(images, index), row(texts, index)) - similarity) < 5e-3);
  }
});

test("matching captions score above 0.3 and mismatching ones below 0.2", async () => {
  const { metadata } = await outputs();
  const kindOf = new Map(samples.map((sample) => [sample.key, sample.kind]));
  for (const entry of metadata) {
    const similarity = entry.similarity as number;
    const kind = kindOf.get(String(entry.key));
    if (kind === "match") assert.ok(similarity > 0.3, `${entry.caption}: ${similarity}`);
    if (kind === "mismatch") assert.ok(similarity < 0.2, `${entry.caption}: ${similarity}`);
  }
});

test("every success of the download is accounted for: bad images and damaged members get a status", async () => {
  const { metadata, failures } = await outputs();
  const successes = samples.filter((sample) => sample.kind !== "failed-download");
  assert.equal(metadata.length + failures.length, successes.length);
  const failure = (kind: FixtureSample["kind"]) => {
    const key = samples.find((sample) => sample.kind === kind)?.key;
    return failures.find((entry) => entry.key === key);
  };
  assert.equal(failure("corrupt-image")?.status, "failed_to_embed");
  assert.match(String(failure("corrupt-image")?.error_message), /^image does not decode: /);
  assert.equal(failure("damaged")?.status, "failed_to_embed");
  assert.match(String(failure("damaged")?.error_message), /image missing from tar/);
  assert.equal(failure("damaged")?.language, "en");
  assert.equal(failures.length, 2);
  assert.equal(first.totals.samples, successes.length);
  assert.equal(first.totals.failed_to_embed, 2);
  assert.equal(first.totals.damaged_tar_members, 1);
  assert.ok(
    reporter.warnings.some((line) => /checksum mismatch/.test(line)),
    reporter.warnings.join("\n"),
  );
});

test("a caption longer than the context is truncated as CLIP does, flagged and counted", async () => {
  const { metadata } = await outputs();
  const long = samples.find((sample) => sample.kind === "long-caption");
  const entry = metadata.find((item) => item.key === long?.key);
  assert.equal(entry?.caption_truncated, true);
  assert.equal(entry?.caption, long?.caption);
  assert.ok((entry?.similarity as number) > 0.3, "the start of the caption still matches");
  assert.equal(first.totals.captions_truncated, 1);
  const stats = JSON.parse(
    await readFile(join(root, layout.embeddingStats("00000")), "utf8"),
  ) as Record<string, unknown>;
  assert.equal(stats.captions_truncated, 1);
  assert.equal(stats.embedded, metadata.length);
  assert.equal(stats.output_dtype, "float16");
});

test("a re-run skips the finished shard; removing an output redoes it with identical bytes", async () => {
  const again = await embed({ root, config: { model: modelDir, threads: 1 } });
  assert.equal(again.shardsSkipped, 1, JSON.stringify(again));
  assert.equal(again.shardsWritten, 0, JSON.stringify(again));

  const files = [
    layout.imageEmbeddings("00000"),
    layout.textEmbeddings("00000"),
    layout.embeddingMetadata("00000"),
    layout.embeddingFailures("00000"),
  ];
  const before = await Promise.all(files.map((file) => readFile(join(root, file))));
  await rm(join(root, layout.imageEmbeddings("00000")));
  const redo = await embed({ root, config: { model: modelDir, batchSize: 3, threads: 1 } });
  assert.equal(redo.shardsWritten, 1, JSON.stringify(redo));
  const afterRedo = await Promise.all(files.map((file) => readFile(join(root, file))));
  files.forEach((file, index) => {
    assert.ok((before[index] as Buffer).equals(afterRedo[index] as Buffer), file);
  });
});

test("numpy reads the embeddings as float16 [rows, 48] with unit rows", async (context) => {
  const python = "/usr/bin/python3";
  try {
    execFileSync(python, ["-c", "import numpy"], { stdio: "ignore" });
  } catch {
    context.skip("numpy is not installed for /usr/bin/python3");
    return;
  }
  const path = join(root, layout.imageEmbeddings("00000"));
  const output = execFileSync(python, [
    "-c",
    "import sys, numpy as np; a = np.load(sys.argv[1]); print(a.dtype, a.shape, float(np.abs(np.linalg.norm(a.astype(np.float32), axis=1) - 1).max()))",
    path,
  ]).toString();
  const [dtype, ...rest] = output.trim().split(" ");
  assert.equal(dtype, "float16");
  const { images } = await outputs();
  assert.equal(rest.slice(0, 2).join(" "), `(${images.rows}, ${DIMENSIONS})`);
  assert.ok(Number(rest[2]) < 2e-3, output);
});

test("a missing model folder stops embed with one clear line naming the folder", async () => {
  const missing = join(workDir, "no-such-model");
  await assert.rejects(
    embed({ root, config: { model: missing } }),
    (error: unknown) =>
      error instanceof ModelError &&
      error.code === "CC_MODEL_MISSING_FILE" &&
      error.message.includes(missing),
  );
  const cli = await runCli(["embed", "--root", root, "--model", missing]);
  assert.equal(cli.code, 1);
  assert.equal(cli.stderr.trim().split("\n").length, 1, cli.stderr);
  assert.match(cli.stderr, /model folder .*no-such-model does not exist/);
});

test("the CLI prints a JSON summary and exits 0 when every shard is done", async () => {
  const cli = await runCli([
    "embed",
    "--root",
    root,
    "--model",
    modelDir,
    "--threads",
    "1",
    "--json",
  ]);
  assert.equal(cli.code, 0, cli.stderr);
  const summary = JSON.parse(cli.stdout) as EmbedSummary;
  assert.equal(summary.ok, true);
  assert.equal(summary.shardsSkipped, 1);
  assert.ok((await stat(join(root, layout.doneMarker("embed", "00000")))).isFile());
});
