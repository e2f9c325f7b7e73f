/**
 * A fuzz sweep over every stage's inputs, as serve-fuzz.test.ts does for the API: a seeded random
 * source (printed; FUZZ_SEED=N replays another) damages valid WAT files, image tars, images, HTTP
 * answers, Parquet files and .npy embeddings, including the hostile cases found by hand (gzip
 * bombs, pixel bombs, an SVG named .jpg, a tar header claiming 8 GB, LF-only WARC, Envelope
 * before Container), and feeds them to the stages' own code. For every case: no crash (no
 * exception out of a stage, no reason that is a programming error or more than one line), every
 * row the generator put in accounted for (kept, dropped with a reason, or failed with one; a
 * damaged file reported by name rather than giving fewer rows in silence), and peak memory under
 * PEAK_RSS_BOUND. extract, download and embed run as the CLI in a process of their own (a hang is
 * killed and counted as a crash, and the exit code must say whether every input was done);
 * filter, subset, stats and index run in this process, a few dozen times each. A table of counts
 * per input kind is printed at the end.
 */
import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { layout, shardName } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { readTarEntries } from "../src/io/tar-reader.js";
import { collectingReporter } from "../src/shard/reporter.js";
import type { DownloadSummary } from "../src/stages/download/download.js";
import { SAMPLE_STATUSES } from "../src/stages/download/samples.js";
import type { EmbedSummary } from "../src/stages/embed/embed.js";
import type { ExtractSummary } from "../src/stages/extract/extract.js";
import { filter } from "../src/stages/filter/filter.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { stats } from "../src/stages/stats/stats.js";
import { subset } from "../src/stages/subset/subset.js";
import { runProcess } from "./support/cli.js";
import { type GeneratedSample, writeDatasetRoot } from "./support/dataset-root.js";
import { damagedNpy, damagedParquet } from "./support/fuzz-files.js";
import { fuzzAnswer, type HttpAnswer, imageAnswer, rawHttpServer } from "./support/fuzz-http.js";
import {
  type FuzzImage,
  fuzzImage,
  hostileImages,
  imageSamples,
  tarHeaderLie,
  validImages,
  webdatasetTar,
  writeImageShards,
} from "./support/fuzz-images.js";
import {
  FuzzLedger,
  FuzzRandom,
  firstDamage,
  fuzzCases,
  fuzzSeed,
  mutateBytes,
  peakRssBytes,
  resetPeakRss,
  touchedSpans,
  unclearMessage,
} from "./support/fuzz-mutations.js";
import { WAT_MAX_RECORD_BYTES, watCase } from "./support/fuzz-wat.js";
import { tempDir } from "./support/temp.js";

/** Node, tsx, DuckDB, sharp, onnxruntime and the tiny model: about 500 MiB here, whatever the input. */
const PEAK_RSS_BOUND = 1.5 * 2 ** 30;
const SEED = fuzzSeed();
const ledger = new FuzzLedger();
let workDir: string;
let modelDir: string;
let valid: FuzzImage[];
let hostile: FuzzImage[];

before(async () => {
  workDir = await tempDir("stage-fuzz");
  modelDir = join(workDir, "tiny-clip");
  await generateTinyClipModel(modelDir);
  valid = await validImages();
  hostile = await hostileImages();
  await writeFile(join(workDir, "stats-script.js"), "/* charts */");
  console.log(`stage-inputs fuzz: seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
});

after(async () => {
  console.log(`stage-inputs fuzz, seed ${SEED}:\n${ledger.table()}`);
  await rm(workDir, { recursive: true, force: true });
});

/** Runs one kind's sweep with a fresh peak-memory reading, then asserts its counts. */
async function sweep(kind: string, body: (random: FuzzRandom) => Promise<void>): Promise<void> {
  resetPeakRss();
  // Each kind draws from its own stream, so that changing one kind's cases leaves the others'.
  await body(new FuzzRandom(SEED ^ [...kind].reduce((hash, c) => hash * 31 + c.charCodeAt(0), 7)));
  ledger.peak(kind, peakRssBytes());
  const counts = ledger.kinds.get(kind);
  const findings = ledger.findings.filter((line) => line.startsWith(`${kind}:`));
  assert.deepEqual(findings, [], `seed ${SEED}`);
  assert.ok(counts !== undefined && counts.cases > 0);
  assert.equal(counts.crashes, 0);
  assert.equal(counts.unaccountedRows, 0);
  assert.ok(
    counts.peakRssBytes < PEAK_RSS_BOUND,
    `${kind}: peak RSS ${Math.round(counts.peakRssBytes / 2 ** 20)} MiB, bound ${PEAK_RSS_BOUND / 2 ** 20} MiB`,
  );
}

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const MAX_RSS = fileURLToPath(new URL("./support/max-rss.ts", import.meta.url));
/** A stage run on a whole kind's inputs, through the CLI: past this it counts as a hang. */
const CLI_TIMEOUT_MS = fuzzCases(90_000);
/** One kind's whole sweep: past this, a stage hangs. */
const TEST_TIMEOUT_MS = 2 * CLI_TIMEOUT_MS;
let cliRuns = 0;

interface StageRun<Summary> {
  summary?: Summary;
  /** Why the run counts as a crash: a signal, a hang, no summary, an exit code that lies. */
  crash?: string;
  /** The warnings, one a line. */
  stderr: string;
  peakRss: number;
}

/**
 * A stage through the real CLI in a process of its own (`--json`): its summary, its warnings
 * and its peak memory. Killed past CLI_TIMEOUT_MS; any exit but 0 (every input done) or 1
 * (some inputs failed, as the summary must then say) is a crash.
 */
async function stageCli<Summary extends { ok: boolean }>(
  kind: string,
  args: string[],
): Promise<StageRun<Summary>> {
  const rssFile = join(workDir, `rss-${++cliRuns}`);
  const result = await runProcess(
    process.execPath,
    ["--import", "tsx", "--import", MAX_RSS, MAIN, ...args, "--json"],
    {
      env: { ...process.env, NO_COLOR: "1", CLIPCRAWL_MAX_RSS_FILE: rssFile },
      timeoutMs: CLI_TIMEOUT_MS,
    },
  );
  const peakRss = Number(await readFile(rssFile, "utf8").catch(() => "0"));
  ledger.peak(kind, peakRss);
  const run = { stderr: result.stderr, peakRss };
  if (result.signal !== null)
    return { ...run, crash: `killed by ${result.signal} (a hang past ${CLI_TIMEOUT_MS} ms?)` };
  let summary: Summary;
  try {
    summary = JSON.parse(result.stdout) as Summary;
  } catch {
    return { ...run, crash: `exit ${result.code}, no summary: ${result.stderr.slice(-600)}` };
  }
  if (result.code !== (summary.ok ? 0 : 1))
    return {
      ...run,
      crash: `exit ${result.code} for ok ${summary.ok}: ${result.stderr.slice(-600)}`,
    };
  return { ...run, summary };
}

const WAT_CASES = fuzzCases(60);

test("WAT files, damaged: extract reads what is whole, reports the rest by file, loses no pair in silence", {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  await sweep("WAT", async (random) => {
    const dir = join(workDir, "wat");
    await mkdir(dir);
    const cases = Array.from({ length: WAT_CASES }, (_, index) => watCase(index, random));
    const inputs: string[] = [];
    for (const item of cases) {
      const path = join(dir, item.fileName);
      await writeFile(path, item.bytes);
      inputs.push(path);
    }
    const root = join(dir, "root");
    const run = await stageCli<ExtractSummary>("WAT", [
      "extract",
      ...inputs,
      "--root",
      root,
      "--workers",
      "1",
      "--max-record-bytes",
      String(WAT_MAX_RECORD_BYTES),
      "--bloom-capacity",
      "20000",
    ]);
    const summary = run.summary;
    if (summary === undefined) {
      for (const item of cases) ledger.outcome("WAT", "crash", `${item.mutation}: ${run.crash}`);
      return;
    }
    const warnings = run.stderr.split("\n").filter((line) => line.trim() !== "");
    const storage = new LocalStorage(root);
    for (const [index, item] of cases.entries()) {
      const path = inputs[index] as string;
      const shard = shardName(index);
      const what = `${item.fileName} (${item.mutation})`;
      const failure = summary.failedShards.find((failed) => failed.input === path)?.error;
      const lines = [
        ...warnings.filter((line) => line.includes(item.fileName)),
        ...(failure === undefined ? [] : [failure]),
      ];
      const unclear = lines
        .map((line) => unclearMessage(line, [path]))
        .find((why) => why !== undefined);
      if (unclear !== undefined) {
        ledger.outcome("WAT", "crash", `${what}: ${unclear}`);
        continue;
      }
      const statsText = await storage.readText(layout.candidateStats(shard)).catch(() => undefined);
      const stats = statsText === undefined ? undefined : JSON.parse(statsText);
      const rows =
        stats === undefined
          ? []
          : await readParquet(storage, layout.candidates(shard), ["url", "text"]);
      const kept = new Set(rows.map((row) => `${row.url} ${row.text}`));
      const badRecords =
        stats === undefined
          ? 0
          : Object.values(stats.badRecords as Record<string, number>).reduce((a, b) => a + b, 0);
      const reported = failure !== undefined || badRecords > 0;
      if (stats !== undefined) {
        const dropped = Object.values(stats.dropped as Record<string, number>).reduce(
          (a, b) => a + b,
          0,
        );
        ledger.unaccounted(
          "WAT",
          Math.abs(stats.kept - rows.length) + Math.abs(stats.imageLinks - stats.kept - dropped),
          `${what}: ${rows.length} rows, kept ${stats.kept}, links ${stats.imageLinks}, dropped ${dropped}`,
        );
      } else if (failure === undefined) {
        ledger.unaccounted("WAT", item.pairs.flat().length, `${what}: no shard and no failure`);
      }
      item.pairs.forEach((pairs, record) => {
        if (item.touched.has(record)) return;
        const missing = pairs.filter(([url, text]) => !kept.has(`${url} ${text}`));
        if (missing.length === 0) return;
        if (item.before.has(record))
          ledger.unaccounted(
            "WAT",
            missing.length,
            `${what}: record ${record}, before the damage, lost`,
          );
        else if (!reported)
          ledger.unaccounted(
            "WAT",
            missing.length,
            `${what}: record ${record} lost with nothing reported`,
          );
      });
      ledger.outcome("WAT", reported ? "rejected" : "accepted", what);
    }
  });
});

interface EmbeddedShard {
  /** Why the whole shard failed, when it did. */
  failure?: string;
  embedded: string[];
  failed: Map<string, string>;
  damagedMembers: number;
}

/** embed over a root of image shards; what became of each shard's samples, or why it threw. */
async function embedRoot(
  kind: string,
  root: string,
  shards: number,
): Promise<EmbeddedShard[] | string> {
  const run = await stageCli<EmbedSummary>(kind, [
    "embed",
    "--root",
    root,
    "--model",
    modelDir,
    "--threads",
    "1",
    "--preprocess-workers",
    "1",
    "--batch-size",
    "16",
  ]);
  const summary = run.summary;
  if (summary === undefined) return `embed: ${run.crash}`;
  const storage = new LocalStorage(root);
  const outcomes: EmbeddedShard[] = [];
  for (let index = 0; index < shards; index++) {
    const shard = shardName(index);
    const failure = summary.failedShards.find((failed) => failed.shard === shard)?.error;
    if (failure !== undefined) {
      outcomes.push({ failure, embedded: [], failed: new Map(), damagedMembers: 0 });
      continue;
    }
    const metadata = await readParquet(storage, layout.embeddingMetadata(shard), ["key"]);
    const failures = await readParquet(storage, layout.embeddingFailures(shard), [
      "key",
      "error_message",
    ]);
    const stats = JSON.parse(await storage.readText(layout.embeddingStats(shard)));
    outcomes.push({
      embedded: metadata.map((row) => String(row.key)),
      failed: new Map(failures.map((row) => [String(row.key), String(row.error_message)])),
      damagedMembers: stats.damaged_tar_members,
    });
  }
  return outcomes;
}

/**
 * The rows of one shard the embed outcome does not account for: keys in neither parquet, in
 * both, twice, or not asked for; a failure whose reason is unclear is returned as `unclear`.
 */
function embedAccounting(
  expected: readonly string[],
  outcome: EmbeddedShard,
): { unaccounted: number; unclear?: string } {
  const seen = new Map<string, number>();
  for (const key of [...outcome.embedded, ...outcome.failed.keys()])
    seen.set(key, (seen.get(key) ?? 0) + 1);
  let unaccounted = 0;
  for (const key of expected) if (seen.get(key) !== 1) unaccounted++;
  for (const key of seen.keys()) if (!expected.includes(key)) unaccounted++;
  const unclear = [...outcome.failed.values()]
    .map((message) => unclearMessage(message))
    .find((why) => why !== undefined);
  return unclear === undefined ? { unaccounted } : { unaccounted, unclear };
}

const IMAGE_SHARDS = fuzzCases(8);
const IMAGES_PER_SHARD = 5;

test("images, damaged and hostile, in download's tars: embed embeds or refuses each with a reason", {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  await sweep("image (embed)", async (random) => {
    const shards = Array.from({ length: IMAGE_SHARDS }, (_, index) => {
      // Sample 0 is a valid image: the damaged ones beside it must not take it down.
      const images = [valid[index % valid.length] as FuzzImage];
      for (let image = 0; image < IMAGES_PER_SHARD; image++)
        images.push(fuzzImage(valid, hostile, random));
      const samples = imageSamples(index, images);
      return { samples, tar: webdatasetTar(samples).bytes };
    });
    const root = join(workDir, "images-root");
    await writeImageShards(root, shards);
    const outcomes = await embedRoot("image (embed)", root, shards.length);
    for (const [index, shard] of shards.entries()) {
      const outcome = typeof outcomes === "string" ? undefined : outcomes[index];
      if (outcome?.failure !== undefined || outcome === undefined) {
        for (const sample of shard.samples.slice(1))
          ledger.outcome(
            "image (embed)",
            "crash",
            `${sample.image.name}: ${outcome?.failure ?? outcomes}`,
          );
        continue;
      }
      const { unaccounted, unclear } = embedAccounting(
        shard.samples.map((sample) => sample.key),
        outcome,
      );
      ledger.unaccounted("image (embed)", unaccounted, `shard ${index}`);
      const control = shard.samples[0]?.key as string;
      if (!outcome.embedded.includes(control))
        ledger.unaccounted(
          "image (embed)",
          1,
          `the valid image of shard ${index} was not embedded: ${outcome.failed.get(control)}`,
        );
      for (const sample of shard.samples.slice(1)) {
        const reason = outcome.failed.get(sample.key);
        const why = reason === undefined ? undefined : unclearMessage(reason);
        if (why !== undefined)
          ledger.outcome("image (embed)", "crash", `${sample.image.name}: ${why}`);
        else
          ledger.outcome(
            "image (embed)",
            reason === undefined ? "accepted" : "rejected",
            sample.image.name,
          );
      }
      if (
        unclear !== undefined &&
        !shard.samples.some((s) => outcome.failed.get(s.key) === unclear)
      )
        ledger.outcome("image (embed)", "crash", unclear);
    }
  });
});

const TAR_CASES = fuzzCases(30);
const SAMPLES_PER_TAR = 6;

test("image tars, damaged: embed names the damage, embeds every whole sample, accounts for every row", {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  await sweep("tar", async (random) => {
    const cases = Array.from({ length: TAR_CASES }, (_, index) => {
      const samples = imageSamples(
        index,
        Array.from(
          { length: SAMPLES_PER_TAR },
          (_, sample) => valid[(index + sample) % valid.length] as FuzzImage,
        ),
      );
      const tar = webdatasetTar(samples);
      let bytes: Buffer;
      let mutation: string;
      let touched: Set<number>;
      let damageAt: number;
      if (random.chance(0.45)) {
        const target = 1 + random.int(SAMPLES_PER_TAR - 1);
        const member = random.int(3);
        const at = tar.headers[target]?.[member] as number;
        const other = samples[random.int(SAMPLES_PER_TAR)] as (typeof samples)[number];
        const lie = tarHeaderLie(tar.bytes, at, random, `${other.key}.${other.image.extension}`);
        bytes = lie.bytes;
        mutation = lie.name;
        touched = new Set([target]);
        damageAt = tar.spans[target]?.[0] as number;
      } else {
        const byteMutation = mutateBytes(tar.bytes, random);
        bytes = byteMutation.bytes;
        mutation = byteMutation.name;
        touched = touchedSpans(tar.spans, byteMutation);
        damageAt = firstDamage(byteMutation, tar.bytes.length);
      }
      return { samples, tar: bytes, spans: tar.spans, mutation, touched, damageAt };
    });
    const root = join(workDir, "tars-root");
    await writeImageShards(root, cases);
    const outcomes = await embedRoot("tar", root, cases.length);
    for (const [index, item] of cases.entries()) {
      const tarPath = join(root, layout.imageTar(shardName(index)));
      const what = `tar ${index} (${item.mutation})`;
      const outcome = typeof outcomes === "string" ? undefined : outcomes[index];
      if (outcome === undefined) {
        ledger.outcome("tar", "crash", `${what}: ${outcomes}`);
        continue;
      }
      if (outcome.failure !== undefined) {
        const why = unclearMessage(outcome.failure, [tarPath]);
        ledger.outcome("tar", why === undefined ? "rejected" : "crash", `${what}: ${why}`);
        continue;
      }
      const { unaccounted, unclear } = embedAccounting(
        item.samples.map((sample) => sample.key),
        outcome,
      );
      ledger.unaccounted("tar", unaccounted, what);
      if (unclear !== undefined) {
        ledger.outcome("tar", "crash", `${what}: ${unclear}`);
        continue;
      }
      const reported = outcome.damagedMembers > 0;
      item.samples.forEach((sample, position) => {
        if (item.touched.has(position) || outcome.embedded.includes(sample.key)) return;
        const reason = outcome.failed.get(sample.key);
        if ((item.spans[position]?.[1] as number) <= item.damageAt)
          ledger.unaccounted(
            "tar",
            1,
            `${what}: sample ${position}, before the damage, failed: ${reason}`,
          );
        else if (!reported)
          ledger.unaccounted(
            "tar",
            1,
            `${what}: sample ${position} failed with no damage reported: ${reason}`,
          );
      });
      ledger.outcome("tar", reported || outcome.failed.size > 0 ? "rejected" : "accepted", what);
    }
  });
});

const HTTP_CASES = fuzzCases(70);
const DOWNLOADED_IMAGES = fuzzCases(30);

test("HTTP answers, damaged, and damaged images over HTTP: download gives every URL one row and a reason", {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  const answers = new Map<string, HttpAnswer>();
  const kinds = new Map<string, string>();
  resetPeakRss();
  const server = await rawHttpServer(answers);
  try {
    const random = new FuzzRandom(SEED ^ 0x4854);
    answers.set("/valid.jpg", { name: "valid", bytes: imageAnswer(valid[0] as FuzzImage) });
    for (let index = 0; index < HTTP_CASES; index++) {
      const path = `/http-${index}.${random.pick(["jpg", "png", "webp", "gif"])}`;
      answers.set(path, fuzzAnswer(random.pick(valid), random, server.origin));
      kinds.set(path, "HTTP");
    }
    for (let index = 0; index < DOWNLOADED_IMAGES; index++) {
      const image = fuzzImage(valid, hostile, random);
      const path = `/image-${index}.${image.extension}`;
      answers.set(path, { name: image.name, bytes: imageAnswer(image) });
      kinds.set(path, "image (download)");
    }
    const urls = [...kinds.keys()].map((path) => `${server.origin}${path}`);
    const list = join(workDir, "urls.txt");
    await writeFile(list, `${urls.join("\n")}\n`);
    const root = join(workDir, "download-root");
    const run = await stageCli<DownloadSummary>("HTTP", [
      "download",
      list,
      "--root",
      root,
      "--allow-private-network",
      "--workers",
      "1",
      "--concurrency",
      "16",
      "--samples-per-shard",
      "40",
      "--timeout-seconds",
      "1",
      "--total-timeout-seconds",
      "4",
      "--retries",
      "0",
      "--max-body-bytes",
      String(4 * 1024 * 1024),
    ]);
    ledger.peak("image (download)", run.peakRss);
    const summary = run.summary;
    const thrown = run.crash;
    const storage = new LocalStorage(root);
    const rows = new Map<string, Record<string, unknown>[]>();
    const tarMembers = new Set<string>();
    for (const name of thrown === undefined ? await storage.list("images") : []) {
      if (/^\d{5}\.parquet$/.test(name)) {
        for (const row of await readParquet(storage, `images/${name}`, [
          "key",
          "url",
          "status",
          "error_message",
        ]))
          rows.set(String(row.url), [...(rows.get(String(row.url)) ?? []), row]);
      }
      if (name.endsWith(".tar")) {
        for await (const entry of readTarEntries(createReadStream(join(root, "images", name))))
          if (entry.kind === "file") tarMembers.add(entry.name);
      }
    }
    for (const [path, kind] of kinds) {
      const url = `${server.origin}${path}`;
      const what = `${path} (${answers.get(path)?.name})`;
      const found = rows.get(url) ?? [];
      const shardFailure = summary?.failedShards[0]?.error;
      if (thrown !== undefined || shardFailure !== undefined) {
        ledger.outcome(kind, "crash", `${what}: ${thrown ?? shardFailure}`);
        continue;
      }
      if (found.length !== 1) {
        ledger.unaccounted(kind, 1, `${what}: ${found.length} rows`);
        ledger.outcome(kind, "crash", `${what}: not one row`);
        continue;
      }
      const row = found[0] as Record<string, unknown>;
      const status = String(row.status);
      if (!(SAMPLE_STATUSES as readonly string[]).includes(status)) {
        ledger.outcome(kind, "crash", `${what}: status ${status}`);
        continue;
      }
      if (status === "success") {
        const stored = [...tarMembers].some(
          (member) => member.startsWith(`${row.key}.`) && !/\.(txt|json)$/.test(member),
        );
        if (!stored) ledger.unaccounted(kind, 1, `${what}: success with no image in the tar`);
        ledger.outcome(kind, "accepted", what);
        continue;
      }
      const why = unclearMessage(String(row.error_message ?? ""));
      ledger.outcome(
        kind,
        why === undefined ? "rejected" : "crash",
        `${what}: ${why ?? row.error_message}`,
      );
    }
  } finally {
    await server.close();
  }
  const peak = peakRssBytes();
  for (const kind of ["HTTP", "image (download)"]) {
    ledger.peak(kind, peak);
    const counts = ledger.kinds.get(kind);
    assert.deepEqual(
      ledger.findings.filter((line) => line.startsWith(`${kind}:`)),
      [],
      `seed ${SEED}`,
    );
    assert.equal(counts?.crashes, 0);
    assert.equal(counts?.unaccountedRows, 0);
    const highest = counts?.peakRssBytes ?? 0;
    assert.ok(highest < PEAK_RSS_BOUND, `peak RSS ${Math.round(highest / 2 ** 20)} MiB`);
  }
});

const DATASET_SHARDS = 4;
const PER_SHARD = 12;
const PARQUET_CASES = fuzzCases(14);
const NPY_CASES = fuzzCases(14);

/** Damages one file of a root for one stage run, and puts the original back after it. */
async function withDamagedFile<T>(
  path: string,
  damage: (original: Buffer) => Buffer,
  run: () => Promise<T>,
): Promise<T> {
  const original = await readFile(path);
  await writeFile(path, damage(original));
  await distinctModificationTime(path);
  try {
    return await run();
  } finally {
    await writeFile(path, original);
    await distinctModificationTime(path);
  }
}

let modifications = 0;

/**
 * DuckDB caches what it read of a file by path and modification time in whole seconds: a file
 * damaged and put back within one second would be read as the damaged one by this process's
 * DuckDB. Each write gets a time of its own (a CLI run, one process, cannot meet this).
 */
async function distinctModificationTime(path: string): Promise<void> {
  modifications++;
  const time = Math.floor(Date.now() / 1000) + 10 * modifications;
  await utimes(path, time, time);
}

function keptIn(samples: readonly GeneratedSample[], shard: string): number {
  return samples.filter((sample) => sample.shard === shard && sample.kept).length;
}

/** A thrown error or a reason: a clear line naming `path`, or a crash. */
function judgeMessage(kind: string, what: string, message: string, path: string): void {
  const why = unclearMessage(message, [path]);
  ledger.outcome(kind, why === undefined ? "rejected" : "crash", `${what}: ${why ?? message}`);
}

test("Parquet files, damaged: filter, subset, stats and index name the file and account for every row of the others", {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  await sweep("Parquet", async (random) => {
    const root = join(workDir, "parquet-root");
    const samples = await writeDatasetRoot(root, { shards: DATASET_SHARDS, perShard: PER_SHARD });
    const storage = new LocalStorage(root);
    const first = await filter({ root, reporter: collectingReporter() });
    assert.equal(first.ok, true);
    const allKept = samples.filter((sample) => sample.kept).length;
    for (let index = 0; index < PARQUET_CASES; index++) {
      const shard = shardName(random.int(DATASET_SHARDS));
      let damage = "";
      const damaging = (original: Buffer) => {
        const damaged = damagedParquet(original, random);
        damage = damaged.name;
        return damaged.bytes;
      };

      // filter reads the embeddings' metadata and failures.
      const input = random.chance(0.75)
        ? layout.embeddingMetadata(shard)
        : layout.embeddingFailures(shard);
      const inputPath = join(root, input);
      await withDamagedFile(inputPath, damaging, async () => {
        const what = `filter, ${input} (${damage})`;
        const inShard = samples.filter((sample) => sample.shard === shard);
        const expected = inShard.filter((sample) => sample.downloaded).length;
        try {
          const summary = await filter({ root, redo: [shard], reporter: collectingReporter() });
          const failure = summary.failedShards.find((failed) => failed.shard === shard)?.error;
          if (failure !== undefined) return judgeMessage("Parquet", what, failure, inputPath);
          const counts = JSON.parse(await storage.readText(layout.datasetStats(shard)));
          const rows = (await readParquet(storage, layout.datasetShard(shard), ["key"])).length;
          ledger.unaccounted(
            "Parquet",
            Math.abs(counts.samples - expected) +
              Math.abs(counts.kept + counts.dropped - counts.samples) +
              Math.abs(rows - counts.kept),
            `${what}: ${expected} pairs in, samples ${counts.samples}, kept ${counts.kept}, dropped ${counts.dropped}, rows ${rows}`,
          );
          ledger.outcome("Parquet", "accepted", what);
        } catch (error) {
          judgeMessage("Parquet", `${what}, thrown`, String(error), inputPath);
        }
      });
      // Put the shard back as it was for the readers below.
      await filter({ root, redo: [shard], reporter: collectingReporter() });

      // subset and stats read the dataset shards.
      const datasetPath = join(root, layout.datasetShard(shard));
      await withDamagedFile(datasetPath, damaging, async () => {
        const what = `subset, ${layout.datasetShard(shard)} (${damage})`;
        const left = (named: readonly { shard: string }[]) =>
          allKept - (named.some((item) => item.shard === shard) ? keptIn(samples, shard) : 0);
        try {
          const selected = await subset({
            root,
            output: join(workDir, "subset.csv"),
            reporter: collectingReporter(),
          });
          ledger.unaccounted(
            "Parquet",
            Math.abs(selected.rows - left(selected.damagedShards)),
            `${what}: ${selected.rows} rows`,
          );
          const named = selected.damagedShards.find((item) => item.shard === shard);
          if (named === undefined) ledger.outcome("Parquet", "accepted", what);
          else
            judgeMessage(
              "Parquet",
              what,
              `${named.path}: ${named.reason}`,
              layout.datasetShard(shard),
            );
        } catch (error) {
          judgeMessage("Parquet", `${what}, thrown`, String(error), layout.datasetShard(shard));
        }
        const statsWhat = `stats, ${layout.datasetShard(shard)} (${damage})`;
        try {
          const report = await stats({
            root,
            html: join(workDir, "stats.html"),
            script: join(workDir, "stats-script.js"),
          });
          const kept = report.report.funnel.kept;
          ledger.unaccounted(
            "Parquet",
            Math.abs(kept - left(report.report.damagedShards)),
            `${statsWhat}: kept ${kept}`,
          );
          const warning = report.warnings.find((line) => line.includes(layout.datasetShard(shard)));
          if (warning === undefined) ledger.outcome("Parquet", "accepted", statsWhat);
          else judgeMessage("Parquet", statsWhat, warning, layout.datasetShard(shard));
        } catch (error) {
          judgeMessage(
            "Parquet",
            `${statsWhat}, thrown`,
            String(error),
            layout.datasetShard(shard),
          );
        }
        const indexWhat = `index, ${layout.datasetShard(shard)} (${damage})`;
        try {
          const summary = await buildIndex({
            root,
            overwrite: true,
            reporter: collectingReporter(),
          });
          ledger.unaccounted(
            "Parquet",
            Math.abs(summary.rows - left(summary.failedShards)),
            `${indexWhat}: ${summary.rows} rows`,
          );
          const failure = summary.failedShards.find((failed) => failed.shard === shard)?.error;
          if (failure === undefined) ledger.outcome("Parquet", "accepted", indexWhat);
          else judgeMessage("Parquet", indexWhat, failure, layout.datasetShard(shard));
        } catch (error) {
          judgeMessage(
            "Parquet",
            `${indexWhat}, thrown`,
            String(error),
            layout.datasetShard(shard),
          );
        }
      });
    }
  });
});

test(".npy embeddings, damaged: index names the file and indexes every row of the other shards", {
  timeout: TEST_TIMEOUT_MS,
}, async () => {
  await sweep("npy", async (random) => {
    const root = join(workDir, "npy-root");
    const samples = await writeDatasetRoot(root, { shards: DATASET_SHARDS, perShard: PER_SHARD });
    const allKept = samples.filter((sample) => sample.kept).length;
    for (let index = 0; index < NPY_CASES; index++) {
      const shard = shardName(random.int(DATASET_SHARDS));
      const file = random.chance(0.5)
        ? layout.imageEmbeddings(shard)
        : layout.textEmbeddings(shard);
      const path = join(root, file);
      let damage = "";
      await withDamagedFile(
        path,
        (original) => {
          const damaged = damagedNpy(original, random);
          damage = damaged.name;
          return damaged.bytes;
        },
        async () => {
          const what = `index, ${file} (${damage})`;
          await rm(join(root, "index"), { recursive: true, force: true });
          await rm(join(root, "_state", "index"), { recursive: true, force: true });
          try {
            const summary = await buildIndex({
              root,
              overwrite: true,
              reporter: collectingReporter(),
            });
            const failure = summary.failedShards.find((failed) => failed.shard === shard)?.error;
            const expected = allKept - (failure === undefined ? 0 : keptIn(samples, shard));
            ledger.unaccounted(
              "npy",
              Math.abs(summary.rows - expected),
              `${what}: ${summary.rows} rows, ${expected} expected`,
            );
            if (failure === undefined) ledger.outcome("npy", "accepted", what);
            else judgeMessage("npy", what, failure, path);
          } catch (error) {
            judgeMessage("npy", `${what}, thrown`, String(error), path);
          }
        },
      );
    }
  });
});
