/**
 * The demo as `clipcrawl demo --no-serve` runs it: every stage on the bundled sample, in a temp
 * root, then the root served and asked a query; a second run finds everything done.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type DemoResult, demo } from "../src/demo/demo.js";
import { STAGE_NAMES, type StageName } from "../src/pipeline/pipeline.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { tempDir } from "./support/temp.js";

let work: string;
let first: DemoResult;
const started: StageName[] = [];
const finished: StageName[] = [];

before(async () => {
  work = await tempDir("demo");
  first = await demo({
    root: join(work, "root"),
    reporter: collectingReporter(),
    observer: {
      stageStarted: (stage) => started.push(stage),
      stageFinished: (stage) => finished.push(stage),
    },
  });
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test("every stage runs, in order, and writes its shards", () => {
  assert.equal(first.ok, true);
  assert.deepEqual(started, [...STAGE_NAMES]);
  assert.deepEqual(finished, [...STAGE_NAMES]);
  for (const stage of ["extract", "download", "embed", "filter"] as const) {
    const summary = first[stage];
    assert.ok(summary.shardsWritten > 0, `${stage} wrote no shard`);
    assert.equal(summary.shardsWritten, summary.shards, stage);
  }
  assert.ok(first.index.shardsWritten > 0);
  assert.equal(first.index.rows, first.filter.totals.kept);
});

test("the sample has every language tier and the failures of a real crawl", () => {
  const tiers = first.extract.totals.languageTiers;
  for (const tier of ["en", "multi", "nolang"] as const) {
    assert.ok(tiers[tier] > 0, `no ${tier} candidates`);
    assert.ok(first.filter.totals.kept_by_tier[tier] > 0, `no ${tier} pair kept`);
  }
  const statuses = Object.keys(first.download.topStatuses);
  for (const status of ["success", "HTTP 404", "HTTP 410", "truncated image"]) {
    assert.ok(statuses.includes(status), `no "${status}" among ${statuses.join(", ")}`);
  }
  assert.ok(statuses.some((status) => status.startsWith("not an image")));
});

test("the built index answers a text query with the images it describes", async () => {
  let server: RunningServer | undefined;
  try {
    server = await serve({
      indices: [{ name: "demo", root: first.root }],
      config: { port: 0, rateLimitPerMinute: 0 },
    });
    const response = await fetch(`${server.url}/knn-service`, {
      method: "POST",
      body: JSON.stringify({ text: "a red circle", modality: "image", num_images: 5 }),
    });
    assert.equal(response.status, 200);
    const results = (await response.json()) as { url: string }[];
    assert.equal(results.length, 5);
    for (const result of results) assert.match(result.url, /\/img\/red-circle-\d+\.jpg$/);
  } finally {
    await server?.close();
  }
});

test("a second run reuses every stage's output", async () => {
  const second = await demo({ root: first.root });
  assert.equal(second.ok, true);
  for (const stage of ["extract", "download", "embed", "filter"] as const) {
    assert.equal(second[stage].shardsWritten, 0, stage);
    assert.equal(second[stage].shardsSkipped, first[stage].shards, stage);
  }
  assert.equal(second.index.shardsWritten, 0);
  assert.equal(second.index.rows, first.index.rows);
});
