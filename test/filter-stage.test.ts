import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { parseBlocklist } from "../src/formats/blocklists.js";
import { HASH_LANES, hashPair } from "../src/formats/pair-hash.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import {
  type CellValue,
  duckdbConnection,
  type ParquetColumn,
  quoteLiteral,
  readParquet,
  writeParquet,
} from "../src/io/parquet.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { embed } from "../src/stages/embed/embed.js";
import { DROP_REASONS, type DropReason } from "../src/stages/filter/drop-rules.js";
import { type FilterShardStats, filter } from "../src/stages/filter/filter.js";
import { runCli } from "./support/cli.js";
import { writeImageShardFixture } from "./support/embed-fixture.js";
import { tempDir } from "./support/temp.js";

/** One row of `embeddings/metadata/metadata_NNNNN.parquet`, as embed writes it. */
interface MetadataRow {
  key: string;
  url: string;
  caption: string;
  similarity: number | null;
  width: number;
  height: number;
  original_width: number | null;
  original_height: number | null;
  sha256: string;
  md5: string;
  sha1: string;
  language: string;
  language_tier: string;
  page_url: string;
  source: string;
  scores?: Partial<Record<"punsafe" | "pwatermark" | "ptoxic" | "AESTHETIC_SCORE", number | null>>;
}

const LAION_COLUMNS = [
  ["URL", "VARCHAR"],
  ["TEXT", "VARCHAR"],
  ["WIDTH", "BIGINT"],
  ["HEIGHT", "BIGINT"],
  ["similarity", "DOUBLE"],
  ["punsafe", "DOUBLE"],
  ["pwatermark", "DOUBLE"],
  ["ptoxic", "DOUBLE"],
  ["AESTHETIC_SCORE", "DOUBLE"],
  ["LANGUAGE", "VARCHAR"],
  ["hash", "BIGINT"],
  ["key", "VARCHAR"],
  ["sha256", "VARCHAR"],
  ["page_url", "VARCHAR"],
  ["source", "VARCHAR"],
];

const SCORES = ["punsafe", "pwatermark", "ptoxic", "AESTHETIC_SCORE"] as const;

let workDir: string;

before(async () => {
  workDir = await tempDir("filter");
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

let rowCounter = 0;

/** An English pair that passes every default rule; `overrides` make it break one. */
function pair(overrides: Partial<MetadataRow> = {}): MetadataRow {
  const index = rowCounter++;
  return {
    key: String(index).padStart(9, "0"),
    url: `https://img.example/${index}.jpg`,
    caption: `a red circle number ${index}`,
    similarity: 0.35,
    width: 256,
    height: 256,
    original_width: 640,
    original_height: 480,
    sha256: index.toString(16).padStart(64, "a"),
    md5: index.toString(16).padStart(32, "b"),
    sha1: index.toString(16).padStart(40, "c"),
    language: "en",
    language_tier: "en",
    page_url: `https://pages.example/${index}`,
    source: `crawl.wat.gz:${index * 100}`,
    ...overrides,
  };
}

function metadataColumns(withScores: boolean): ParquetColumn<MetadataRow>[] {
  const columns: ParquetColumn<MetadataRow>[] = [
    { name: "key", type: "VARCHAR", value: (row) => row.key },
    { name: "url", type: "VARCHAR", value: (row) => row.url },
    { name: "caption", type: "VARCHAR", value: (row) => row.caption },
    { name: "similarity", type: "DOUBLE", value: (row) => row.similarity },
    { name: "caption_truncated", type: "BOOLEAN", value: () => false },
    { name: "status", type: "VARCHAR", value: () => "embedded" },
    { name: "error_message", type: "VARCHAR", value: () => null },
    { name: "width", type: "INTEGER", value: (row) => row.width },
    { name: "height", type: "INTEGER", value: (row) => row.height },
    { name: "original_width", type: "INTEGER", value: (row) => row.original_width },
    { name: "original_height", type: "INTEGER", value: (row) => row.original_height },
    { name: "sha256", type: "VARCHAR", value: (row) => row.sha256 },
    { name: "md5", type: "VARCHAR", value: (row) => row.md5 },
    { name: "sha1", type: "VARCHAR", value: (row) => row.sha1 },
    { name: "language", type: "VARCHAR", value: (row) => row.language },
    { name: "language_score", type: "FLOAT", value: () => 0.9 },
    { name: "language_tier", type: "VARCHAR", value: (row) => row.language_tier },
    { name: "page_url", type: "VARCHAR", value: (row) => row.page_url },
    { name: "source", type: "VARCHAR", value: (row) => row.source },
  ];
  if (withScores) {
    for (const score of SCORES) {
      columns.push({
        name: score,
        type: "DOUBLE",
        value: (row) => (row.scores?.[score] ?? null) as CellValue,
      });
    }
  }
  return columns;
}

async function writeMetadata(
  root: string,
  shard: string,
  rows: MetadataRow[],
  options: { failures?: number; scores?: boolean } = {},
): Promise<void> {
  const storage = new LocalStorage(root);
  await writeParquet(
    storage,
    layout.embeddingMetadata(shard),
    metadataColumns(options.scores === true),
    rows,
  );
  const failed = Array.from({ length: options.failures ?? 0 }, (_, index) => index);
  await writeParquet(
    storage,
    layout.embeddingFailures(shard),
    [
      { name: "key", type: "VARCHAR", value: (index) => `failed${index}` },
      { name: "url", type: "VARCHAR", value: (index) => `https://img.example/failed${index}.jpg` },
      { name: "status", type: "VARCHAR", value: () => "failed_to_embed" },
      { name: "error_message", type: "VARCHAR", value: () => "image does not decode: bad" },
    ],
    failed,
  );
}

async function datasetRows(root: string, shard: string) {
  return readParquet(new LocalStorage(root), layout.datasetShard(shard));
}

async function shardStats(root: string, shard: string): Promise<FilterShardStats> {
  return JSON.parse(await readFile(join(root, layout.datasetStats(shard)), "utf8"));
}

function reasons(counts: Partial<Record<DropReason, number>>): Record<DropReason, number> {
  return Object.fromEntries(DROP_REASONS.map((reason) => [reason, counts[reason] ?? 0])) as Record<
    DropReason,
    number
  >;
}

/** What extract's dedup hashes (url, text) to, as a signed int64: LAION's `hash`. */
function expectedHash(url: string, text: string): bigint {
  const lanes = new Uint32Array(HASH_LANES);
  hashPair(url, text, lanes, 0);
  const [high, low] = lanes as unknown as [number, number];
  return BigInt.asIntN(64, BigInt(high) * 2n ** 32n + BigInt(low));
}

test("filter keeps the pairs that pass every rule and counts each dropped pair under one reason", async () => {
  const root = join(workDir, "rules");
  const kept = [
    pair({ similarity: 0.28 }),
    pair({ language: "fr", language_tier: "multi", similarity: 0.27 }),
    pair({ language: "", language_tier: "nolang", similarity: 0.3 }),
    pair({ url: "https://xblocked.example/a.jpg" }),
    pair({ url: "https://img.example/allowed.jpg", caption: "five!" }),
    // At the limit is not above it.
    pair({ original_width: 800, original_height: 200 }),
  ];
  const blockedSha = pair({ similarity: 0.1 });
  const dropped: [MetadataRow, DropReason][] = [
    [pair({ similarity: 0.2799 }), "below_similarity_en"],
    [pair({ language: "de", language_tier: "multi", similarity: 0.259 }), "below_similarity_multi"],
    [pair({ language: "", language_tier: "nolang", similarity: 0.25 }), "below_similarity_nolang"],
    [pair({ similarity: null }), "below_similarity_en"],
    // The stored image is 256 px square; the original it came from is what counts.
    [pair({ original_width: 100, original_height: 300 }), "image_too_small"],
    [pair({ original_width: 900, original_height: 200 }), "aspect_ratio"],
    [pair({ caption: "abcd" }), "caption_too_short"],
    // Four characters, five UTF-16 units: characters are code points, as extract counts them.
    [pair({ caption: "ab😀d" }), "caption_too_short"],
    [pair({ caption: "x".repeat(201) }), "caption_too_long"],
    [pair({ url: "https://img.example/blocked.jpg" }), "url_blocklisted"],
    [pair({ url: "https://cdn.Blocked.example/b.jpg" }), "domain_blocklisted"],
    [pair({ url: "https://blocked.example/c.jpg" }), "domain_blocklisted"],
    // Blocklisted and below the threshold: counted once, as blocklisted.
    [blockedSha, "sha256_blocklisted"],
  ];
  const rows = [...dropped.map(([row]) => row), ...kept].sort((a, b) => (a.key < b.key ? -1 : 1));
  await writeMetadata(root, "00000", rows, { failures: 2 });
  await writeFile(
    join(workDir, "urls.txt"),
    "# takedown requests\nhttps://img.example/blocked.jpg\nnot a url\n",
  );
  await writeFile(join(workDir, "domains.txt"), "*.blocked.example\nhttps://oops.example/\n");
  await writeFile(
    join(workDir, "sha.txt"),
    `${blockedSha.sha256.toUpperCase()} # a takedown\nxyz\n`,
  );

  const reporter = collectingReporter();
  const summary = await filter({
    root,
    cwd: workDir,
    reporter,
    config: {
      minImageWidth: 128,
      minImageHeight: 128,
      maxAspectRatio: 4,
      maxCaptionLength: 200,
      urlBlocklist: "urls.txt",
      domainBlocklist: "domains.txt",
      sha256Blocklist: "sha.txt",
    },
  });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.shardsWritten, 1);

  const output = await datasetRows(root, "00000");
  assert.deepEqual(
    output.map((row) => row.URL),
    kept.map((row) => row.url),
  );
  const expected: Partial<Record<DropReason, number>> = { failed_to_embed: 2 };
  for (const [, reason] of dropped) expected[reason] = (expected[reason] ?? 0) + 1;
  const stats = await shardStats(root, "00000");
  assert.deepEqual(stats.dropped_by_reason, reasons(expected));
  assert.equal(stats.kept, kept.length);
  assert.equal(stats.dropped, dropped.length + 2);
  assert.equal(stats.samples, rows.length + 2);
  assert.deepEqual(stats.kept_by_tier, { en: 4, multi: 1, nolang: 1 });
  assert.deepEqual(stats.blocklists, { urls: 1, domains: 1, sha256: 1, md5: 0, sha1: 0 });
  assert.deepEqual(summary.totals.dropped_by_reason, stats.dropped_by_reason);
  assert.deepEqual(summary.blocklists, {
    urls: 1,
    domains: 1,
    sha256: 1,
    md5: 0,
    sha1: 0,
    badLines: 3,
  });

  // Each bad blocklist line is one warning naming its file and line; the rest of the list applied.
  assert.deepEqual(
    reporter.warnings.map((line) => /^(.*):(\d+): ([^,]+)/.exec(line)?.slice(1)),
    [
      [join(workDir, "urls.txt"), "3", "not a URL"],
      [join(workDir, "domains.txt"), "2", "not a domain (a URL? URLs go in urlBlocklist)"],
      [join(workDir, "sha.txt"), "2", "not a SHA-256 digest (64 hexadecimal characters)"],
    ],
  );
});

test("a pair whose image MD5 or SHA-1 is on a takedown list is dropped and counted under its reason", async () => {
  const root = join(workDir, "digests");
  const byMd5 = pair();
  const bySha1 = pair();
  const byGovernanceSha1 = pair();
  const kept = [pair(), pair()];
  await writeMetadata(root, "00000", [byMd5, bySha1, byGovernanceSha1, ...kept]);
  await writeFile(
    join(workDir, "md5.txt"),
    `# Re-LAION\n${byMd5.md5.toUpperCase()}\n${"f".repeat(40)}\n`,
  );
  await writeFile(join(workDir, "sha1.txt"), `${bySha1.sha1}\n`);
  // What `clipcrawl remove` keeps in the root counts too.
  await mkdir(join(root, "_governance/blocklists"), { recursive: true });
  await writeFile(join(root, layout.governanceBlocklist("sha1")), `${byGovernanceSha1.sha1}\n`);
  const reporter = collectingReporter();
  const summary = await filter({
    root,
    cwd: workDir,
    reporter,
    config: { md5Blocklist: "md5.txt", sha1Blocklist: "sha1.txt" },
  });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.deepEqual(
    (await datasetRows(root, "00000")).map((row) => row.key),
    kept.map((row) => row.key),
  );
  assert.deepEqual(
    (await shardStats(root, "00000")).dropped_by_reason,
    reasons({ md5_blocklisted: 1, sha1_blocklisted: 2 }),
  );
  assert.deepEqual(summary.blocklists, {
    urls: 0,
    domains: 0,
    sha256: 0,
    md5: 1,
    sha1: 2,
    badLines: 1,
  });
  assert.deepEqual(reporter.warnings, [
    `${join(workDir, "md5.txt")}:3: not an MD5 digest (32 hexadecimal characters), line ignored: "${"f".repeat(40)}"`,
  ]);
});

test("blocklist entries are normalised as the dataset writes its values; a bad line is reported, not applied", () => {
  const domains = parseBlocklist(
    "domain",
    "Example.COM\n*.cdn.example\n.dot.example.\nbücher.de  # IDN\na.example/x\nb.example:80\nhttps://c.example/\n",
    "domains.txt",
  );
  assert.deepEqual(
    [...domains.entries],
    ["example.com", "cdn.example", "dot.example", "xn--bcher-kva.de"],
  );
  assert.deepEqual(
    domains.badLines.map((bad) => [bad.line, bad.text]),
    [
      [5, "a.example/x"],
      [6, "b.example:80"],
      [7, "https://c.example/"],
    ],
  );
  const urls = parseBlocklist(
    "url",
    "HTTPS://Img.Example/a b.jpg\nftp://x.example/y\n",
    "urls.txt",
  );
  assert.deepEqual(
    [...urls.entries],
    ["https://img.example/a%20b.jpg", "HTTPS://Img.Example/a b.jpg"],
  );
  assert.deepEqual(
    urls.badLines.map((bad) => bad.reason),
    ["not an http(s) URL"],
  );
});

test("the dataset parquet has exactly LAION's columns, in order, typed, with original sizes and extract's pair hash", async () => {
  const root = join(workDir, "schema");
  const rows = [
    pair({ language: "fr", language_tier: "multi", similarity: 0.3 }),
    pair({ original_width: null, original_height: null }),
  ];
  await writeMetadata(root, "00000", rows);
  const summary = await filter({ root });
  assert.equal(summary.ok, true, JSON.stringify(summary));

  const connection = await duckdbConnection();
  try {
    const path = quoteLiteral(join(root, layout.datasetShard("00000")));
    const described = await connection.runAndReadAll(
      `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet(${path}))`,
    );
    assert.deepEqual(
      described.getRowObjects().map((row) => [row.column_name, row.column_type]),
      LAION_COLUMNS,
    );
  } finally {
    connection.closeSync();
  }
  const [first, second] = (await datasetRows(root, "00000")) as [
    Record<string, CellValue>,
    Record<string, CellValue>,
  ];
  const source = rows[0] as MetadataRow;
  assert.deepEqual(first, {
    URL: source.url,
    TEXT: source.caption,
    WIDTH: 640n,
    HEIGHT: 480n,
    similarity: 0.3,
    punsafe: null,
    pwatermark: null,
    ptoxic: null,
    AESTHETIC_SCORE: null,
    LANGUAGE: "fr",
    hash: expectedHash(source.url, source.caption),
    key: source.key,
    sha256: source.sha256,
    page_url: source.page_url,
    source: source.source,
  });
  // Without the original size, the stored image's is all there is.
  assert.deepEqual([second.WIDTH, second.HEIGHT], [256n, 256n]);
});

test("score thresholds are off by default; once set they drop pairs above them and pairs without a score", async () => {
  const root = join(workDir, "scores");
  const scored = (scores: MetadataRow["scores"]) => pair({ scores });
  const rows = [
    scored({ punsafe: 0.1, pwatermark: 0.2, ptoxic: 0.05, AESTHETIC_SCORE: 6.5 }),
    scored({ punsafe: 0.9, pwatermark: 0.2, ptoxic: 0.05, AESTHETIC_SCORE: 6.5 }),
    scored({ punsafe: 0.1, pwatermark: 0.95, ptoxic: 0.05, AESTHETIC_SCORE: 6.5 }),
    scored({ punsafe: 0.1, pwatermark: 0.2, ptoxic: 0.7, AESTHETIC_SCORE: 6.5 }),
    scored({ punsafe: 0.1, pwatermark: 0.2, ptoxic: 0.05, AESTHETIC_SCORE: 3 }),
    scored({ punsafe: null, pwatermark: 0.2, ptoxic: 0.05, AESTHETIC_SCORE: 6.5 }),
    scored({ punsafe: Number.NaN, pwatermark: 0.2, ptoxic: 0.05, AESTHETIC_SCORE: 6.5 }),
  ];
  await writeMetadata(root, "00000", rows, { scores: true });

  const tags = await filter({ root });
  assert.equal(tags.totals.kept, rows.length);
  const shipped = await datasetRows(root, "00000");
  assert.deepEqual(
    shipped.map((row) => [row.punsafe, row.pwatermark, row.ptoxic, row.AESTHETIC_SCORE]),
    rows.map((row) => SCORES.map((score) => row.scores?.[score] ?? null)),
  );

  const cut = await filter({
    root,
    config: { maxPunsafe: 0.5, maxPwatermark: 0.8, maxPtoxic: 0.5, minAestheticScore: 5 },
  });
  assert.equal(cut.shardsWritten, 1, "a new threshold redoes the shard");
  assert.deepEqual(
    (await datasetRows(root, "00000")).map((row) => row.key),
    [rows[0]?.key],
  );
  assert.deepEqual(
    (await shardStats(root, "00000")).dropped_by_reason,
    reasons({
      punsafe_too_high: 1,
      pwatermark_too_high: 1,
      ptoxic_too_high: 1,
      aesthetic_too_low: 1,
      score_missing: 2,
    }),
  );
});

test("metadata without score columns (no heads ran) gives NULL scores and score_missing when cut on", async () => {
  const root = join(workDir, "no-scores");
  await writeMetadata(root, "00000", [pair(), pair()]);
  const summary = await filter({ root, config: { maxPunsafe: 0.5 } });
  assert.equal(summary.totals.kept, 0);
  assert.equal(summary.totals.dropped_by_reason.score_missing, 2);
});

test("a finished shard is skipped; a changed threshold, blocklist or input redoes it", async () => {
  const root = join(workDir, "rerun");
  const rows = [pair({ similarity: 0.29 }), pair({ similarity: 0.31 }), pair({ similarity: 0.4 })];
  await writeMetadata(root, "00000", rows);
  await writeMetadata(root, "00001", [pair({ similarity: 0.5 })]);
  await writeFile(join(workDir, "rerun-domains.txt"), "# none yet\n");
  const config = { domainBlocklist: "rerun-domains.txt" };
  const first = await filter({ root, cwd: workDir, config });
  assert.deepEqual([first.shardsWritten, first.shardsSkipped, first.totals.kept], [2, 0, 4]);
  const bytes = await readFile(join(root, layout.datasetShard("00000")));

  const again = await filter({ root, cwd: workDir, config });
  assert.deepEqual([again.shardsWritten, again.shardsSkipped], [0, 2]);

  const stricter = await filter({
    root,
    cwd: workDir,
    config: { ...config, minSimilarityEn: 0.3 },
  });
  assert.deepEqual([stricter.shardsWritten, stricter.shardsSkipped], [2, 0]);
  assert.deepEqual(
    (await datasetRows(root, "00000")).map((row) => row.similarity),
    [0.31, 0.4],
  );

  // Back to the default threshold: redone, to the same bytes as the first time.
  const back = await filter({ root, cwd: workDir, config });
  assert.equal(back.shardsWritten, 2);
  assert.deepEqual(await readFile(join(root, layout.datasetShard("00000"))), bytes);

  await writeFile(join(workDir, "rerun-domains.txt"), "img.example\n");
  const blocked = await filter({ root, cwd: workDir, config });
  assert.equal(blocked.shardsWritten, 2, "an edited blocklist redoes every shard");
  assert.equal(blocked.totals.dropped_by_reason.domain_blocklisted, 4);

  await writeFile(join(workDir, "rerun-domains.txt"), "# none again\n");
  const unblocked = await filter({ root, cwd: workDir, config });
  assert.equal(unblocked.shardsWritten, 2);
  await writeMetadata(root, "00001", [pair(), pair(), pair()]);
  const onlyChanged = await filter({ root, cwd: workDir, config });
  assert.deepEqual([onlyChanged.shardsWritten, onlyChanged.shardsSkipped], [1, 1]);
  assert.equal((await shardStats(root, "00001")).kept, 3);
});

test("a corrupt metadata parquet fails its shard with one line naming the file; the others are written", async () => {
  const root = join(workDir, "corrupt");
  await writeMetadata(root, "00000", [pair()]);
  await writeMetadata(root, "00001", [pair()]);
  await writeMetadata(root, "00002", [pair(), pair()]);
  const broken = join(root, layout.embeddingMetadata("00001"));
  const bytes = await readFile(broken);
  await writeFile(broken, bytes.subarray(0, bytes.length - 20));

  const reporter = collectingReporter();
  const summary = await filter({ root, reporter });
  assert.equal(summary.ok, false);
  assert.equal(summary.shardsWritten, 2);
  assert.deepEqual(
    summary.failedShards.map((failed) => failed.shard),
    ["00001"],
  );
  const message = summary.failedShards[0]?.error ?? "";
  assert.ok(message.startsWith(`${broken}: cannot read the parquet file: `), message);
  assert.ok(!message.includes("\n"), message);
  assert.deepEqual(reporter.warnings, [`filter shard 00001 failed: ${message}`]);
  assert.equal(summary.totals.kept, 3);
  assert.equal(await new LocalStorage(root).exists(layout.datasetShard("00001")), false);
});

test("a file that is not embed's metadata, and a missing blocklist, are one clear line each", async () => {
  const root = join(workDir, "not-metadata");
  await writeParquet(
    new LocalStorage(root),
    layout.embeddingMetadata("00000"),
    [{ name: "url", type: "VARCHAR", value: (row: string) => row }],
    ["https://img.example/x.jpg"],
  );
  const summary = await filter({ root });
  assert.match(
    summary.failedShards[0]?.error ?? "",
    /metadata_00000\.parquet: no column key: not embed's metadata$/,
  );

  await assert.rejects(
    filter({ root, cwd: workDir, config: { sha256Blocklist: "missing.txt" } }),
    new RegExp(
      `^InputError: ${join(workDir, "missing.txt")}: cannot read the sha256 blocklist: does not exist$`,
    ),
  );
});

test("the CLI takes the thresholds as flags, prints a JSON summary and refuses a bad value", async () => {
  const root = join(workDir, "cli");
  await writeMetadata(root, "00000", [pair({ similarity: 0.3 }), pair({ similarity: 0.35 })]);
  const cli = await runCli(["filter", "--root", root, "--json", "--min-similarity-en", "0.32"]);
  assert.equal(cli.code, 0, cli.stderr);
  const summary = JSON.parse(cli.stdout);
  assert.equal(summary.totals.kept, 1);
  assert.equal(summary.totals.dropped_by_reason.below_similarity_en, 1);

  const bad = await runCli(["filter", "--root", root, "--min-similarity-en", "2"]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /filter\.minSimilarityEn: Too big: expected number to be <=1, got 2/);
});

test("download's images through embed and filter: matching pairs kept, mismatches and failures counted", async () => {
  const root = join(workDir, "pipeline");
  const modelDir = join(workDir, "model");
  await generateTinyClipModel(modelDir);
  const samples = await writeImageShardFixture(root);
  const embedded = await embed({ root, config: { model: modelDir, threads: 1 } });
  assert.equal(embedded.ok, true, JSON.stringify(embedded));

  const summary = await filter({ root });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  const storage = new LocalStorage(root);
  const metadata = await readParquet(storage, layout.embeddingMetadata("00000"));
  const passes = metadata.filter((row) => (row.similarity as number) >= 0.28);
  const output = await datasetRows(root, "00000");
  assert.deepEqual(
    output.map((row) => row.key),
    passes.map((row) => row.key),
  );
  const keys = (kind: string) =>
    samples.filter((sample) => sample.kind === kind).map((sample) => sample.key);
  for (const key of keys("match"))
    assert.ok(
      output.some((row) => row.key === key),
      key,
    );
  for (const key of keys("mismatch")) assert.ok(!output.some((row) => row.key === key), key);
  const images = await readParquet(storage, layout.imageParquet("00000"));
  for (const row of output) {
    const image = images.find((entry) => entry.key === row.key);
    assert.deepEqual(
      [row.URL, row.TEXT, row.sha256, row.WIDTH, row.LANGUAGE, row.page_url],
      [
        image?.url,
        image?.caption,
        image?.sha256,
        BigInt(image?.original_width as number),
        "en",
        image?.page_url,
      ],
    );
  }
  assert.deepEqual(
    summary.totals.dropped_by_reason,
    reasons({
      failed_to_embed: embedded.totals.failed_to_embed,
      below_similarity_en: metadata.length - passes.length,
    }),
  );
  assert.equal(embedded.totals.failed_to_embed, 2);
});
