/**
 * The run report of `clipcrawl run`: a whole local pipeline over generated WAT files (the demo's
 * local web of images, the tiny CLIP model) leaves `_reports/latest.json` with every stage's run
 * and totals, and `stats` reads its throughput from it.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LocalStorage } from "../src/io/local-storage.js";
import { LATEST_RUN_REPORT, type RunReport } from "../src/pipeline/run-report.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { stats, statsReport } from "../src/stages/stats/stats.js";
import { type PipelineWorld, pipelineWorld } from "./support/run-root.js";
import { tempDir } from "./support/temp.js";

let dir: string;
let world: PipelineWorld;

before(async () => {
  dir = await tempDir("run-report");
  world = await pipelineWorld(dir, { files: 2, pages: 4 });
});

after(async () => {
  await world?.close();
  await rm(dir, { recursive: true, force: true });
});

test("clipcrawl run writes a run report: each stage's run, the root's totals, and stats' throughput", async () => {
  const root = join(dir, "root");
  await world.makeRoot(root);
  const summary = await runPipeline({ root, inputs: world.inputs });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));

  const storage = new LocalStorage(root);
  const report = JSON.parse(await storage.readText(LATEST_RUN_REPORT)) as RunReport;
  assert.equal(report.command, "run");
  assert.equal(report.ok, true);
  assert.deepEqual(
    report.stages.map((item) => item.stage),
    ["extract", "download", "embed", "filter", "index"],
  );
  const byStage = Object.fromEntries(report.stages.map((item) => [item.stage, item]));
  for (const stage of ["download", "embed", "filter"] as const) {
    const { run, totals } = byStage[stage] ?? {};
    assert.ok(run !== null && run !== undefined && totals !== null && totals !== undefined, stage);
    assert.equal(run.shardsDone, summary.stages[stage].done, stage);
    assert.equal(run.shardsFailed, 0, stage);
    assert.equal(run.samples, summary.stages[stage].samples, stage);
    assert.equal(totals.shards, summary.stages[stage].done, stage);
    assert.deepEqual(run.errors, [], stage);
  }
  const extract = byStage.extract?.totals;
  const download = byStage.download?.totals;
  const embed = byStage.embed?.totals;
  const filter = byStage.filter?.totals;
  assert.ok(extract && download && embed && filter);
  // Each stage's output is the next one's input, and what went in came out or was dropped.
  assert.ok(extract.inputs >= extract.outputs && extract.outputs > 0);
  assert.equal(download.inputs, extract.outputs);
  assert.equal(embed.inputs, download.outputs);
  assert.equal(filter.inputs, embed.outputs);
  const dropped = (drops: Record<string, number>) =>
    Object.values(drops).reduce((sum, count) => sum + count, 0);
  assert.equal(download.inputs - download.outputs, dropped(download.drops));
  assert.equal(filter.inputs - filter.outputs, dropped(filter.drops));
  assert.equal(byStage.index?.totals, null);
  assert.ok((byStage.index?.run?.shardsDone ?? 0) >= 0);

  const reports = (await storage.list("_reports")).filter((name) => /^run-.+\.json$/.test(name));
  assert.equal(reports.length, 1);

  const numbers = await statsReport(storage);
  assert.deepEqual(numbers.runReport, { command: "run", finishedAt: report.finishedAt });
  assert.equal(numbers.funnel.links, extract.inputs);
  assert.equal(numbers.funnel.candidates, extract.outputs);
  assert.equal(numbers.funnel.kept, filter.outputs);
  for (const stage of ["download", "embed", "filter"] as const) {
    const speed = numbers.throughput.find((item) => item.stage === stage);
    assert.equal(speed?.source, "run report", stage);
    assert.equal(speed?.samplesPerSecond, byStage[stage]?.run?.samplesPerSecond, stage);
  }

  // The HTML needs the package's built chart script; without one, one line says how to build it.
  await assert.rejects(
    stats({ root, script: join(dir, "missing", "stats-report.js") }),
    /chart script .*missing\/stats-report\.js is missing: run npm run build:web/,
  );
});
