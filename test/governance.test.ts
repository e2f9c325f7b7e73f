import assert from "node:assert/strict";
import { createReadStream, existsSync, readdirSync, readFileSync } from "node:fs";
import { cp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  renderShapeImage,
  type ShapeColour,
  type ShapeName,
} from "../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { readAuditLog } from "../src/governance/audit-log.js";
import { dropTarSamples } from "../src/governance/file-rewrites.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { decodeNpy } from "../src/io/npy.js";
import { readParquet } from "../src/io/parquet.js";
import { readTarEntries, readWebdatasetSamples } from "../src/io/tar-reader.js";
import { TarWriter } from "../src/io/tar-writer.js";
import { fromFloat16Bits } from "../src/models/float16.js";
import { compact, remove, showSample } from "../src/pipeline/governance-commands.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { ShardState } from "../src/shard/shard-state.js";
import { download } from "../src/stages/download/download.js";
import { embed } from "../src/stages/embed/embed.js";
import { filter } from "../src/stages/filter/filter.js";
import { runCliUntilKilled } from "./support/cli.js";
import { type GeneratedSample, writeDatasetRoot } from "./support/dataset-root.js";
import { tempDir } from "./support/temp.js";

/** The keys each kind of file holds, shard by shard: what a removal changes. */
async function keysByFile(root: string): Promise<Map<string, string[]>> {
  const storage = new LocalStorage(root);
  const files = new Map<string, string[]>();
  const parquetKeys = async (path: string, live = false) => {
    const rows = await readParquet(storage, path, live ? ["key", "status"] : ["key"]);
    return rows.filter((row) => !live || row.status !== "removed").map((row) => String(row.key));
  };
  for (const name of await storage.list("images")) {
    if (name.endsWith(".parquet"))
      files.set(`images/${name}`, await parquetKeys(`images/${name}`, true));
    if (name.endsWith(".tar"))
      files.set(`images/${name}`, await tarKeys(join(root, "images", name)));
  }
  for (const folder of ["embeddings/metadata", "embeddings/failures", "dataset"]) {
    for (const name of await storage.list(folder)) {
      if (name.endsWith(".parquet"))
        files.set(`${folder}/${name}`, await parquetKeys(`${folder}/${name}`));
    }
  }
  for (const folder of ["embeddings/img_emb", "embeddings/text_emb"]) {
    for (const name of await storage.list(folder)) {
      files.set(`${folder}/${name}`, npySampleNumbers(join(root, folder, name)).map(String));
    }
  }
  return files;
}

async function tarKeys(path: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const sample of readWebdatasetSamples(readTarEntries(createReadStream(path)))) {
    assert.ok(!("kind" in sample), `${path} has a damaged member`);
    keys.push(sample.key);
  }
  return keys;
}

/** The first value of each row: the generated sample's number. */
function npySampleNumbers(path: string): number[] {
  const array = decodeNpy(readFileSync(path));
  assert.equal(array.dtype, "<f2");
  const values = fromFloat16Bits(array.data as Uint16Array);
  const columns = array.shape[1] as number;
  return Array.from(
    { length: array.shape[0] as number },
    (_, row) => values[row * columns] as number,
  );
}

const keyOf = (samples: GeneratedSample[], n: number) => (samples[n] as GeneratedSample).key;

test("remove then compact takes the matching samples out of every file, keeps the embeddings aligned, and logs it", async () => {
  const work = await tempDir("remove");
  const root = join(work, "root");
  const samples = await writeDatasetRoot(root, { shards: 3, perShard: 30 });
  const removed = new Set(
    samples.filter((sample) => [4, 8, 12, 16, 20, 45].includes(sample.n) || sample.n % 4 === 3),
  );
  await writeFile(join(work, "urls.txt"), `# takedown\n${samples[4]?.url}\nnot a url\n`);
  await writeFile(join(work, "domains.txt"), "*.SITE-3.example\n");
  await writeFile(join(work, "sha256.txt"), `${samples[8]?.sha256.toUpperCase()}\nabc\n`);
  await writeFile(join(work, "md5.txt"), `${samples[12]?.md5}\nzz\n`);
  await writeFile(join(work, "sha1.txt"), `${samples[16]?.sha1}\n`);
  await writeFile(join(work, "keys.txt"), `${keyOf(samples, 20)}\n${keyOf(samples, 45)}\n`);
  const reporter = collectingReporter();
  const summary = await remove({
    root,
    lists: {
      urls: "urls.txt",
      domains: "domains.txt",
      sha256: "sha256.txt",
      md5: "md5.txt",
      sha1: "sha1.txt",
      keys: "keys.txt",
    },
    reason: "test takedown",
    cwd: work,
    reporter,
  });
  const compacted = await compact({ root });

  assert.equal(summary.badLines, 3);
  assert.deepEqual(
    reporter.warnings.map((line) => line.replace(`${work}/`, "")),
    [
      'urls.txt:3: not a URL, line ignored: "not a url"',
      'sha256.txt:2: not a SHA-256 digest (64 hexadecimal characters), line ignored: "abc"',
      'md5.txt:2: not an MD5 digest (32 hexadecimal characters), line ignored: "zz"',
    ],
  );
  const [removal] = summary.removals;
  assert.equal(removal?.samples, removed.size);
  assert.deepEqual(removal?.keys, [...removed].map((sample) => sample.key).sort());

  // Every file holds exactly the samples it held, less the removed ones.
  const expect = (holds: (sample: GeneratedSample) => boolean, shard: string) =>
    samples
      .filter((sample) => sample.shard === shard && holds(sample) && !removed.has(sample))
      .map((sample) => sample.key);
  const numbers = (keys: string[]) =>
    keys.map((key) => String(samples.find((sample) => sample.key === key)?.n));
  const files = await keysByFile(root);
  for (const shard of ["00000", "00001", "00002"]) {
    assert.deepEqual(
      files.get(`images/${shard}.tar`),
      expect((s) => s.downloaded, shard),
    );
    assert.deepEqual(
      files.get(`images/${shard}.parquet`),
      expect(() => true, shard),
    );
    const embedded = expect((s) => s.embedded, shard);
    assert.deepEqual(files.get(`embeddings/metadata/metadata_${shard}.parquet`), embedded);
    assert.deepEqual(files.get(`embeddings/img_emb/img_emb_${shard}.npy`), numbers(embedded));
    assert.deepEqual(files.get(`embeddings/text_emb/text_emb_${shard}.npy`), numbers(embedded));
    assert.deepEqual(
      files.get(`embeddings/failures/failures_${shard}.parquet`),
      expect((s) => s.downloaded && !s.embedded, shard),
    );
    assert.deepEqual(
      files.get(`dataset/${shard}.parquet`),
      expect((s) => s.kept, shard),
    );
  }

  // Download's rows stay, as tombstones with nothing of the sample left.
  const storage = new LocalStorage(root);
  const imageRows = await readParquet(storage, layout.imageParquet("00000"));
  assert.equal(imageRows.length, 30);
  const tombstone = imageRows.find((row) => row.key === keyOf(samples, 4));
  assert.equal(tombstone?.status, "removed");
  assert.equal(tombstone?.error_message, `removal ${removal?.removal}`);
  assert.deepEqual(compacted.applied, [removal?.removal]);
  for (const column of ["url", "caption", "sha256", "md5", "page_url", "width"]) {
    assert.equal(tombstone?.[column], null, `${column} is gone`);
  }
  const kept = imageRows.find((row) => row.key === keyOf(samples, 0));
  assert.equal(kept?.url, samples[0]?.url);
  assert.equal(kept?.status, "success");

  // The audit log: the removal (what, when, why), then the compaction (how many per file).
  const audit = await readAuditLog(storage);
  assert.deepEqual(
    audit.map((entry) => entry.kind),
    ["removal", "compaction"],
  );
  assert.equal(audit[0]?.reason, "test takedown");
  assert.deepEqual(audit[0]?.request.md5, { file: join(work, "md5.txt"), entries: 1, badLines: 1 });
  assert.deepEqual(audit[1]?.applied, [removal?.removal]);
  const datasetChange = audit[1]?.files.find((file) => file.path === "dataset/00000.parquet");
  const keptRemoved = [...removed].filter((s) => s.shard === "00000" && s.kept).length;
  assert.equal(datasetChange?.removed, keptRemoved);
  assert.ok((datasetChange?.bytesAfter ?? 0) > 0);

  // The lists keep the entries asked for and the removed samples' URLs and digests.
  const urls = await storage.readText(layout.governanceBlocklist("urls"));
  for (const sample of removed) assert.ok(urls.includes(`\n${sample.url}\n`), sample.url);
  const sha256 = await storage.readText(layout.governanceBlocklist("sha256"));
  assert.ok(sha256.includes(samples[8]?.sha256 as string), "the digest asked for, lower-cased");
  assert.ok(sha256.includes(samples[12]?.sha256 as string), "the digest of a sample found by MD5");
  assert.ok(
    (await storage.readText(layout.governanceBlocklist("domains"))).includes("\nsite-3.example\n"),
  );

  // Done markers name the new sizes: no stage takes a rewritten output for damaged.
  for (const stage of ["download", "embed", "filter"]) {
    const state = new ShardState(storage, stage);
    for (const marker of await state.list()) {
      assert.ok(await state.findDone(marker.shard, marker.inputDigest), `${stage} ${marker.shard}`);
    }
  }
  assert.deepEqual(await readdir(join(root, "_governance/pending")), []);
  assert.deepEqual(await readdir(join(root, "_governance/tombstones")), [], "compact cleared them");

  // The same request again finds nothing left; the files stay as they are.
  const before = await keysByFile(root);
  const again = await remove({ root, lists: { keys: "keys.txt" }, cwd: work, compact: true });
  assert.equal(again.removals[0]?.samples, 0);
  assert.deepEqual(await keysByFile(root), before);

  // show: the sample's history ends with its removal.
  const history = await showSample({ root, key: keyOf(samples, 4) });
  assert.equal(history.download?.values.status, "removed");
  assert.equal(history.dataset, null);
  assert.equal(
    history.candidate?.values.url,
    samples[4]?.url,
    "the candidate row is the crawl's record",
  );
  assert.deepEqual(
    history.removals.map((entry) => [entry.removal, entry.reason]),
    [[removal?.removal, "test takedown"]],
  );
  await rm(work, { recursive: true, force: true });
});

test("a list with no valid entry removes nothing and says so; a root is required", async () => {
  const work = await tempDir("remove-empty");
  const root = join(work, "root");
  await writeDatasetRoot(root, { shards: 1, perShard: 5 });
  await writeFile(join(work, "bad.txt"), "ftp://x.example/a.jpg\n");
  await assert.rejects(
    remove({ root, lists: { urls: "bad.txt" }, cwd: work }),
    /hold no valid entry \(1 bad line\): nothing removed/,
  );
  await assert.rejects(
    remove({ root, lists: { urls: "missing.txt" }, cwd: work }),
    /does not exist/,
  );
  await assert.rejects(
    remove({ root: work, lists: { urls: "bad.txt" }, cwd: work }),
    /not a clipcrawl dataset root/,
  );
  await assert.rejects(remove({ root }), /nothing to remove/);
  assert.equal(existsSync(join(root, "_governance/audit.jsonl")), false);
  await rm(work, { recursive: true, force: true });
});

test("show tells a sample's way: candidate row with its provenance, download, embed, dataset", async () => {
  const work = await tempDir("show");
  const root = join(work, "root");
  const samples = await writeDatasetRoot(root, { shards: 2, perShard: 10 });
  const kept = samples.find((sample) => sample.kept && sample.shard === "00001") as GeneratedSample;
  const history = await showSample({ root, key: kept.key });
  assert.equal(history.found, true);
  assert.equal(history.candidate?.file, "candidates/00001.parquet");
  assert.equal(history.candidate?.values.record_offset, 1000 * kept.n);
  assert.equal(history.candidate?.values.crawl_date, "2024-03-01T12:00:00Z");
  assert.equal(history.download?.values.sha1, kept.sha1);
  assert.equal(history.embedding?.values.status, "embedded");
  assert.equal(history.dataset?.values.URL, kept.url);
  assert.equal(history.dropReason, null);
  const failed = samples.find((sample) => sample.downloaded && !sample.embedded) as GeneratedSample;
  assert.equal((await showSample({ root, key: failed.key })).dropReason, "failed_to_embed");
  // This root's filter left no stats: the reason cannot be told, and show says why.
  const dropped = samples.find((sample) => sample.embedded && !sample.kept) as GeneratedSample;
  const unjudged = await showSample({ root, key: dropped.key });
  assert.equal(unjudged.dropReason, null);
  assert.deepEqual(unjudged.notes, [`filter has not run on shard ${dropped.shard}`]);
  assert.equal((await showSample({ root, key: "999999999" })).found, false);
  await rm(work, { recursive: true, force: true });
});

test("a tar rewrite is the tar download would have written without the removed samples; damaged members are counted", async () => {
  const work = await tempDir("remove-tar");
  const storage = new LocalStorage(work);
  const members = (keys: string[]) =>
    keys.flatMap((key) => [
      { name: `${key}.jpg`, data: Buffer.alloc(700 + Number(key), 7) },
      { name: `${key}.json`, data: Buffer.from(JSON.stringify({ key })) },
      { name: `${key}.txt`, data: Buffer.from(`caption ${key}`) },
    ]);
  const writeTar = (path: string, entries: { name: string; data: Buffer }[]) =>
    storage.writeAtomicWith(path, async (localPath) => {
      const file = await open(localPath, "w");
      const tar = new TarWriter(file);
      for (const entry of entries) await tar.add(entry.name, entry.data);
      await tar.finish();
      await file.close();
    });
  const keys = ["000", "001", "002", "003", "004"];
  await writeTar("a.tar", members(keys));
  await writeTar("expected.tar", members(["000", "002", "004"]));
  const outcome = await dropTarSamples(storage, "a.tar", ["001", "003", "999"]);
  assert.equal(outcome.removed, 2);
  assert.deepEqual(await readFile(join(work, "a.tar")), await readFile(join(work, "expected.tar")));
  assert.equal((await dropTarSamples(storage, "a.tar", ["001"])).removed, 0, "done already");

  // A damaged header: read member by member, the damaged one reported.
  await writeTar("b.tar", members(keys));
  const bytes = await readFile(join(work, "b.tar"));
  const at = bytes.indexOf(Buffer.from("002.json\u0000"));
  bytes[at] = (bytes[at] as number) ^ 1;
  await writeFile(join(work, "b.tar"), bytes);
  const damaged = await dropTarSamples(storage, "b.tar", ["000"]);
  assert.deepEqual([damaged.removed, damaged.damaged], [1, 1]);
  assert.deepEqual(await tarKeys(join(work, "b.tar")), ["001", "002", "003", "004"]);
  await rm(work, { recursive: true, force: true });
});

function progressLines(root: string): number {
  const folder = join(root, "_governance/compaction");
  if (!existsSync(folder)) return 0;
  let lines = 0;
  for (const name of readdirSyncSafe(folder)) {
    if (name.endsWith(".progress.jsonl")) {
      lines += readFileSync(join(folder, name), "utf8").split("\n").filter(Boolean).length;
    }
  }
  return lines;
}

function readdirSyncSafe(folder: string): string[] {
  try {
    return readdirSync(folder);
  } catch {
    return [];
  }
}

const JOURNAL = /^\d{8}T\d{6}Z-[0-9a-f]{6}\.json$/;

test("remove --compact killed at any point leaves every file fully old or fully new, and the next compact completes it", async () => {
  const work = await tempDir("remove-kill");
  const pristine = join(work, "pristine");
  const samples = await writeDatasetRoot(pristine, { shards: 6, perShard: 30 });
  await writeFile(join(work, "domains.txt"), "site-1.example\n");
  await writeFile(
    join(work, "keys.txt"),
    samples
      .filter((sample) => sample.n % 9 === 0)
      .map((sample) => sample.key)
      .join("\n"),
  );
  const args = (root: string) => [
    ...["--root", root, "--compact"],
    ...["--domains", join(work, "domains.txt"), "--keys", join(work, "keys.txt")],
  ];
  const original = await keysByFile(pristine);
  const reference = join(work, "reference");
  await cp(pristine, reference, { recursive: true, preserveTimestamps: true });
  await remove({
    root: reference,
    lists: { domains: "domains.txt", keys: "keys.txt" },
    cwd: work,
    compact: true,
  });
  const final = await keysByFile(reference);
  const rewritten = [...final.keys()].filter(
    (path) => JSON.stringify(final.get(path)) !== JSON.stringify(original.get(path)),
  );
  assert.ok(rewritten.length >= 30, `${rewritten.length} files change`);

  const killPoints: [string, (root: string) => boolean][] = [
    [
      "once the journal is written",
      (root) =>
        readdirSyncSafe(join(root, "_governance/pending")).some((name) => JOURNAL.test(name)),
    ],
    ["after the first file", (root) => progressLines(root) >= 1],
    ["half-way through the files", (root) => progressLines(root) >= rewritten.length / 2],
  ];
  let interrupted = 0;
  for (const [name, reached] of killPoints) {
    const root = join(work, name.replaceAll(" ", "-"));
    await cp(pristine, root, { recursive: true, preserveTimestamps: true });
    const outcome = await runCliUntilKilled(["remove", ...args(root)], () => reached(root), 2);
    if (outcome === "SIGKILL") interrupted++;

    // Each file is whole: readable, with the samples of before or of after.
    const state = await keysByFile(root);
    for (const [path, keys] of state) {
      const json = JSON.stringify(keys);
      assert.ok(
        json === JSON.stringify(original.get(path)) || json === JSON.stringify(final.get(path)),
        `${name}: ${path} is neither the old file nor the new one`,
      );
    }

    if (outcome !== "SIGKILL") {
      // The run ended before the point was seen: it must have finished the job.
      assert.equal(outcome, "exit 0", name);
      assert.deepEqual(state, final, `${name}: a finished run`);
      continue;
    }
    await compact({ root });
    assert.deepEqual(await keysByFile(root), final, `${name} (${outcome}), then resumed`);
    const audit = await readAuditLog(new LocalStorage(root));
    const removals = audit.filter((entry) => entry.kind === "removal");
    assert.equal(removals.length, 1, `${name}: one removal line`);
    assert.equal(
      removals[0]?.samples,
      (await readAuditLog(new LocalStorage(reference)))[0]?.samples,
    );
    assert.deepEqual(await readdir(join(root, "_governance/pending")), []);
    assert.deepEqual(await readdir(join(root, "_governance/compaction")), []);
    assert.deepEqual(readdirSyncSafe(join(root, "_governance/tombstones")), []);
  }
  assert.ok(interrupted >= 2, `${interrupted} of the runs were killed mid-way`);
  await rm(work, { recursive: true, force: true });
});

// A web of coloured-shape images; /mirror/… serves the same bytes as /img/… under another URL.
const requests = new Map<string, number>();
const server = createServer((request, response) => {
  const path = request.url ?? "";
  requests.set(path, (requests.get(path) ?? 0) + 1);
  const match = /^\/(img|mirror)\/(\w+)-(\w+)-(\d+)\.jpg$/.exec(path);
  if (match === null) {
    response.writeHead(404).end();
    return;
  }
  const [, , colour, shape, index] = match;
  void renderShapeImage(colour as ShapeColour, shape as ShapeName, Number(index)).then((image) => {
    response.writeHead(200, { "content-type": "image/jpeg" }).end(image);
  });
});
before(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)));
after(() => new Promise((resolve) => server.close(resolve)));

test("removed content does not come back: download skips the removed links, filter drops copies, --reapply takes them out", async () => {
  const work = await tempDir("remove-stages");
  const root = join(work, "root");
  const model = join(work, "model");
  await generateTinyClipModel(model);
  const port = (server.address() as AddressInfo).port;
  const base = "http://shapes.test";
  const rows = [
    [`${base}/img/red-circle-1.jpg`, "a red circle"],
    [`${base}/img/blue-square-2.jpg`, "a blue square"],
    [`${base}/img/green-star-3.jpg`, "a green star"],
    [`${base}/mirror/red-circle-1.jpg`, "a red circle again"],
  ];
  await writeFile(
    join(work, "list.csv"),
    `url,caption\n${rows.map((row) => row.join(",")).join("\n")}\n`,
  );
  const downloadConfig = {
    captionCol: "caption",
    allowPrivateNetwork: true,
    connectTo: [`shapes.test:80:127.0.0.1:${port}`],
    retries: 0,
    workers: 1,
    imageSize: 64,
  };
  const stages = async () => {
    const downloaded = await download({
      root,
      inputs: [join(work, "list.csv")],
      config: downloadConfig,
    });
    const embedded = await embed({ root, config: { model, threads: 1 } });
    const filtered = await filter({
      root,
      config: { minSimilarityEn: -1, minSimilarityMulti: -1, minSimilarityNolang: -1 },
    });
    return { downloaded, embedded, filtered };
  };
  const datasetUrls = async () =>
    (await readParquet(new LocalStorage(root), layout.datasetShard("00000"), ["URL"])).map(
      (row) => row.URL,
    );
  const first = await stages();
  assert.equal(first.downloaded.totals.successes, 4);
  assert.equal((await datasetUrls()).length, 4);

  await writeFile(join(work, "takedown.txt"), `${rows[0]?.[0]}\n`);
  const summary = await remove({
    root,
    lists: { urls: "takedown.txt" },
    cwd: work,
    reason: "owner request",
    compact: true,
  });
  assert.equal(summary.removals[0]?.samples, 1);
  assert.deepEqual(await datasetUrls(), [rows[1]?.[0], rows[2]?.[0], rows[3]?.[0]]);

  // A re-run: the finished download shard is not fetched again; embed and filter redo the
  // shard from the rewritten files, and filter drops the mirror: same image bytes.
  const fetchedBefore = [...requests.values()].reduce((sum, count) => sum + count, 0);
  const second = await stages();
  assert.equal(second.downloaded.shardsSkipped, 1);
  assert.equal(
    [...requests.values()].reduce((sum, count) => sum + count, 0),
    fetchedBefore,
  );
  assert.equal(second.embedded.shardsWritten, 1);
  assert.equal(second.filtered.totals.dropped_by_reason.sha256_blocklisted, 1);
  assert.deepEqual(await datasetUrls(), [rows[1]?.[0], rows[2]?.[0]]);
  // show finds the mirror's reason again with filter's own query and the governance lists.
  const mirror = await showSample({ root, key: "000000003" });
  assert.equal(mirror.embedding?.values.url, rows[3]?.[0]);
  assert.equal(mirror.dropReason, "sha256_blocklisted");

  // --reapply takes the mirror's image out of the tars and embeddings too.
  const reapplied = await remove({ root, reapply: true, compact: true });
  assert.equal(reapplied.removals[0]?.samples, 1);
  assert.deepEqual(await tarKeys(join(root, layout.imageTar("00000"))), ["000000001", "000000002"]);

  // Downloading everything again: the removed links are not fetched, their rows say why.
  const fetched = {
    red: requests.get("/img/red-circle-1.jpg"),
    mirror: requests.get("/mirror/red-circle-1.jpg"),
  };
  const third = await download({
    root,
    inputs: [join(work, "list.csv")],
    config: downloadConfig,
    overwrite: true,
  });
  assert.equal(third.totals.successes, 2);
  assert.deepEqual(
    {
      red: requests.get("/img/red-circle-1.jpg"),
      mirror: requests.get("/mirror/red-circle-1.jpg"),
    },
    fetched,
    "not fetched again",
  );
  const rowsAfter = await readParquet(new LocalStorage(root), layout.imageParquet("00000"));
  assert.deepEqual(
    rowsAfter.map((row) => [row.status, row.error_message]),
    [
      ["opted_out", "blocklisted url"],
      ["success", null],
      ["success", null],
      ["opted_out", "blocklisted url"],
    ],
  );
  await rm(work, { recursive: true, force: true });
});
