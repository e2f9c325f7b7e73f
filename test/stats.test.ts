/**
 * `clipcrawl stats` and the run report over a dataset built by the real stages (the serve
 * fixture: download from a local web of coloured shapes, embed with the tiny CLIP model and the
 * example score heads, filter, index). The JSON's numbers are checked against what the fixture
 * planted (one dead link, German captions, mismatched captions that filter drops); the HTML is
 * opened in headless Chromium as a person would, every plot must have drawn an svg, and a
 * screenshot goes to test-results/stats/ for a person to look at.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { build } from "vite";
import { initRoot } from "../src/config/init-root.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { duckdbConnection, quoteLiteral } from "../src/io/parquet.js";
import { LATEST_RUN_REPORT, type RunReport, readStageTotals } from "../src/pipeline/run-report.js";
import { type StatsReport, stats } from "../src/stages/stats/stats.js";
import { CHROMIUM, CHROMIUM_ARGS, chromiumSkipReason } from "./support/chromium.js";
import { runCli } from "./support/cli.js";
import {
  buildServeFixture,
  type ServeFixture,
  type ShapeWeb,
  startShapeWeb,
} from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const SCREENSHOTS = join(REPO, "test-results", "stats");
const CHARTS = [
  "funnel",
  "similarity",
  "languages",
  "sizes",
  "punsafe",
  "pwatermark",
  "aesthetic",
  "download-errors",
  "drop-reasons",
  "top-domains",
  "throughput",
];

let work: string;
let web: ShapeWeb;
let fixture: ServeFixture;
let script: string;

before(async () => {
  work = await tempDir("stats");
  web = await startShapeWeb();
  fixture = await buildServeFixture(work, web);
  script = join(work, "report-script", "stats-report.js");
  await build({
    configFile: join(REPO, "web", "vite.report.config.ts"),
    logLevel: "warn",
    build: { outDir: join(work, "report-script"), emptyOutDir: true },
  });
});

after(async () => {
  await web?.close();
  await rm(work, { recursive: true, force: true });
});

async function datasetRows(): Promise<{ rows: number; languages: Map<string, number> }> {
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT coalesce(LANGUAGE, '') AS language, count(*)::INTEGER AS n FROM read_parquet(${quoteLiteral(join(fixture.root, "dataset", "*.parquet"))}) GROUP BY ALL`,
    );
    const languages = new Map(reader.getRows() as [string, number][]);
    return { rows: [...languages.values()].reduce((sum, n) => sum + n, 0), languages };
  } finally {
    connection.closeSync();
  }
}

test("the stage totals of the run report add up the stages' stats files", async () => {
  const totals = await readStageTotals(new LocalStorage(fixture.root));
  const listed = fixture.listed.length;
  assert.equal(totals.extract, null, "a URL-list download has no extract stats");
  assert.ok(totals.download !== null && totals.embed !== null && totals.filter !== null);
  assert.equal(totals.download.inputs, listed);
  assert.equal(totals.download.outputs, listed - 1, "missing.jpg is the one dead link");
  assert.deepEqual(totals.download.drops, { failed_to_download: 1 });
  assert.equal(
    Object.values(totals.download.errors).reduce((sum, n) => sum + n, 0),
    1,
  );
  assert.match(Object.keys(totals.download.errors)[0] ?? "", /404/);
  assert.equal(totals.embed.inputs, listed - 1);
  assert.equal(totals.filter.inputs, totals.embed.outputs);
  const { rows } = await datasetRows();
  assert.equal(totals.filter.outputs, rows);
  const dropped = Object.values(totals.filter.drops).reduce((sum, n) => sum + n, 0);
  assert.equal(dropped, totals.filter.inputs - rows);
  assert.ok(dropped >= 2, "the two mismatched captions are dropped");
});

test("stats writes JSON with the dataset's numbers and an HTML page whose every plot renders offline", async (t) => {
  const html = join(work, "out", "report.html");
  const json = join(work, "out", "stats.json");
  const summary = await stats({ root: fixture.root, html, json, script });
  const report = JSON.parse(await readFile(json, "utf8")) as StatsReport;
  assert.deepEqual(report, JSON.parse(JSON.stringify(summary.report)));

  const listed = fixture.listed.length;
  const { rows, languages } = await datasetRows();
  assert.deepEqual(report.funnel, {
    links: null,
    candidates: null,
    downloaded: listed - 1,
    embedded: listed - 1,
    kept: rows,
  });
  assert.deepEqual(new Map(report.languages), languages);
  assert.ok(languages.has("de"), "the German captions are kept");
  assert.equal(report.downloadErrors.length, 1);
  assert.match(report.downloadErrors[0]?.[0] ?? "", /404/);
  assert.equal(
    report.dropReasons.reduce((sum, [, n]) => sum + n, 0),
    listed - 1 - rows,
  );
  assert.deepEqual(report.topDomains, [["shapes.test", rows]]);
  const count = (bins: [number, number, number][]) => bins.reduce((sum, bin) => sum + bin[2], 0);
  assert.equal(count(report.similarity.bins), listed - 1, "every embedded pair's similarity");
  assert.equal(count(report.sizes.width.bins), rows);
  assert.equal(count(report.punsafe.bins), rows);
  assert.equal(count(report.aesthetic.bins), rows);
  assert.ok(report.thresholds !== null);
  assert.equal(report.runReport, null, "the fixture ran the stage functions, not the CLI");
  for (const stage of ["download", "embed", "filter"]) {
    const speed = report.throughput.find((item) => item.stage === stage);
    assert.equal(speed?.source, "shard stats", stage);
    assert.ok((speed?.samplesPerSecond ?? 0) > 0, stage);
  }

  if (chromiumSkipReason !== false) {
    t.diagnostic(`the HTML is not opened: ${chromiumSkipReason}`);
    return;
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") problems.push(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`uncaught error: ${error.message}`));
    page.on("request", (request) => {
      if (!request.url().startsWith("file:")) problems.push(`request: ${request.url()}`);
    });
    await page.goto(pathToFileURL(html).href);
    await page.locator("body[data-rendered=true]").waitFor({ timeout: 10_000 });
    const figures = page.locator("figure.chart");
    assert.deepEqual(
      await Promise.all((await figures.all()).map((figure) => figure.getAttribute("data-chart"))),
      CHARTS,
    );
    for (const figure of await figures.all()) {
      const id = await figure.getAttribute("data-chart");
      assert.ok((await figure.locator("svg").count()) > 0, `${id} drew no svg`);
    }
    assert.match(
      (await page.locator('figure[data-chart="top-domains"]').textContent()) ?? "",
      /shapes\.test/,
    );
    assert.match(
      (await page.locator('tr[data-stage="download"]').textContent()) ?? "",
      new RegExp(`${listed}.*${listed - 1}.*failed_to_download 1`),
    );
    await mkdir(SCREENSHOTS, { recursive: true });
    await page.screenshot({ path: join(SCREENSHOTS, "stats-report.png"), fullPage: true });
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("a stage command writes a run report that stats takes the throughput from", async () => {
  const filtered = await runCli(["filter", "--root", fixture.root, "--overwrite", "--json"]);
  assert.equal(filtered.code, 0, filtered.stderr);
  const storage = new LocalStorage(fixture.root);
  const latest = JSON.parse(await storage.readText(LATEST_RUN_REPORT)) as RunReport;
  assert.equal(latest.command, "filter");
  assert.equal(latest.ok, true);
  const reports = (await storage.list("_reports")).filter((name) => /^run-.+\.json$/.test(name));
  assert.equal(reports.length, 1);
  assert.equal(
    await storage.readText(`_reports/${reports[0]}`),
    await storage.readText(LATEST_RUN_REPORT),
  );
  const filter = latest.stages.find((item) => item.stage === "filter");
  const { rows } = await datasetRows();
  assert.equal(filter?.run?.outputs, rows);
  assert.equal(filter?.run?.shardsDone, filter?.totals?.shards);
  assert.ok((filter?.run?.samplesPerSecond ?? 0) > 0);
  assert.equal(filter?.totals?.outputs, rows);
  assert.equal(latest.stages.find((item) => item.stage === "download")?.run, null);
  assert.equal(
    latest.stages.find((item) => item.stage === "download")?.totals?.outputs,
    fixture.listed.length - 1,
  );

  const summary = await stats({ root: fixture.root, script });
  assert.equal(summary.html, join(fixture.root, "_reports", "stats.html"));
  assert.deepEqual(summary.report.runReport, { command: "filter", finishedAt: latest.finishedAt });
  const speed = summary.report.throughput.find((item) => item.stage === "filter");
  assert.equal(speed?.source, "run report");
  assert.equal(speed?.samplesPerSecond, filter?.run?.samplesPerSecond);
  assert.equal(
    summary.report.throughput.find((item) => item.stage === "download")?.source,
    "shard stats",
  );
});

test("stats on a root without a dataset says what to run", async () => {
  const empty = join(work, "empty-root");
  await initRoot(new LocalStorage(empty));
  const result = await runCli(["stats", "--root", empty]);
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    new RegExp(
      `clipcrawl: ${empty}/${layout.datasetFolder()}: no dataset shards .*run clipcrawl run`,
    ),
  );
  assert.equal(result.stderr.trim().split("\n").length, 1);
});
