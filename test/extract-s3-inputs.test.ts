/**
 * extract reading its WAT inputs from S3 (s3rver on 127.0.0.1, reached through AWS_ENDPOINT_URL
 * as a user's MinIO would be): single objects, prefixes, wildcards, path listings and --crawl
 * against an s3:// base must give the rows the same files give from local disk; a connection
 * cut mid-object resumes with a ranged GET; a missing key, bucket or store, or wrong
 * credentials, is one line and the other inputs are still extracted.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import { LocalStorage } from "../src/io/local-storage.js";
import { openRoot } from "../src/io/open-root.js";
import { readParquet } from "../src/io/parquet.js";
import { streamS3Object } from "../src/io/s3-objects.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { extract } from "../src/stages/extract/extract.js";
import { resolveWatInputs } from "../src/stages/extract/wat-inputs.js";
import { faultyProxy, startS3Server, type TestS3Server } from "./support/s3-server.js";
import { tempDir } from "./support/temp.js";
import { gzipEach, warcinfoRecord, watPageRecord } from "./support/warc-build.js";

let s3: TestS3Server;
let work: string;
const localFiles: string[] = [];
const names = ["a.warc.wat.gz", "b.warc.wat.gz", "big.warc.wat.gz"];
const bytes = new Map<string, Buffer>();

/** A WAT file of `pages` pages, each with two image links whose alt texts differ by `seed`. */
function watFile(seed: string, pages: number): Buffer {
  const records = [warcinfoRecord()];
  for (let page = 0; page < pages; page++) {
    records.push(
      watPageRecord(`https://site${page % 7}.example.com/${seed}/${page}.html`, [
        { url: `img/${page}.jpg`, alt: `A photograph of item ${page} from collection ${seed}` },
        { url: "/logo.png", alt: "Shop logo with a smiling sun" },
      ]),
    );
  }
  return gzipEach(records);
}

before(async () => {
  s3 = await startS3Server("wat-inputs");
  process.env.AWS_ENDPOINT_URL = s3.endpoint;
  work = await tempDir("s3-inputs");
  bytes.set("a.warc.wat.gz", watFile("a", 3));
  bytes.set("b.warc.wat.gz", watFile("b", 2));
  // Large enough that the proxy's cut falls in the middle of the body.
  bytes.set("big.warc.wat.gz", watFile("big", 1000));
  const bucket = openRoot(`s3://${s3.bucket}`);
  for (const name of names) {
    const data = bytes.get(name) as Buffer;
    localFiles.push(join(work, name));
    await writeFile(join(work, name), data);
    await bucket.writeAtomic(`wat/${name}`, data);
    await bucket.writeAtomic(`crawl-data/CC-MAIN-2024-10/segments/1/wat/${name}`, data);
  }
  await bucket.writeAtomic("wat/notes.txt", "not a WAT file, and not matched by *.wat.gz");
  await bucket.writeAtomic(
    "crawl-data/CC-MAIN-2024-10/wat.paths.gz",
    gzipSync(
      "crawl-data/CC-MAIN-2024-10/segments/1/wat/a.warc.wat.gz\n" +
        `s3://${s3.bucket}/wat/b.warc.wat.gz\n`,
    ),
  );
});

after(async () => {
  await s3.close();
});

const url = (name: string) => `s3://${s3.bucket}/wat/${name}`;

/** The candidate rows of a root's shards, and their `source` column apart. */
async function shardRows(root: string, shards: number) {
  const rows: Record<string, unknown>[][] = [];
  const sources: unknown[] = [];
  for (let shard = 0; shard < shards; shard++) {
    const path = `candidates/${String(shard).padStart(5, "0")}.parquet`;
    const read = await readParquet(new LocalStorage(root), path);
    sources.push(read[0]?.source);
    rows.push(read.map(({ source: _source, ...rest }) => rest));
  }
  return { rows, sources };
}

test("s3:// objects give the same candidate rows as the same files on local disk", async () => {
  const localRoot = join(work, "local");
  const remoteRoot = join(work, "remote");
  const local = await extract({ root: localRoot, inputs: localFiles, config: { workers: 2 } });
  const remote = await extract({
    root: remoteRoot,
    inputs: names.map(url),
    config: { workers: 2 },
  });
  assert.equal(remote.ok, true);
  assert.deepEqual(remote.totals, { ...local.totals, seconds: remote.totals.seconds });
  const fromDisk = await shardRows(localRoot, 3);
  const fromS3 = await shardRows(remoteRoot, 3);
  assert.ok(fromS3.rows.flat().length > 1000);
  assert.deepEqual(fromS3.rows, fromDisk.rows);
  assert.deepEqual(fromS3.sources, names.map(url), "an S3 row's source is its object's URL");
});

test("a prefix and a wildcard expand to the objects under them, sorted by key", async () => {
  const prefix = await resolveWatInputs([`s3://${s3.bucket}/wat/`], { baseUrl: "https://x/" });
  assert.deepEqual(
    prefix.inputs.map((input) => input.name),
    [...names.map(url), url("notes.txt")],
  );
  const wildcard = await resolveWatInputs([`s3://${s3.bucket}/wat/*.wat.gz`], {
    baseUrl: "https://x/",
  });
  assert.deepEqual(
    wildcard.inputs.map((input) => input.name),
    names.map(url),
  );
  const none = await resolveWatInputs([`s3://${s3.bucket}/nothing/*.wat.gz`], {
    baseUrl: "https://x/",
  });
  assert.deepEqual(
    none.errors.map((error) => error.message),
    [`s3://${s3.bucket}/nothing/*.wat.gz: no objects under this prefix match`],
  );
  const noListing = await resolveWatInputs(
    [`s3://${s3.bucket}/crawl-data/CC-MAIN-1999-01/wat.paths.gz`, url("a.warc.wat.gz")],
    { baseUrl: "https://x/" },
  );
  assert.deepEqual(
    noListing.errors.map((error) => error.message),
    [
      `s3://${s3.bucket}/crawl-data/CC-MAIN-1999-01/wat.paths.gz: no such key in bucket ${s3.bucket}: check the path (or the listing that named it)`,
    ],
  );
  assert.deepEqual(
    noListing.inputs.map((input) => input.name),
    [url("a.warc.wat.gz")],
  );
});

test("a wat.paths.gz on S3: relative lines are keys in its bucket; --crawl reads it from an s3:// base", async () => {
  const listing = `s3://${s3.bucket}/crawl-data/CC-MAIN-2024-10/wat.paths.gz`;
  const expected = [
    `s3://${s3.bucket}/crawl-data/CC-MAIN-2024-10/segments/1/wat/a.warc.wat.gz`,
    url("b.warc.wat.gz"),
  ];
  const fromListing = await extract({
    root: join(work, "listing"),
    inputs: [listing],
    config: { workers: 1 },
  });
  assert.equal(fromListing.ok, true);
  assert.equal(fromListing.shards, 2);
  assert.deepEqual((await shardRows(join(work, "listing"), 2)).sources, expected);
  const fromCrawl = await resolveWatInputs([], {
    crawl: "CC-MAIN-2024-10",
    baseUrl: `s3://${s3.bucket}/`,
  });
  assert.deepEqual(
    fromCrawl.inputs.map((input) => input.name),
    expected,
  );
});

test("a connection cut in the middle of an object resumes from the last byte with a ranged GET", async () => {
  const big = bytes.get("big.warc.wat.gz") as Buffer;
  const ranges: string[] = [];
  let firstGet = true;
  const proxy = await faultyProxy(s3.endpoint, (request) => {
    if (request.method !== "GET" || !(request.url ?? "").includes("big.warc.wat.gz")) {
      return "pass";
    }
    ranges.push(String(request.headers.range ?? ""));
    if (!firstGet) return "pass";
    firstGet = false;
    return { cutAnswerAfter: Math.floor(big.length / 2) };
  });
  process.env.AWS_ENDPOINT_URL = proxy.endpoint;
  try {
    const root = join(work, "resumed");
    const summary = await extract({
      root,
      inputs: [url("big.warc.wat.gz")],
      config: { workers: 1, retries: 2 },
    });
    assert.equal(summary.ok, true);
    assert.equal(proxy.cut, 1);
    assert.equal(ranges.length, 2);
    assert.equal(ranges[0], "");
    const resumedAt = Number(/^bytes=(\d+)-$/.exec(ranges[1] as string)?.[1]);
    assert.ok(resumedAt > 0 && resumedAt <= big.length / 2, `resumed at ${ranges[1]}`);
    const whole = await extract({
      root: join(work, "whole"),
      inputs: [join(work, "big.warc.wat.gz")],
      config: { workers: 1 },
    });
    assert.deepEqual(
      (await shardRows(root, 1)).rows,
      (await shardRows(join(work, "whole"), 1)).rows,
    );
    assert.equal(summary.totals.records, whole.totals.records);
  } finally {
    process.env.AWS_ENDPOINT_URL = s3.endpoint;
    await proxy.close();
  }
});

test("a missing key or bucket is one line naming the URL and the fix; the other inputs are extracted", async () => {
  const reporter = collectingReporter();
  const missingKey = url("gone.warc.wat.gz");
  const missingBucket = "s3://no-such-bucket/wat/a.warc.wat.gz";
  const summary = await extract({
    root: join(work, "missing"),
    inputs: [missingKey, url("a.warc.wat.gz"), missingBucket, url("b.warc.wat.gz")],
    config: { workers: 2, retries: 3 },
    reporter,
  });
  assert.equal(summary.ok, false);
  assert.deepEqual(reporter.warnings.sort(), [
    `${missingBucket}: no such bucket no-such-bucket at ${s3.endpoint}: check the bucket in the URL, and the endpoint (AWS_ENDPOINT_URL)`,
    `${missingKey}: no such key in bucket ${s3.bucket}: check the path (or the listing that named it)`,
  ]);
  const root = new LocalStorage(join(work, "missing"));
  assert.deepEqual(await root.list("candidates"), [
    "00001.parquet",
    "00001_stats.json",
    "00003.parquet",
    "00003_stats.json",
  ]);
});

test("wrong credentials, and a store that does not answer, are one line each", async () => {
  const reporter = collectingReporter();
  process.env.AWS_ACCESS_KEY_ID = "WRONGKEY";
  try {
    const denied = await extract({
      root: join(work, "denied"),
      inputs: [url("a.warc.wat.gz")],
      config: { workers: 1, retries: 3 },
      reporter,
    });
    assert.equal(denied.ok, false);
  } finally {
    process.env.AWS_ACCESS_KEY_ID = "S3RVER";
  }
  assert.equal(reporter.warnings.length, 1);
  assert.match(
    reporter.warnings[0] as string,
    /^s3:\/\/wat-inputs\/wat\/a\.warc\.wat\.gz: access denied \(InvalidAccessKeyId\): check AWS_ACCESS_KEY_ID/,
  );

  const down = collectingReporter();
  const closed = await faultyProxy(s3.endpoint, () => "pass");
  await closed.close();
  process.env.AWS_ENDPOINT_URL = closed.endpoint;
  try {
    await extract({
      root: join(work, "down"),
      inputs: [url("a.warc.wat.gz")],
      config: { workers: 1, retries: 1 },
      reporter: down,
    });
  } finally {
    process.env.AWS_ENDPOINT_URL = s3.endpoint;
  }
  assert.equal(down.warnings.length, 1);
  assert.match(
    down.warnings[0] as string,
    /^s3:\/\/wat-inputs\/wat\/a\.warc\.wat\.gz: failed after 2 attempts: the store did not answer \(ECONNREFUSED\): check the endpoint/,
  );
});

test("a store that answers 503 SlowDown is retried with backoff; one that keeps answering it is one line", async () => {
  let slowDowns = 1;
  const proxy = await faultyProxy(s3.endpoint, (request) => {
    if (request.method !== "GET" || !(request.url ?? "").includes("a.warc.wat.gz")) return "pass";
    if (slowDowns === 0) return "pass";
    slowDowns--;
    return { status: 503 };
  });
  process.env.AWS_ENDPOINT_URL = proxy.endpoint;
  try {
    const once = await extract({
      root: join(work, "slow-once"),
      inputs: [url("a.warc.wat.gz")],
      config: { workers: 1, retries: 2 },
    });
    assert.equal(once.ok, true);
    assert.equal(proxy.answered, 1);

    slowDowns = Number.POSITIVE_INFINITY;
    const reporter = collectingReporter();
    const always = await extract({
      root: join(work, "slow-always"),
      inputs: [url("a.warc.wat.gz"), url("b.warc.wat.gz")],
      config: { workers: 1, retries: 2 },
      reporter,
    });
    assert.equal(always.ok, false);
    assert.equal(proxy.answered, 4, "one answer, then three attempts");
    assert.deepEqual(reporter.warnings, [
      `${url("a.warc.wat.gz")}: failed after 3 attempts: the store answered 503 (SlowDown) to every try: it is overloaded or failing; run again later, or with fewer workers`,
    ]);
    assert.deepEqual(await new LocalStorage(join(work, "slow-always")).list("candidates"), [
      "00001.parquet",
      "00001_stats.json",
    ]);
  } finally {
    process.env.AWS_ENDPOINT_URL = s3.endpoint;
    await proxy.close();
  }
});

test("a store that falls silent mid-object is abandoned after the timeout and resumed; a slow reader is not taken for one", async () => {
  const big = bytes.get("big.warc.wat.gz") as Buffer;
  let firstGet = true;
  const ranges: string[] = [];
  const proxy = await faultyProxy(s3.endpoint, (request) => {
    if (request.method !== "GET") return "pass";
    ranges.push(String(request.headers.range ?? ""));
    if (!firstGet) return "pass";
    firstGet = false;
    return { stallAnswerAfter: Math.floor(big.length / 3) };
  });
  process.env.AWS_ENDPOINT_URL = proxy.endpoint;
  try {
    const read = async (pauseMs: number) => {
      const chunks: Buffer[] = [];
      for await (const chunk of streamS3Object(url("big.warc.wat.gz"), {
        timeoutSeconds: 0.5,
        retries: 1,
      })) {
        chunks.push(chunk);
        if (pauseMs > 0 && chunks.length <= 3)
          await new Promise((done) => setTimeout(done, pauseMs));
      }
      return Buffer.concat(chunks);
    };
    assert.ok((await read(0)).equals(big), "the stalled read resumed to the same bytes");
    assert.equal(proxy.cut, 1);
    assert.match(ranges[1] as string, /^bytes=\d+-$/);
    // The reader pauses longer than the timeout three times; the store is not blamed.
    assert.ok((await read(1200)).equals(big));
    assert.equal(ranges.length, 3, "the slow reader's read was one GET");
  } finally {
    process.env.AWS_ENDPOINT_URL = s3.endpoint;
    await proxy.close();
  }
});
