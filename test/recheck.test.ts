/**
 * `clipcrawl recheck` against a local web that changes between two rechecks: some URLs start
 * answering 404, some serve other bytes, some add `X-Robots-Tag: noai`, one answers 500 — each
 * row gets its status, the summary counts them per domain, the still-available subset and the
 * opted-out list come out ready for download and remove, and an interrupted recheck resumes
 * without fetching again what it had done.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { build } from "vite";
import { initRoot } from "../src/config/init-root.js";
import { readRemovalRequest } from "../src/formats/removal-lists.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet, writeParquet } from "../src/io/parquet.js";
import { recheck } from "../src/stages/recheck/recheck.js";
import { inSample } from "../src/stages/recheck/recheck-shard.js";
import { stats } from "../src/stages/stats/stats.js";
import { CHROMIUM, CHROMIUM_ARGS, chromiumSkipReason } from "./support/chromium.js";
import { testImage } from "./support/image-server.js";
import { tempDir } from "./support/temp.js";

interface Answer {
  status: number;
  body: Buffer;
  headers?: Record<string, string>;
}

const REPO = fileURLToPath(new URL("..", import.meta.url));
let work: string;
let server: Server;
let base: string;
const answers = new Map<string, Answer>();
const requests: string[] = [];
const SHARDS = 2;
const PER_SHARD = 12;

/** Sample n: its path on the local web, under one of two host names (both 127.0.0.1). */
function pathOf(n: number): string {
  return `/img/${n}.jpg`;
}

function urlOf(n: number): string {
  const host = n % 2 === 0 ? "localhost" : "127.0.0.1";
  return `http://${host}:${new URL(base).port}${pathOf(n)}`;
}

before(async () => {
  work = await tempDir("recheck");
  server = createServer((request, response) => {
    requests.push(request.url ?? "");
    const answer = answers.get(request.url ?? "");
    if (answer === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(answer.status, { "content-type": "image/jpeg", ...answer.headers });
    response.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(work, { recursive: true, force: true });
});

/** A root whose dataset shards hold the samples, with the sha256 of the bytes served today. */
async function datasetRoot(name: string): Promise<string> {
  const root = join(work, name);
  const storage = new LocalStorage(root);
  await initRoot(storage);
  for (let shard = 0; shard < SHARDS; shard++) {
    const rows = [];
    for (let index = 0; index < PER_SHARD; index++) {
      const n = shard * PER_SHARD + index;
      const body = await testImage(32, 32, "jpeg", n);
      answers.set(pathOf(n), { status: 200, body });
      rows.push({
        key: `${String(shard).padStart(5, "0")}${String(index).padStart(4, "0")}`,
        url: urlOf(n),
        text: `picture ${n}`,
        sha256: createHash("sha256").update(body).digest("hex"),
      });
    }
    await writeParquet(
      storage,
      layout.datasetShard(String(shard).padStart(5, "0")),
      [
        { name: "URL", type: "VARCHAR", value: (row) => row.url },
        { name: "TEXT", type: "VARCHAR", value: (row) => row.text },
        { name: "key", type: "VARCHAR", value: (row) => row.key },
        { name: "sha256", type: "VARCHAR", value: (row) => row.sha256 },
        // The rest of the LAION columns `stats` reads.
        { name: "WIDTH", type: "BIGINT", value: () => 32 },
        { name: "HEIGHT", type: "BIGINT", value: () => 32 },
        { name: "similarity", type: "DOUBLE", value: () => 0.3 },
        { name: "punsafe", type: "DOUBLE", value: () => 0.1 },
        { name: "pwatermark", type: "DOUBLE", value: () => 0.1 },
        { name: "AESTHETIC_SCORE", type: "DOUBLE", value: () => 5 },
        { name: "LANGUAGE", type: "VARCHAR", value: () => "en" },
      ],
      rows,
    );
  }
  return root;
}

const fetchConfig = { allowPrivateNetwork: true, retries: 0, timeoutSeconds: 5 };

test("a recheck records each URL's status now: alive, changed, gone, opted out since, or unreachable", async () => {
  const root = await datasetRoot("two-rechecks");
  const first = await recheck({ root, date: "2026-01-01", config: fetchConfig });
  assert.equal(first.ok, true, JSON.stringify(first.failedShards));
  assert.deepEqual(first.overall, {
    urls: SHARDS * PER_SHARD,
    alive: SHARDS * PER_SHARD,
    changed: 0,
    gone: 0,
    opted_out: 0,
    error: 0,
  });

  // The web moves on: 0, 5 and 9 are gone, 1 and 7 serve other bytes, 2 and 13 opt out, 3 fails.
  for (const n of [0, 5, 9]) answers.set(pathOf(n), { status: 404, body: Buffer.from("no") });
  for (const n of [1, 7]) {
    answers.set(pathOf(n), { status: 200, body: await testImage(32, 32, "jpeg", 1000 + n) });
  }
  for (const n of [2, 13]) {
    const answer = answers.get(pathOf(n)) as Answer;
    answers.set(pathOf(n), { ...answer, headers: { "x-robots-tag": "noai" } });
  }
  answers.set(pathOf(3), { status: 500, body: Buffer.from("oops") });

  const second = await recheck({ root, date: "2026-02-01", config: fetchConfig });
  assert.equal(second.ok, true);
  assert.deepEqual(second.overall, {
    urls: 24,
    alive: 16,
    changed: 2,
    gone: 3,
    opted_out: 2,
    error: 1,
  });
  const storage = new LocalStorage(root);
  const rows = await readParquet(storage, layout.recheck("2026-02-01"));
  const statusOf = (n: number) => rows.find((row) => row.url === urlOf(n))?.status;
  assert.equal(statusOf(0), "gone");
  assert.equal(rows.find((row) => row.url === urlOf(0))?.http_status, 404);
  assert.equal(statusOf(1), "changed");
  assert.equal(statusOf(2), "opted_out");
  assert.equal(statusOf(3), "error");
  assert.equal(statusOf(4), "alive");
  // The first recheck's file is kept: the URLs' history is the series.
  assert.equal(
    (await readParquet(storage, layout.recheck("2026-01-01"))).filter(
      (row) => row.status === "alive",
    ).length,
    24,
  );

  // Per domain (both host names are the local web).
  assert.deepEqual(second.domains.map((domain) => [domain.domain, domain.urls]).sort(), [
    ["127.0.0.1", 12],
    ["localhost", 12],
  ]);
  const localhost = second.domains.find((domain) => domain.domain === "localhost");
  assert.equal(localhost?.gone, 1); // 0 (even); 5 and 9 are on 127.0.0.1
  const summary = JSON.parse(
    await readFile(join(root, layout.recheckSummary("2026-02-01")), "utf8"),
  );
  assert.equal(summary.overall.opted_out, 2);

  // What is still there, unchanged, ready for download; what opted out, ready for remove.
  const available = await readParquet(storage, layout.recheckAvailable("2026-02-01"));
  assert.equal(available.length, 16);
  assert.deepEqual(Object.keys(available[0] ?? {}), ["url", "caption", "key"]);
  const optedOut = join(root, layout.recheckOptedOut("2026-02-01"));
  assert.deepEqual(
    (await readFile(optedOut, "utf8")).trim().split("\n").sort(),
    [urlOf(2), urlOf(13)].sort(),
  );
  const request = await readRemovalRequest({ urls: optedOut }, root);
  assert.equal(request.urls.entries.size, 2, "clipcrawl remove --urls reads the list as it is");
});

test("an interrupted recheck resumes without fetching again what it had done", async () => {
  const root = await datasetRoot("resume");
  const storage = new LocalStorage(root);
  await recheck({ root, date: "2026-03-01", config: fetchConfig });
  // As if it was killed after shard 00000: shard 00001's part and marker never written.
  await storage.remove(layout.recheckPart("2026-03-01", "00001"));
  await storage.remove(layout.doneMarker("recheck/2026-03-01", "00001"));
  await storage.remove(layout.recheck("2026-03-01"));
  requests.length = 0;
  const resumed = await recheck({ root, date: "2026-03-01", config: fetchConfig });
  assert.equal(resumed.shardsSkipped, 1);
  assert.equal(resumed.shardsWritten, 1);
  assert.equal(requests.length, PER_SHARD, "only shard 00001's URLs were fetched again");
  assert.equal(resumed.overall?.urls, SHARDS * PER_SHARD);
  requests.length = 0;
  const again = await recheck({ root, date: "2026-03-01", config: fetchConfig });
  assert.equal(requests.length, 0, "a finished recheck fetches nothing");
  assert.equal(again.overall?.urls, SHARDS * PER_SHARD);
});

test("--sample fetches a deterministic fraction of the rows; the same seed picks the same rows", async () => {
  const root = await datasetRoot("sample");
  const summary = await recheck({
    root,
    date: "2026-04-01",
    sample: 0.5,
    seed: 7,
    config: fetchConfig,
  });
  const storage = new LocalStorage(root);
  const keys = (await readParquet(storage, layout.recheck("2026-04-01"))).map((row) =>
    String(row.key),
  );
  const expected = [];
  for (let shard = 0; shard < SHARDS; shard++) {
    for (let index = 0; index < PER_SHARD; index++) {
      const key = `${String(shard).padStart(5, "0")}${String(index).padStart(4, "0")}`;
      if (inSample(key, 0.5, 7)) expected.push(key);
    }
  }
  assert.deepEqual(keys, expected);
  assert.ok(keys.length > 0 && keys.length < SHARDS * PER_SHARD, `${keys.length} sampled`);
  assert.equal(summary.overall?.urls, keys.length);
});

test("a bad --sample or --date is one line, and nothing is fetched", async () => {
  const root = await datasetRoot("bad-flags");
  requests.length = 0;
  await assert.rejects(
    recheck({ root, sample: 0, config: fetchConfig }),
    /--sample: expected a fraction above 0 and at most 1, got 0/,
  );
  await assert.rejects(
    recheck({ root, date: "yesterday", config: fetchConfig }),
    /--date: expected YYYY-MM-DD/,
  );
  assert.equal(requests.length, 0);
  await assert.rejects(
    recheck({ root: join(work, "no-such-root") }),
    /not a clipcrawl dataset root/,
  );
});

test("stats and its HTML report show the latest recheck: the share still online, per domain", async (t) => {
  const root = await datasetRoot("stats");
  await recheck({ root, date: "2026-05-01", config: fetchConfig });
  answers.set(pathOf(4), { status: 410, body: Buffer.from("gone") });
  await recheck({ root, date: "2026-05-02", config: fetchConfig });
  const script = join(work, "report-script", "stats-report.js");
  await build({
    configFile: join(REPO, "web", "vite.report.config.ts"),
    logLevel: "warn",
    build: { outDir: join(work, "report-script"), emptyOutDir: true },
  });
  const html = join(work, "stats.html");
  const summary = await stats({ root, html, script });
  const linkRot = summary.report.linkRot;
  assert.equal(linkRot?.date, "2026-05-02", "the latest recheck");
  assert.equal(linkRot?.overall?.gone, 1);
  assert.equal(linkRot?.overall?.urls, SHARDS * PER_SHARD);

  if (chromiumSkipReason !== false) {
    t.diagnostic(`the HTML is not opened: ${chromiumSkipReason}`);
    return;
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage();
    await page.goto(pathToFileURL(html).href);
    await page.locator("body[data-rendered=true]").waitFor({ timeout: 10_000 });
    const chart = page.locator('figure[data-chart="link-rot"]');
    assert.match((await chart.textContent()) ?? "", /recheck of 2026-05-02/);
    assert.ok((await chart.locator("svg").count()) > 0, "the link-rot chart is drawn");
  } finally {
    await browser.close();
  }
});
