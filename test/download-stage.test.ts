import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { writeParquet } from "../src/io/parquet.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { ShardState } from "../src/shard/shard-state.js";
import type { DownloadConfig } from "../src/stages/download/config.js";
import { download } from "../src/stages/download/download.js";
import { runCli } from "./support/cli.js";
import { imageRows } from "./support/image-rows.js";
import { type ImageServer, startImageServer } from "./support/image-server.js";
import { tempDir } from "./support/temp.js";

let server: ImageServer;

before(async () => {
  server = await startImageServer();
});

after(async () => {
  await server.close();
});

/** Settings of every test run: the test host names go to the local server, timeouts are short. */
function testConfig(overrides: Partial<DownloadConfig> = {}): Partial<DownloadConfig> {
  return {
    allowPrivateNetwork: true,
    connectTo: [`img.test:80:127.0.0.1:${server.port}`, `other.test:80:127.0.0.1:${server.port}`],
    timeoutSeconds: 5,
    totalTimeoutSeconds: 1,
    retries: 1,
    retryBackoffSeconds: 0.05,
    maxBodyBytes: 1_000_000,
    workers: 2,
    ...overrides,
  };
}

/** Each URL of the failure-mode list with the exact status and error_message it must end with. */
const EXPECTED: [path: string, status: string, error: string | null][] = [
  ["/photo.jpg", "success", null],
  ["/wide.jpg", "success", null],
  ["/small.png", "success", null],
  ["/picture.webp", "success", null],
  ["/alpha.png", "success", null],
  ["/grey16.png", "success", null],
  ["/cmyk.jpg", "success", null],
  ["/rotated.jpg", "success", null],
  ["/animated.gif", "success", null],
  ["/gzip.jpg", "success", null],
  ["/flaky.jpg", "success", null],
  ["/redirect.jpg", "success", null],
  ["/other-bot-noai.jpg", "success", null],
  ["/missing.jpg", "failed_to_download", "HTTP 404"],
  ["/always-500.jpg", "failed_to_download", "HTTP 500"],
  ["/slow-drip.jpg", "failed_to_download", "timeout: no complete response in 1 s"],
  ["/endless.jpg", "failed_to_download", "body larger than 1000000 bytes"],
  ["/declared-too-large.jpg", "failed_to_download", "body larger than 1000000 bytes"],
  ["/page.html", "failed_to_download", "not an image: Content-Type text/html"],
  ["/redirect-loop.jpg", "failed_to_download", "too many redirects (more than 5)"],
  ["/invalid.jpg", "failed_to_resize", "invalid image: unsupported format"],
  ["/truncated.jpg", "failed_to_resize", "truncated image"],
  [
    "/bomb.png",
    "failed_to_resize",
    "decompression bomb: 30000x30000 pixels, over the limit of 89478485",
  ],
  ["/noai.jpg", "opted_out", "X-Robots-Tag: noai"],
];

const ODD_URLS: [url: string, status: string, error: string][] = [
  ["ftp://img.test/photo.jpg", "failed_to_download", "unsupported scheme ftp:"],
  ["http://user:secret@img.test/photo.jpg", "failed_to_download", "credentials in url"],
  ["not a url at all", "failed_to_download", "invalid url"],
  ["http://127.0.0.1:1/closed-port.jpg", "failed_to_download", "ECONNREFUSED"],
];

interface ListRow {
  url: string;
  caption: string;
  license: string;
}

function failureModeRows(): ListRow[] {
  return [
    ...EXPECTED.map(([path], index) => ({
      url: `http://img.test${path}`,
      caption: `caption ${index}`,
      license: `cc-by-${index}`,
    })),
    ...ODD_URLS.map(([url], index) => ({ url, caption: `odd ${index}`, license: "none" })),
  ];
}

async function writeJsonl(path: string, rows: readonly ListRow[]): Promise<void> {
  await writeFile(path, rows.map((row) => JSON.stringify(row)).join("\n"));
}

/** The rows of every `images/NNNNN.parquet` of a root, in shard and key order. */
/** A webdataset reader in a few lines: tar members grouped by key (the name up to its first dot). */
function readWebdataset(tar: Buffer): Map<string, Map<string, Buffer>> {
  const samples = new Map<string, Map<string, Buffer>>();
  let offset = 0;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const name = header.toString("utf8", 0, 100).replace(/\0.*$/s, "");
    const size = Number.parseInt(header.toString("latin1", 124, 136).replace(/\0.*$/s, ""), 8);
    const data = tar.subarray(offset + 512, offset + 512 + size);
    const dot = name.indexOf(".");
    const key = name.slice(0, dot);
    const files = samples.get(key) ?? new Map<string, Buffer>();
    files.set(name.slice(dot + 1), Buffer.from(data));
    samples.set(key, files);
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return samples;
}

describe("clipcrawl download on a URL list", () => {
  let root: string;
  let list: string;
  const requestsBefore = new Map<string, number>();

  before(async () => {
    root = await tempDir("download");
    list = join(root, "list.jsonl");
    await writeJsonl(list, failureModeRows());
    for (const [path, count] of server.requests) requestsBefore.set(path, count);
    const summary = await download({
      root,
      inputs: [list],
      config: testConfig({
        samplesPerShard: 8,
        captionCol: "caption",
        saveAdditionalColumns: ["license"],
      }),
    });
    assert.equal(summary.ok, true, JSON.stringify(summary.failedShards));
    assert.equal(summary.shards, 4);
  });

  const requestsOf = (path: string) =>
    (server.requests.get(path) ?? 0) - (requestsBefore.get(path) ?? 0);

  test("every failure mode ends as one row with its exact status and error", async () => {
    const rows = await imageRows(root);
    const byUrl = new Map(rows.map((row) => [String(row.url), row]));
    for (const [path, status, error] of EXPECTED) {
      const row = byUrl.get(`http://img.test${path}`);
      assert.ok(row !== undefined, `no row for ${path}`);
      assert.deepEqual([path, row.status, row.error_message], [path, status, error]);
    }
    for (const [url, status, error] of ODD_URLS) {
      const row = byUrl.get(url);
      assert.deepEqual([url, row?.status, row?.error_message], [url, status, error]);
    }
  });

  test("retries are bounded: a flaky URL is fetched twice, a dead one retries + 1 times", () => {
    assert.equal(requestsOf("/flaky.jpg"), 2);
    assert.equal(requestsOf("/always-500.jpg"), 2);
    assert.equal(requestsOf("/missing.jpg"), 1, "a 404 is not retried");
    assert.equal(requestsOf("/slow-drip.jpg"), 2, "a timeout is retried once");
    assert.equal(requestsOf("/redirect-loop.jpg") + requestsOf("/redirect-loop-2.jpg"), 6);
  });

  test("every input row is accounted for, in order, with deterministic keys", async () => {
    const rows = await imageRows(root);
    const input = failureModeRows();
    assert.equal(rows.length, input.length);
    rows.forEach((row, index) => {
      const shard = Math.floor(index / 8);
      assert.equal(row.key, `${String(shard).padStart(5, "0")}${index % 8}`);
      assert.equal(row.url, input[index]?.url);
      assert.equal(row.caption, input[index]?.caption);
      assert.equal(row.license, input[index]?.license);
    });
    const stats = JSON.parse(await readFile(join(root, layout.imageStats("00000")), "utf8"));
    assert.equal(stats.count, 8);
    assert.equal(
      stats.successes + stats.failed_to_download + stats.failed_to_resize + stats.opted_out,
      8,
    );
    assert.equal(stats.status_dict.success, stats.successes);
    for (const field of ["duration", "start_time", "end_time"]) {
      assert.equal(typeof stats[field], "number");
    }
    assert.equal(stats.config.samplesPerShard, 8);
  });

  test("successes are resized as img2dataset's border mode, with sizes, EXIF and hashes", async () => {
    const rows = await imageRows(root);
    const row = (path: string) =>
      rows.find((candidate) => candidate.url === `http://img.test${path}`);
    const photo = row("/photo.jpg");
    assert.deepEqual(
      [photo?.width, photo?.height, photo?.original_width, photo?.original_height],
      [256, 256, 640, 480],
    );
    const served = server.images.get("/photo.jpg") as Buffer;
    assert.equal(photo?.sha256, createHash("sha256").update(served).digest("hex"));
    assert.equal(photo?.md5, createHash("md5").update(served).digest("hex"));
    assert.equal(photo?.sha1, createHash("sha1").update(served).digest("hex"));
    assert.equal(row("/gzip.jpg")?.sha256, photo?.sha256, "hashes are of the decoded body");
    const rotated = row("/rotated.jpg");
    assert.deepEqual([rotated?.original_width, rotated?.original_height], [100, 200]);
    const exif = JSON.parse(String(rotated?.exif));
    assert.equal(exif["Image Make"], "ClipcrawlCam");
    assert.equal(exif["Image Orientation"], "6");
    assert.equal(photo?.exif, "{}");
    assert.equal(row("/missing.jpg")?.sha256, null);
  });

  test("the tar and the parquet agree, and the tar reads back as webdataset", async () => {
    const rows = await imageRows(root);
    let successes = 0;
    for (const shard of ["00000", "00001", "00002", "00003"]) {
      const samples = readWebdataset(await readFile(join(root, layout.imageTar(shard))));
      const shardRows = rows.filter((row) => String(row.key).startsWith(shard));
      const succeeded = shardRows.filter((row) => row.status === "success");
      assert.deepEqual(
        [...samples.keys()],
        succeeded.map((row) => row.key),
      );
      for (const row of succeeded) {
        const files = samples.get(String(row.key)) as Map<string, Buffer>;
        assert.deepEqual([...files.keys()], ["jpg", "json", "txt"]);
        assert.equal(files.get("txt")?.toString(), row.caption);
        const json = JSON.parse(String(files.get("json")));
        assert.equal(json.key, row.key);
        assert.equal(json.url, row.url);
        assert.equal(json.sha256, row.sha256);
        assert.equal(json.license, row.license);
        const image = await sharp(files.get("jpg")).metadata();
        assert.deepEqual(
          [image.format, image.width, image.height],
          ["jpeg", row.width, row.height],
        );
        assert.equal(image.channels, 3);
        successes++;
      }
    }
    assert.equal(successes, EXPECTED.filter(([, status]) => status === "success").length);
    // GNU tar reads it too, members in key order.
    const listing = execFileSync("tar", ["-tf", join(root, layout.imageTar("00000"))], {
      encoding: "utf8",
    });
    assert.match(listing, /^000000\.jpg\n000000\.json\n000000\.txt\n000001\.jpg\n/);
  });

  test("transparent pixels become white and the border is white", async () => {
    const rows = await imageRows(root);
    const alpha = rows.find((row) => row.url === "http://img.test/alpha.png");
    const samples = readWebdataset(await readFile(join(root, layout.imageTar("00000"))));
    const jpg = samples.get(String(alpha?.key))?.get("jpg") as Buffer;
    const { data } = await sharp(jpg).raw().toBuffer({ resolveWithObject: true });
    const [red, green, blue] = [
      data[128 * 256 * 3],
      data[128 * 256 * 3 + 1],
      data[128 * 256 * 3 + 2],
    ];
    for (const channel of [red, green, blue])
      assert.ok((channel ?? 0) > 245, `got ${red},${green},${blue}`);
  });

  test("the same input gives byte-identical shards, and a re-run fetches nothing", async () => {
    const again = await tempDir("download-again");
    await writeJsonl(join(again, "list.jsonl"), failureModeRows());
    const summary = await download({
      root: again,
      inputs: [join(again, "list.jsonl")],
      config: testConfig({
        samplesPerShard: 8,
        captionCol: "caption",
        saveAdditionalColumns: ["license"],
      }),
    });
    assert.equal(summary.ok, true);
    for (const shard of ["00000", "00001", "00002", "00003"]) {
      for (const path of [layout.imageTar(shard), layout.imageParquet(shard)]) {
        assert.ok(
          (await readFile(join(root, path))).equals(await readFile(join(again, path))),
          `${path} differs between two runs`,
        );
      }
    }
    const photoRequests = server.requests.get("/photo.jpg");
    const rerun = await download({
      root: again,
      inputs: [join(again, "list.jsonl")],
      config: testConfig({
        samplesPerShard: 8,
        captionCol: "caption",
        saveAdditionalColumns: ["license"],
      }),
    });
    assert.deepEqual([rerun.shardsSkipped, rerun.shardsWritten], [4, 0]);
    assert.equal(server.requests.get("/photo.jpg"), photoRequests);
  });

  test("a removed shard is redone with the same bytes and the others are skipped", async () => {
    const tarPath = join(root, layout.imageTar("00001"));
    const before = await readFile(tarPath);
    await rm(tarPath);
    const summary = await download({
      root,
      inputs: [list],
      config: testConfig({
        samplesPerShard: 8,
        captionCol: "caption",
        saveAdditionalColumns: ["license"],
      }),
    });
    assert.deepEqual([summary.shardsSkipped, summary.shardsWritten], [3, 1]);
    assert.ok((await readFile(tarPath)).equals(before));
  });

  test("a changed setting that changes the output redoes the shards", async () => {
    const summary = await download({
      root,
      inputs: [list],
      config: testConfig({
        samplesPerShard: 8,
        captionCol: "caption",
        saveAdditionalColumns: ["license"],
        imageSize: 64,
        resizeMode: "keep_ratio",
      }),
    });
    assert.deepEqual([summary.shardsSkipped, summary.shardsWritten], [0, 4]);
    const photo = (await imageRows(root)).find((row) => row.url === "http://img.test/photo.jpg");
    assert.deepEqual([photo?.width, photo?.height], [85, 64]);
  });
});

describe("safety and opt-outs", () => {
  test("private, loopback and link-local addresses are refused and never contacted", async () => {
    const root = await tempDir("download-private");
    const before = server.requests.get("/wide.jpg") ?? 0;
    await writeFile(
      join(root, "list.txt"),
      [
        `http://127.0.0.1:${server.port}/wide.jpg`,
        `http://localhost:${server.port}/wide.jpg`,
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/x.jpg",
        "http://10.1.2.3/x.jpg",
      ].join("\n"),
    );
    const summary = await download({
      root,
      inputs: [join(root, "list.txt")],
      config: testConfig({ allowPrivateNetwork: false, workers: 1 }),
    });
    assert.equal(summary.totals.failed_to_download, 5);
    const errors = (await imageRows(root)).map((row) => row.error_message);
    const hint = "--allow-private-network allows it";
    assert.deepEqual(errors, [
      `private address 127.0.0.1 refused (loopback; ${hint})`,
      `private address 127.0.0.1 (localhost) refused (loopback; ${hint})`,
      `private address 169.254.169.254 refused (linkLocal; ${hint})`,
      `private address ::1 refused (loopback; ${hint})`,
      `private address 10.1.2.3 refused (private; ${hint})`,
    ]);
    assert.equal(server.requests.get("/wide.jpg") ?? 0, before);
  });

  test("blocklisted URLs and domains are opted_out without a request", async () => {
    const root = await tempDir("download-blocklist");
    await writeFile(
      join(root, "blocklist.txt"),
      "# takedown requests\nother.test\nhttp://img.test/small.png\n",
    );
    await writeFile(
      join(root, "list.txt"),
      [
        "http://other.test/many/1.jpg",
        "http://img.test/small.png",
        "http://img.test/many/2.jpg",
      ].join("\n"),
    );
    const before = server.requests.get("/many/1.jpg") ?? 0;
    await download({
      root,
      inputs: [join(root, "list.txt")],
      config: testConfig({ blocklist: join(root, "blocklist.txt"), workers: 1 }),
    });
    const rows = await imageRows(root);
    assert.deepEqual(
      rows.map((row) => [row.status, row.error_message]),
      [
        ["opted_out", "blocklisted domain"],
        ["opted_out", "blocklisted url"],
        ["success", null],
      ],
    );
    assert.equal(server.requests.get("/many/1.jpg") ?? 0, before);
  });

  test("an image whose MD5, SHA-1 or SHA-256 is on the blocklist is fetched but not kept: opted_out", async () => {
    const root = await tempDir("download-digest-blocklist");
    const digest = (algorithm: string, path: string) =>
      createHash(algorithm)
        .update(server.images.get(path) as Buffer)
        .digest("hex");
    await writeFile(
      join(root, "blocklist.txt"),
      [
        "# Re-LAION takedown hashes",
        digest("md5", "/photo.jpg").toUpperCase(),
        digest("sha1", "/small.png"),
        digest("sha256", "/picture.webp"),
        "not/a domain",
      ].join("\n"),
    );
    await writeFile(
      join(root, "list.txt"),
      ["/photo.jpg", "/small.png", "/picture.webp", "/wide.jpg"]
        .map((path) => `http://img.test${path}`)
        .join("\n"),
    );
    const reporter = collectingReporter();
    await download({
      root,
      inputs: [join(root, "list.txt")],
      config: testConfig({ blocklist: join(root, "blocklist.txt"), workers: 1 }),
      reporter,
    });
    const rows = await imageRows(root);
    assert.deepEqual(
      rows.map((row) => [row.status, row.error_message, row.md5]),
      [
        ["opted_out", "blocklisted md5", null],
        ["opted_out", "blocklisted sha1", null],
        ["opted_out", "blocklisted sha256", null],
        ["success", null, digest("md5", "/wide.jpg")],
      ],
    );
    const tar = readWebdataset(await readFile(join(root, layout.imageTar("00000"))));
    assert.deepEqual([...tar.keys()], [rows[3]?.key], "nothing of a blocked image is kept");
    assert.deepEqual(reporter.warnings, [
      `${join(root, "blocklist.txt")}:5: not a domain, line ignored: "not/a domain"`,
    ]);
  });

  test("no more requests to one host are in flight than the per-host limit", async () => {
    const root = await tempDir("download-per-host");
    const urls = Array.from(
      { length: 24 },
      (_, index) => `http://img.test/many/${index}.jpg?delay=40`,
    );
    await writeFile(join(root, "list.txt"), urls.join("\n"));
    const server2 = await startImageServer();
    try {
      const summary = await download({
        root,
        inputs: [join(root, "list.txt")],
        config: testConfig({
          connectTo: [`img.test:80:127.0.0.1:${server2.port}`],
          perHostConcurrency: 3,
          concurrency: 50,
          workers: 1,
        }),
      });
      assert.equal(summary.totals.successes, 24);
      assert.equal(server2.maxInFlight(), 3);
    } finally {
      await server2.close();
    }
  });
});

describe("inputs and output formats", () => {
  const candidateColumns = [
    { name: "url", type: "VARCHAR" as const, value: (row: CandidateRow) => row.url },
    { name: "text", type: "VARCHAR" as const, value: (row: CandidateRow) => row.text },
    { name: "language", type: "VARCHAR" as const, value: () => "en" },
    { name: "page_url", type: "VARCHAR" as const, value: (row: CandidateRow) => row.pageUrl },
    { name: "record_offset", type: "BIGINT" as const, value: (row: CandidateRow) => row.offset },
  ];
  interface CandidateRow {
    url: string;
    text: string;
    pageUrl: string;
    offset: bigint;
  }
  const candidates = (shard: number, count: number): CandidateRow[] =>
    Array.from({ length: count }, (_, index) => ({
      url: `http://img.test/many/${(shard * 10 + index) % 40}.jpg`,
      text: `picture ${shard}-${index}`,
      pageUrl: `https://example.org/page-${shard}`,
      offset: BigInt(1000 * shard + index),
    }));

  async function writeCandidateShard(storage: LocalStorage, shard: number, count: number) {
    const name = String(shard).padStart(5, "0");
    await writeParquet(
      storage,
      layout.candidates(name),
      candidateColumns,
      candidates(shard, count),
    );
    await new ShardState(storage, "extract").markDone({
      shard: name,
      inputDigest: `extract-digest-${name}`,
      outputs: [],
      counts: { kept: count },
    });
  }

  test("each candidate shard is cut into download shards, which keep their provenance; new candidates add shards", async () => {
    const root = await tempDir("download-candidates");
    const storage = new LocalStorage(root);
    await writeCandidateShard(storage, 0, 7);
    await writeCandidateShard(storage, 1, 4);
    const first = await download({ root, config: testConfig({ samplesPerShard: 5 }) });
    assert.equal(first.source, "candidates");
    // 7 rows → 5 + 2, 4 rows → 4: a download shard never spans two candidate shards.
    assert.deepEqual([first.shards, first.totals.count, first.totals.successes], [3, 11, 11]);
    const rows = await imageRows(root);
    assert.deepEqual(
      rows.map((row) => row.caption),
      [...candidates(0, 7), ...candidates(1, 4)].map((row) => row.text),
    );
    assert.equal(rows[8]?.page_url, "https://example.org/page-1");
    assert.equal(rows[8]?.language, "en");
    assert.equal(rows[8]?.record_offset, 1001n);
    assert.equal(rows[8]?.key, "000021", "candidate shard 1's second row: download shard 2, row 1");
    const tar = readWebdataset(await readFile(join(root, layout.imageTar("00000"))));
    assert.equal(tar.get("000000")?.get("txt")?.toString(), "picture 0-0");

    // A new candidate shard (a new crawl) adds a download shard and changes none of the others.
    await writeCandidateShard(storage, 2, 3);
    const second = await download({ root, config: testConfig({ samplesPerShard: 5 }) });
    assert.deepEqual([second.shards, second.shardsSkipped, second.shardsWritten], [4, 3, 1]);
    assert.equal((await imageRows(root)).length, 14);
  });

  test("--output-format files writes a folder per shard; parquet holds the image bytes", async () => {
    const urls = [
      "http://img.test/photo.jpg",
      "http://img.test/missing.jpg",
      "http://img.test/small.png",
    ];
    const filesRoot = await tempDir("download-files");
    await writeFile(join(filesRoot, "list.txt"), urls.join("\n"));
    await download({
      root: filesRoot,
      inputs: [join(filesRoot, "list.txt")],
      config: testConfig({ outputFormat: "files", workers: 1 }),
    });
    assert.deepEqual(await readdir(join(filesRoot, layout.imageFilesFolder("00000"))), [
      "000000000.jpg",
      "000000000.json",
      "000000002.jpg",
      "000000002.json",
    ]);
    assert.equal((await imageRows(filesRoot)).length, 3);

    const parquetRoot = await tempDir("download-parquet");
    await writeFile(join(parquetRoot, "list.txt"), urls.join("\n"));
    await download({
      root: parquetRoot,
      inputs: [join(parquetRoot, "list.txt")],
      config: testConfig({ outputFormat: "parquet", workers: 1 }),
    });
    const rows = await imageRows(parquetRoot);
    assert.equal(rows[1]?.jpg, null);
    const blob = rows[0]?.jpg as unknown as { bytes: Uint8Array } | null;
    assert.ok(blob !== null && blob !== undefined);
    const image = await sharp(Buffer.from(blob.bytes)).metadata();
    assert.deepEqual([image.format, image.width], ["jpeg", 256]);
    assert.equal(existsSync(join(parquetRoot, layout.imageTar("00000"))), false);
  });

  test("the CLI downloads a CSV URL list with img2dataset's flags and prints a JSON summary", async () => {
    const root = await tempDir("download-cli");
    await writeFile(
      join(root, "list.csv"),
      'link,title,license\nhttp://img.test/photo.jpg,"A photo, with a comma",cc0\nhttp://img.test/missing.jpg,gone,cc0\n',
    );
    const result = await runCli(
      [
        "download",
        join(root, "list.csv"),
        "--root",
        root,
        "--input-format",
        "csv",
        "--url-col",
        "link",
        "--caption-col",
        "title",
        "--save-additional-columns",
        "license",
        "--allow-private-network",
        "--connect-to",
        `img.test:80:127.0.0.1:${server.port}`,
        "--retries",
        "0",
        "--json",
      ],
      { timeoutMs: 60_000 },
    );
    assert.equal(result.code, 0, result.stderr);
    const summary = JSON.parse(result.stdout);
    assert.deepEqual([summary.totals.successes, summary.totals.failed_to_download], [1, 1]);
    const rows = await imageRows(root);
    assert.deepEqual(
      rows.map((row) => [row.caption, row.license, row.status]),
      [
        ["A photo, with a comma", "cc0", "success"],
        ["gone", "cc0", "failed_to_download"],
      ],
    );
  });

  test("a missing column is one clear error before any download", async () => {
    const root = await tempDir("download-bad-column");
    await writeFile(join(root, "list.csv"), "link,title\nhttp://img.test/photo.jpg,x\n");
    await assert.rejects(
      download({ root, inputs: [join(root, "list.csv")], config: testConfig() }),
      /list\.csv: no column "url" \(columns: link, title\)/,
    );
  });
});
