/**
 * A dataset that grows crawl by crawl: `clipcrawl run` on a root that holds crawl 1 adds crawl 2
 * (which shares about 30 % of its pairs with crawl 1) — the pairs seen before are dropped, only
 * the new shards go through download, embed and filter, the index is extended — and the result
 * equals one run over both crawls, row for row.
 */
import assert from "node:assert/strict";
import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { diffVersions } from "../src/formats/dataset-diff.js";
import { type DatasetVersion, listVersions } from "../src/formats/dataset-versions.js";
import { readManifest } from "../src/formats/index/index-manifest.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { extract } from "../src/stages/extract/extract.js";
import { subset } from "../src/stages/subset/subset.js";
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

  // Each finished run recorded a dataset version; the first stays readable as it was.
  const versions = await listVersions(storage);
  assert.deepEqual(
    versions.map((version) => version.id),
    ["v1", "v2"],
  );
  const [v1, v2] = versions as [DatasetVersion, DatasetVersion];
  assert.equal(v1.rows, first.stages.filter.successes);
  assert.equal(v2.rows, first.stages.filter.successes + second.stages.filter.successes);
  assert.equal(v1.models.length, 1, "the model digest is recorded");
  const diff = await diffVersions(storage, "v1", "v2");
  assert.equal(diff.added.rows, v2.rows - v1.rows);
  assert.equal(diff.removed.rows, 0);
  const languageRows = (index: 1 | 2) =>
    diff.languages.reduce((sum, language) => sum + language[index], 0);
  assert.deepEqual([languageRows(1), languageRows(2)], [v1.rows, v2.rows]);
  const asOfV1 = await subset({
    root: grown,
    version: "v1",
    where: "true",
    output: join(dir, "as-of-v1.parquet"),
  });
  assert.equal(asOfV1.rows, v1.rows);
  // A run that changes nothing records no new version.
  await runPipeline({ root: grown });
  assert.equal((await listVersions(storage)).length, 2);
  await assert.rejects(
    diffVersions(storage, "v1", "v9"),
    /no dataset version "v9" \(versions: v1, v2\)/,
  );
});

test("the dedup filter is saved in the root: a new crawl starts from it without reading the old candidates", {
  timeout: 300_000,
}, async () => {
  const candidatesOf = async (root: string) => {
    const files = (await readdir(join(root, "candidates"))).filter((f) => f.endsWith(".parquet"));
    return Promise.all(files.sort().map((file) => readFile(join(root, "candidates", file))));
  };
  const config = { bloomCapacity: 1000, workers: 1 };
  const grown = join(dir, "filter-grown");
  const first = await extract({ root: grown, inputs: crawl1, config });
  assert.deepEqual(first.dedupState, { restoredShards: 0, replayedShards: 0, savedShards: 3 });
  const second = await extract({ root: grown, inputs: crawl2, config });
  assert.deepEqual(second.dedupState, { restoredShards: 3, replayedShards: 0, savedShards: 6 });

  const once = join(dir, "filter-once");
  const both = await extract({ root: once, inputs: [...crawl1, ...crawl2], config });
  assert.deepEqual(both.dedupState, { restoredShards: 0, replayedShards: 0, savedShards: 6 });
  assert.deepEqual(second.bloomFilter, both.bloomFilter);
  assert.deepEqual(await candidatesOf(grown), await candidatesOf(once), "the same candidates");
  assert.deepEqual(
    await readFile(join(grown, "_state", "pair-filter.bin")),
    await readFile(join(once, "_state", "pair-filter.bin")),
    "the same filter",
  );

  // A damaged snapshot is said in one line and rebuilt from the candidates; nothing changes.
  await writeFile(join(grown, "_state", "pair-filter.bin"), "garbage");
  const warnings: string[] = [];
  const reporter = { progress: () => {}, warn: (line: string) => warnings.push(line) };
  const again = join(dir, "in-2-again.warc.wat.gz");
  await copyFile(world.inputs[2] as string, again);
  const third = await extract({ root: grown, inputs: [again], config, reporter });
  assert.equal(third.dedupState.restoredShards, 0);
  assert.equal(third.dedupState.replayedShards, 6);
  assert.equal(third.dedupState.savedShards, 7);
  assert.equal(warnings.length, 1, warnings.join("\n"));
  assert.match(
    warnings[0] as string,
    /pair-filter\.bin: not a clipcrawl Bloom filter snapshot.*rebuilt/,
  );
});
