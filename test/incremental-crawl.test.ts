/**
 * A dataset that grows crawl by crawl: `clipcrawl run` on a root that holds crawl 1 adds crawl 2
 * (which shares about 30 % of its pairs with crawl 1) — the pairs seen before are dropped, only
 * the new shards go through download, embed and filter, the index is extended — and the result
 * equals one run over both crawls, row for row.
 */
import assert from "node:assert/strict";
import { copyFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { readManifest } from "../src/formats/index/index-manifest.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { type PipelineWorld, pipelineOutput, pipelineWorld } from "./support/run-root.js";
import { tempDir } from "./support/temp.js";

let dir: string;
let world: PipelineWorld;
let crawl1: string[];
let crawl2: string[];

before(async () => {
  dir = await tempDir("incremental");
  world = await pipelineWorld(dir, { files: 5, pages: 3 });
  // Crawl 2: two new files, and a third that holds the same pages as one of crawl 1's.
  const copy = join(dir, "in-1-again.warc.wat.gz");
  await copyFile(world.inputs[1] as string, copy);
  crawl1 = world.inputs.slice(0, 3);
  crawl2 = [...world.inputs.slice(3, 5), copy];
});

after(async () => {
  await world?.close();
});

test("a second crawl added to a root equals one run over both; the overlap costs no work", {
  timeout: 600_000,
}, async () => {
  const grown = join(dir, "grown");
  await world.makeRoot(grown);
  const first = await runPipeline({ root: grown, inputs: crawl1 });
  assert.equal(first.ok, true, JSON.stringify(first.failed));
  const storage = new LocalStorage(grown);
  const indexAfterFirst = await readManifest(storage);
  assert.ok(indexAfterFirst !== undefined);

  const second = await runPipeline({ root: grown, inputs: crawl2 });
  assert.equal(second.ok, true, JSON.stringify(second.failed));

  const once = join(dir, "once");
  await world.makeRoot(once);
  const both = await runPipeline({ root: once, inputs: [...crawl1, ...crawl2] });
  assert.equal(both.ok, true, JSON.stringify(both.failed));
  assert.deepEqual(await pipelineOutput(grown), await pipelineOutput(once), "row for row");

  // The copy's pairs were all seen in crawl 1: dropped by extract, never downloaded.
  const copyStats = JSON.parse(
    await readFile(join(grown, "candidates", "00005_stats.json"), "utf8"),
  ) as { imageLinks: number; kept: number; dropped: Record<string, number> };
  assert.equal(copyStats.kept, 0);
  assert.ok((copyStats.dropped.duplicate ?? 0) > 0);
  const overlap = copyStats.dropped.duplicate ?? 0;
  const crawl2Pairs = second.stages.extract.successes;
  assert.ok(
    overlap / (overlap + crawl2Pairs) > 0.25,
    `crawl 2 shares ${overlap} of ${overlap + crawl2Pairs} pairs with crawl 1`,
  );
  // Only crawl 2's new pairs went through download, embed and filter.
  assert.equal(
    first.stages.download.samples + second.stages.download.samples,
    both.stages.download.samples,
  );
  assert.equal(second.stages.download.samples, crawl2Pairs);
  assert.equal(
    second.stages.extract.samples,
    both.stages.extract.samples - first.stages.extract.samples,
    "crawl 1's files were not read again",
  );

  // The index was extended: crawl 1's segments are still there, as they were.
  const indexAfterSecond = await readManifest(storage);
  assert.deepEqual(
    indexAfterSecond?.segments.slice(0, indexAfterFirst.segments.length),
    indexAfterFirst.segments,
  );
  assert.ok((indexAfterSecond?.segments.length ?? 0) > indexAfterFirst.segments.length);
});
