import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { type ExtractSummary, extract } from "../src/stages/extract/extract.js";
import { tempDir } from "./support/temp.js";
import { gzipEach, warcinfoRecord, warcRecord, watPageRecord } from "./support/warc-build.js";

const pageA = watPageRecord("https://shop.example.com/chairs/index.html", [
  { url: "img/red-chair.jpg", alt: "A red leather armchair in a bright living room" },
  { url: "/logo.png", alt: "Shop logo with a smiling sun" },
  { url: "data:image/gif;base64,R0lGODlhAQABAAAAACw=", alt: "a tracking pixel image" },
  { url: "icon.png", alt: "icon" },
  { url: "no-alt.jpg" },
  { path: "A@/href", url: "/about", alt: "not an image link at all" },
]);
const pageB = watPageRecord(
  "https://blog.example.org/2024/post.html",
  [
    { url: "photo.jpg", alt: "Rotes Fahrrad vor einer alten Backsteinmauer in Berlin" },
    { url: "https://shop.example.com/logo.png", alt: "Shop logo with a smiling sun" },
  ],
  { base: "https://media.example.org/assets/" },
);
const requestRecord = warcRecord(
  { "WARC-Type": "metadata", "Content-Type": "application/json" },
  '{"Envelope":{"WARC-Header-Metadata":{"WARC-Type":"request"}}}',
);

async function rows(root: string, shard = "00000") {
  return readParquet(new LocalStorage(root), `candidates/${shard}.parquet`);
}

test("image links with alt text become candidate pairs with language, page, source and offsets", async () => {
  const dir = await tempDir("extract");
  await writeFile(
    join(dir, "a.warc.wat.gz"),
    gzipEach([warcinfoRecord(), requestRecord, pageA, pageB]),
  );
  const summary = await extract({
    root: join(dir, "root"),
    inputs: [join(dir, "a.warc.wat.gz")],
    config: { workers: 1 },
  });
  assert.equal(summary.ok, true);
  const pairs = await rows(join(dir, "root"));
  assert.deepEqual(
    pairs.map((row) => [row.url, row.text, row.language_tier]),
    [
      [
        "https://shop.example.com/chairs/img/red-chair.jpg",
        "A red leather armchair in a bright living room",
        "en",
      ],
      ["https://shop.example.com/logo.png", "Shop logo with a smiling sun", "en"],
      [
        "https://media.example.org/assets/photo.jpg",
        "Rotes Fahrrad vor einer alten Backsteinmauer in Berlin",
        "multi",
      ],
    ],
  );
  assert.equal(pairs[2]?.language, "de");
  assert.equal(pairs[0]?.page_url, "https://shop.example.com/chairs/index.html");
  assert.equal(pairs[0]?.source, "a.warc.wat.gz");
  assert.equal(pairs[0]?.warc_filename, "CC-MAIN-test-00000.warc.gz");
  assert.equal(pairs[0]?.warc_offset, 1234n);
  assert.equal(pairs[0]?.crawl_date, "2024-02-21T10:11:12Z");
  const firstPageOffset = gzipEach([warcinfoRecord(), requestRecord]).length;
  assert.equal(pairs[0]?.record_offset, BigInt(firstPageOffset));
  const { totals } = summary;
  assert.equal(totals.records, 4);
  assert.equal(totals.htmlPages, 2);
  assert.equal(totals.imageLinks, 7);
  assert.equal(totals.kept, 3);
  assert.deepEqual(Object.fromEntries(Object.entries(totals.dropped).filter(([, n]) => n > 0)), {
    unsupported_scheme: 1,
    short_text: 1,
    no_alt: 1,
    duplicate: 1,
  });
  const stats = JSON.parse(await readFile(join(dir, "root/candidates/00000_stats.json"), "utf8"));
  assert.equal(stats.kept, 3);
  assert.equal(stats.dropped.duplicate, 1);
});

test("the same (url, text) in several files is kept once, in the first file", async () => {
  const dir = await tempDir("extract-dedup");
  const inputs = ["a", "b", "c"].map((name) => join(dir, `${name}.warc.wat.gz`));
  for (const input of inputs) await writeFile(input, gzipEach([warcinfoRecord(), pageA]));
  const summary = await extract({ root: join(dir, "root"), inputs, config: { workers: 2 } });
  assert.equal(summary.totals.kept, 2);
  assert.equal((await rows(join(dir, "root"), "00000")).length, 2);
  assert.equal((await rows(join(dir, "root"), "00001")).length, 0);
  assert.equal((await rows(join(dir, "root"), "00002")).length, 0);
  assert.equal(summary.totals.dropped.duplicate, 4);
});

test("a truncated WAT file yields the pairs before the cut, one error naming file and offset, and ok=false", async () => {
  const dir = await tempDir("extract-truncated");
  const whole = gzipEach([warcinfoRecord(), pageA, pageB]);
  const cutAt = gzipEach([warcinfoRecord(), pageA]).length;
  const input = join(dir, "cut.warc.wat.gz");
  await writeFile(input, whole.subarray(0, cutAt + 40));
  const reporter = collectingReporter();
  const summary = await extract({ root: join(dir, "root"), inputs: [input], reporter });
  assert.equal(summary.ok, false);
  assert.equal((await rows(join(dir, "root"))).length, 2);
  assert.equal(reporter.warnings.length, 1);
  assert.equal(
    reporter.warnings[0],
    `${input}: gzip stream cut off in the member at offset ${cutAt}`,
  );
  assert.deepEqual(
    summary.failedShards.map((failed) => failed.input),
    [input],
  );
});

test("a record with invalid JSON or a broken WARC header is counted and skipped; the file goes on", async () => {
  const dir = await tempDir("extract-bad-records");
  const badJson = warcRecord(
    { "WARC-Type": "metadata", "WARC-Target-URI": "https://x.example/" },
    '{"Envelope": {"Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {"Links": [{"path":"IMG@/src", "url": "a.jpg", "alt": "broken record here"',
  );
  const badHeader = Buffer.from("WARC/1.0\r\nWARC-Type metadata\r\n\r\n{}");
  const input = join(dir, "bad.warc.wat.gz");
  await writeFile(input, gzipEach([warcinfoRecord(), badJson, badHeader, pageA]));
  const reporter = collectingReporter();
  const summary = await extract({ root: join(dir, "root"), inputs: [input], reporter });
  assert.equal(summary.ok, true);
  assert.equal(summary.totals.badRecords.invalid_json, 1);
  assert.equal(summary.totals.badRecords.bad_warc_record, 1);
  assert.equal(summary.totals.kept, 2);
  assert.equal(reporter.warnings.length, 2);
  assert.match(
    reporter.warnings[0] ?? "",
    /bad\.warc\.wat\.gz: invalid WAT JSON in the record at offset \d+/,
  );
  assert.match(
    reporter.warnings[1] ?? "",
    /bad\.warc\.wat\.gz: bad WARC record at offset \d+: malformed header line/,
  );
});

test("a missing file fails that input with a clear message while the others go on", async () => {
  const dir = await tempDir("extract-missing");
  const good = join(dir, "good.warc.wat.gz");
  await writeFile(good, gzipEach([warcinfoRecord(), pageA]));
  const missing = join(dir, "missing.warc.wat.gz");
  const reporter = collectingReporter();
  const summary = await extract({ root: join(dir, "root"), inputs: [missing, good], reporter });
  assert.equal(summary.ok, false);
  assert.deepEqual(reporter.warnings, [`${missing}: no such file`]);
  assert.equal((await rows(join(dir, "root"), "00001")).length, 2);
  assert.equal(summary.shardsWritten, 1);
});

test("a glob that matches nothing and a file that is neither gzip nor WARC are input errors", async () => {
  const dir = await tempDir("extract-globs");
  const plain = join(dir, "plain.warc.wat.gz");
  await writeFile(plain, "<!doctype html><title>404 Not Found</title>\n");
  const reporter = collectingReporter();
  const summary = await extract({
    root: join(dir, "root"),
    inputs: [join(dir, "nothing-*.wat.gz"), plain],
    reporter,
  });
  assert.equal(summary.ok, false);
  assert.match(reporter.warnings[0] ?? "", /nothing-\*\.wat\.gz: no files match this pattern/);
  assert.match(
    reporter.warnings[1] ?? "",
    /plain\.warc\.wat\.gz: not a WAT\/WARC file: it starts with neither a gzip header nor "WARC\/"/,
  );
});

test("re-running skips finished shards; a removed shard is redone and the output is identical", async () => {
  const dir = await tempDir("extract-resume");
  const inputs = ["a", "b", "c"].map((name) => join(dir, `${name}.warc.wat.gz`));
  await writeFile(inputs[0] as string, gzipEach([warcinfoRecord(), pageA]));
  await writeFile(inputs[1] as string, gzipEach([warcinfoRecord(), pageB, pageA]));
  await writeFile(inputs[2] as string, gzipEach([warcinfoRecord(), pageB]));
  const root = join(dir, "root");
  const first = await extract({ root, inputs });
  assert.equal(first.shardsWritten, 3);
  const before = await Promise.all(
    ["00000", "00001", "00002"].map((s) => readFile(join(root, `candidates/${s}.parquet`))),
  );
  const again = await extract({ root, inputs });
  assert.deepEqual([again.shardsWritten, again.shardsSkipped], [0, 3]);
  await rm(join(root, "candidates/00001.parquet"));
  const resumed = await extract({ root, inputs });
  assert.deepEqual([resumed.shardsWritten, resumed.shardsSkipped], [1, 2]);
  const afterResume = await Promise.all(
    ["00000", "00001", "00002"].map((s) => readFile(join(root, `candidates/${s}.parquet`))),
  );
  assert.deepEqual(afterResume, before);
  assert.equal(
    (await rows(root, "00002")).length,
    0,
    "shard 2's pairs were deduplicated against shard 1 again",
  );
});

test("changing a config value that shapes the output redoes the shards", async () => {
  const dir = await tempDir("extract-config-change");
  const input = join(dir, "a.warc.wat.gz");
  await writeFile(input, gzipEach([warcinfoRecord(), pageA]));
  const root = join(dir, "root");
  await extract({ root, inputs: [input] });
  const stricter = await extract({ root, inputs: [input], config: { minTextLength: 30 } });
  assert.equal(stricter.shardsWritten, 1);
  assert.equal((await rows(root)).length, 1);
});

describeHttp();

function describeHttp(): void {
  let server: Server;
  let base = "";
  const file = gzipEach([warcinfoRecord(), pageA, pageB]);
  const hits = new Map<string, number>();
  before(async () => {
    server = createServer((request, response) => {
      const path = request.url ?? "/";
      const hit = (hits.get(path) ?? 0) + 1;
      hits.set(path, hit);
      if (path === "/flaky.wat.gz" && hit === 1) {
        response.writeHead(503).end();
        return;
      }
      if (path === "/cut.wat.gz") {
        const range = /bytes=(\d+)-/.exec(request.headers.range ?? "");
        if (range === null) {
          // First attempt: headers promise the whole file, then the connection dies half-way.
          response.writeHead(200, { "content-length": file.length });
          response.write(file.subarray(0, 100));
          setTimeout(() => response.destroy(), 20);
          return;
        }
        const from = Number(range[1]);
        response.writeHead(206, {
          "content-range": `bytes ${from}-${file.length - 1}/${file.length}`,
        });
        response.end(file.subarray(from));
        return;
      }
      if (path === "/crawl-data/CC-MAIN-2024-10/wat.paths.gz") {
        response.end(
          gzipSync(
            "crawl-data/CC-MAIN-2024-10/segments/1/wat/one.wat.gz\ncrawl-data/CC-MAIN-2024-10/segments/1/wat/two.wat.gz\n",
          ),
        );
        return;
      }
      if (
        [
          "/ok.wat.gz",
          "/flaky.wat.gz",
          "/crawl-data/CC-MAIN-2024-10/segments/1/wat/one.wat.gz",
          "/crawl-data/CC-MAIN-2024-10/segments/1/wat/two.wat.gz",
        ].includes(path)
      ) {
        response.end(file);
        return;
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  test("http(s) inputs: 404 fails that input, 503 is retried, a connection cut mid-body resumes with Range", async () => {
    const dir = await tempDir("extract-http");
    const reporter = collectingReporter();
    const summary: ExtractSummary = await extract({
      root: dir,
      inputs: [
        `${base}/missing.wat.gz`,
        `${base}/flaky.wat.gz`,
        `${base}/cut.wat.gz`,
        `${base}/ok.wat.gz`,
      ],
      config: { retries: 2, workers: 2, allowPrivateNetwork: true },
      reporter,
    });
    assert.deepEqual(reporter.warnings, [`${base}/missing.wat.gz: HTTP 404`]);
    assert.equal(summary.ok, false);
    assert.equal((await rows(dir, "00001")).length, 3, "the flaky file was read after a retry");
    assert.equal(
      (await rows(dir, "00002")).length,
      0,
      "the resumed file had the same pairs (all duplicates now)",
    );
    assert.equal(summary.totals.records, 9);
    assert.equal(hits.get("/missing.wat.gz"), 1, "a 404 is not retried");
    assert.equal(hits.get("/cut.wat.gz"), 2);
  });

  test("--crawl reads the crawl's wat.paths.gz from the base URL (a mirror) and --limit caps the files", async () => {
    const dir = await tempDir("extract-crawl");
    const summary = await extract({
      root: dir,
      inputs: [],
      crawl: "CC-MAIN-2024-10",
      limit: 1,
      config: { baseUrl: `${base}/`, allowPrivateNetwork: true },
    });
    assert.equal(summary.ok, true);
    assert.equal(summary.shards, 1);
    const pairs = await rows(dir);
    assert.equal(pairs[0]?.source, `${base}/crawl-data/CC-MAIN-2024-10/segments/1/wat/one.wat.gz`);
    const listing = await extract({
      root: await tempDir("extract-listing"),
      inputs: [`${base}/crawl-data/CC-MAIN-2024-10/wat.paths.gz`],
      config: { baseUrl: `${base}/`, allowPrivateNetwork: true },
    });
    assert.equal(listing.shards, 2);
  });
}
