import assert from "node:assert/strict";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { collectingReporter } from "../src/shard/reporter.js";
import { download } from "../src/stages/download/download.js";
import { embed } from "../src/stages/embed/embed.js";
import { extract } from "../src/stages/extract/extract.js";
import { filter } from "../src/stages/filter/filter.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { type PipelineWorld, pipelineWorld } from "./support/run-root.js";
import { tempDir } from "./support/temp.js";

/**
 * Bytes flipped in one file of each kind a stage reads (a WAT gzip, an image tar, a parquet, an
 * .npy): that file's shard gets one line naming the file and what is wrong with it, and the
 * other shards of the same run are written as if nothing happened.
 */
let dir: string;
let world: PipelineWorld;
let root: string;

before(async () => {
  dir = await tempDir("corrupted-input");
  world = await pipelineWorld(dir, { files: 3, pages: 16 });
  root = join(dir, "root");
  await world.makeRoot(root);
});

after(async () => {
  await world?.close();
  await rm(dir, { recursive: true, force: true });
});

/** XORs `count` bytes, `stride` apart, from `start`: a deterministic burst of bit rot. */
async function flipBytes(path: string, start: number, count = 8, stride = 1): Promise<void> {
  const bytes = await readFile(path);
  for (let index = 0; index < count; index++) {
    const at = start + index * stride;
    if (at < bytes.length) bytes[at] = (bytes[at] as number) ^ 0xa5;
  }
  await writeFile(path, bytes);
}

async function shardFiles(folder: string, extension: string): Promise<string[]> {
  return (await readdir(join(root, folder)))
    .filter((name) => /^\d{5}\./.test(name) && name.endsWith(extension))
    .sort();
}

test("every stage reader meets a damaged file: one line naming it, the other shards complete", async () => {
  // extract: a WAT gzip with a damaged member in the middle.
  const [firstWat] = world.inputs as [string];
  const watBytes = (await readFile(firstWat)).length;
  await flipBytes(firstWat, Math.floor(watBytes / 2), 16, 7);
  const extractReporter = collectingReporter();
  const extracted = await extract({ root, inputs: world.inputs, reporter: extractReporter });
  assert.deepEqual([extracted.shards, extracted.shardsWritten], [3, 3], "every file is a shard");
  assert.equal(extracted.totals.badRecords.corrupt_gzip, 1);
  assert.equal(extractReporter.warnings.length, 1);
  assert.match(
    extractReporter.warnings[0] as string,
    /^\/.*\/in-0\.warc\.wat\.gz: corrupt gzip member at offset \d+: checksum mismatch \(the data is damaged\)$/,
  );

  const downloaded = await download({ root });
  assert.equal(downloaded.ok, true);
  const tars = await shardFiles("images", ".tar");
  assert.ok(tars.length >= 5, `several image shards: ${tars.join(", ")}`);

  // embed: an image tar whose first member header is damaged.
  await flipBytes(join(root, "images", "00001.tar"), 10, 4);
  const embedReporter = collectingReporter();
  const embedded = await embed({ root, reporter: embedReporter });
  assert.equal(embedded.ok, true, "the damaged tar's shard is still written");
  assert.deepEqual(embedReporter.warnings, [
    `embed shard 00001: ${join(root, "images", "00001.tar")}: tar header checksum mismatch at byte 0`,
  ]);
  assert.equal(embedded.totals.damaged_tar_members, 1);
  assert.deepEqual(embedded.topErrors, {
    "image missing from tar (the tar has damaged members)": 1,
  });
  assert.equal(embedded.totals.embedded, embedded.totals.samples - 1, "every other sample");

  // filter: a metadata parquet with a damaged footer.
  const metadata = join(root, "embeddings", "metadata", "metadata_00002.parquet");
  await flipBytes(metadata, (await readFile(metadata)).length - 60, 24);
  const filterReporter = collectingReporter();
  const filtered = await filter({ root, reporter: filterReporter });
  assert.equal(filtered.ok, false);
  assert.deepEqual(
    filtered.failedShards.map((failed) => failed.shard),
    ["00002"],
  );
  assert.match(
    filtered.failedShards[0]?.error as string,
    new RegExp(`^${literalPattern(metadata)}: cannot read the parquet file: [^\\n]+$`),
  );
  assert.equal(filtered.shardsWritten, filtered.shards - 1, "the other shards are filtered");
  assert.equal(filterReporter.warnings.length, 1);

  // index: an image embeddings .npy with a damaged header.
  const npy = join(root, "embeddings", "img_emb", "img_emb_00003.npy");
  await flipBytes(npy, 20, 6);
  const indexReporter = collectingReporter();
  const indexed = await buildIndex({ root, reporter: indexReporter });
  assert.equal(indexed.ok, false);
  assert.deepEqual(
    indexed.failedShards.map((failed) => failed.shard),
    ["00003"],
  );
  assert.match(
    indexed.failedShards[0]?.error as string,
    new RegExp(
      `^${literalPattern(npy)}: unreadable \\.npy header "\\{'descr': (\\\\x[0-9a-f]{2})+ 'fortran_order'`,
    ),
  );
  // Every shard but the two damaged ones (filter's 00002 has no dataset shard) is indexed.
  assert.equal(indexed.shardsWritten, filtered.shards - 2);
  assert.ok(indexed.rows > 0);
});

function literalPattern(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
