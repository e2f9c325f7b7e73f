/**
 * Commands on an s3:// root, against an S3-compatible server (s3rver) the test starts on
 * 127.0.0.1: the endpoint reaches them as a user's would, through AWS_ENDPOINT_URL, and each
 * command's output must equal the same command's on a local root.
 */
import assert from "node:assert/strict";
import { createReadStream, existsSync, readdirSync } from "node:fs";
import { cp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { readVersion, recordVersion } from "../src/formats/dataset-versions.js";
import { readAuditLog } from "../src/governance/audit-log.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readNpyFileHeader } from "../src/io/npy-file.js";
import { openRoot } from "../src/io/open-root.js";
import { readParquet } from "../src/io/parquet.js";
import { S3Storage } from "../src/io/s3-storage.js";
import type { DatasetStorage } from "../src/io/storage.js";
import { readTarEntries, readWebdatasetSamples } from "../src/io/tar-reader.js";
import { compact, remove, showSample } from "../src/pipeline/governance-commands.js";
import { serve } from "../src/server/serve.js";
import { extract } from "../src/stages/extract/extract.js";
import { recheck } from "../src/stages/recheck/recheck.js";
import { stats, statsReport } from "../src/stages/stats/stats.js";
import { subset } from "../src/stages/subset/subset.js";
import { runCli, runCliUntilKilled, runProcess, startCliServer } from "./support/cli.js";
import { writeDatasetRoot } from "./support/dataset-root.js";
import { faultyProxy, startS3Server, type TestS3Server } from "./support/s3-server.js";
import {
  buildServeFixture,
  type ServeFixture,
  type ShapeWeb,
  startShapeWeb,
} from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";
import { gzipEach, warcinfoRecord, watPageRecord } from "./support/warc-build.js";

let s3: TestS3Server;
let work: string;

before(async () => {
  s3 = await startS3Server();
  work = await tempDir("s3-commands");
  process.env.AWS_ENDPOINT_URL = s3.endpoint;
  process.env.CLIPCRAWL_CACHE_DIR = join(work, "cache");
});

after(async () => {
  await s3.close();
  await rm(work, { recursive: true, force: true });
});

async function watFiles(): Promise<string[]> {
  const chairs = watPageRecord("https://shop.example.com/chairs/index.html", [
    { url: "img/red-chair.jpg", alt: "A red leather armchair in a bright living room" },
    { url: "/logo.png", alt: "Shop logo with a smiling sun" },
  ]);
  const blog = watPageRecord("https://blog.example.org/2024/post.html", [
    { url: "photo.jpg", alt: "Rotes Fahrrad vor einer alten Backsteinmauer in Berlin" },
    { url: "https://shop.example.com/logo.png", alt: "Shop logo with a smiling sun" },
  ]);
  const news = watPageRecord("https://news.example.net/today.html", [
    { url: "/img/storm.jpg", alt: "Storm clouds gathering over the harbour at dusk" },
  ]);
  const files = [join(work, "a.warc.wat.gz"), join(work, "b.warc.wat.gz")];
  await writeFile(files[0] as string, gzipEach([warcinfoRecord(), chairs, blog]));
  await writeFile(files[1] as string, gzipEach([warcinfoRecord(), news, chairs]));
  return files;
}

test("extract writes the same candidate shards to an s3:// root as to a local one, and a re-run resumes", async () => {
  const inputs = await watFiles();
  const local = await extract({ root: join(work, "local"), inputs, config: { workers: 1 } });
  const url = `s3://${s3.bucket}/crawls/first`;
  const remote = await extract({ root: url, inputs, config: { workers: 1 } });
  assert.equal(remote.ok, true);
  assert.equal(remote.shardsWritten, local.shardsWritten);
  const localRoot = new LocalStorage(join(work, "local"));
  const s3Root = openRoot(url);
  assert.deepEqual(await s3Root.list("candidates"), await localRoot.list("candidates"));
  for (const shard of ["00000", "00001"]) {
    const path = `candidates/${shard}.parquet`;
    assert.deepEqual(await readParquet(s3Root, path), await readParquet(localRoot, path));
  }
  assert.deepEqual(await s3Root.list("_state/extract"), await localRoot.list("_state/extract"));

  const again = await extract({ root: url, inputs, config: { workers: 1 } });
  assert.equal(again.shardsWritten, 0);
  assert.equal(again.shardsSkipped, local.shardsWritten);
});

/** Every file of a local root, written to `target` under the same paths. */
async function upload(folder: string, target: DatasetStorage): Promise<number> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  const files = entries.filter((entry) => entry.isFile());
  for (const file of files) {
    const path = join(file.parentPath, file.name);
    await target.writeAtomic(relative(folder, path), await readFile(path));
  }
  return files.length;
}

test("stats and subset --where read a dataset on an s3:// root through the local cache, as on a local one", async () => {
  const localRoot = join(work, "dataset");
  await writeDatasetRoot(localRoot, { shards: 3, perShard: 20 });
  const url = `s3://${s3.bucket}/datasets/laion-like`;
  assert.ok((await upload(localRoot, openRoot(url))) > 20);

  const {
    generatedAt: _a,
    root: localName,
    ...localNumbers
  } = await statsReport(new LocalStorage(localRoot));
  const { generatedAt: _b, root: s3Name, ...s3Numbers } = await statsReport(openRoot(url));
  assert.equal(localName, localRoot);
  assert.equal(s3Name, url);
  assert.deepEqual(s3Numbers, localNumbers);
  assert.ok(localNumbers.damagedShards.length === 0);

  const script = join(work, "chart.js");
  await writeFile(script, "/* the report's chart script */");
  const summary = await stats({ root: url, script });
  assert.equal(summary.html, `${url}/_reports/stats.html`);
  assert.match(await openRoot(url).readText("_reports/stats.html"), /the report's chart script/);

  const where = "LANGUAGE = 'en' AND punsafe < 0.5";
  const columns = ["key", "punsafe", "LANGUAGE"];
  const fromLocal = await subset({
    root: localRoot,
    where,
    columns,
    output: join(work, "local-en.parquet"),
  });
  const fromS3 = await subset({ root: url, where, columns, output: join(work, "s3-en.parquet") });
  assert.ok(fromS3.rows > 0);
  assert.equal(fromS3.rows, fromLocal.rows);
  const outputs = new LocalStorage(work);
  assert.deepEqual(
    await readParquet(outputs, "s3-en.parquet"),
    await readParquet(outputs, "local-en.parquet"),
  );
});

test("every command takes --s3-endpoint and --cache-dir; a root of another scheme, or a command not yet on S3, is refused in one line", async () => {
  const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
  const { AWS_ENDPOINT_URL: _endpoint, CLIPCRAWL_CACHE_DIR: _cache, ...env } = process.env;
  const cli = (args: string[]) =>
    runProcess(process.execPath, ["--import", "tsx", main, ...args], {
      env: { ...env, NO_COLOR: "1" },
      timeoutMs: 120_000,
    });
  const [input] = await watFiles();
  const url = `s3://${s3.bucket}/crawls/from-the-cli`;
  const storageFlags = ["--s3-endpoint", s3.endpoint, "--cache-dir", join(work, "cli-cache")];
  const ran = await cli(["extract", input as string, "--root", url, ...storageFlags]);
  assert.equal(ran.code, 0, ran.stderr);
  assert.deepEqual(await openRoot(url).list("candidates"), ["00000.parquet", "00000_stats.json"]);

  const otherScheme = await cli(["extract", input as string, "--root", "gs://bucket/data"]);
  assert.equal(otherScheme.code, 2);
  assert.equal(
    otherScheme.stderr,
    "clipcrawl: gs://bucket/data: gs:// roots are not supported; give a local folder or s3://bucket/prefix\n",
  );
  const demo = await cli([...storageFlags, "demo", "--no-serve", "--root", url]);
  assert.equal(demo.code, 2);
  assert.match(
    demo.stderr,
    /^clipcrawl: clipcrawl demo needs a local --root; s3:\/\/\S+ is object storage/,
  );
  assert.equal(demo.stderr.trim().split("\n").length, 1);

  // A missing bucket: one line naming the URL and the fix, for every governance command.
  await writeFile(join(work, "one-key.txt"), "000000001\n");
  const missing = "s3://no-such-bucket/data";
  for (const args of [
    ["remove", "--keys", join(work, "one-key.txt")],
    ["compact"],
    ["show", "000000001"],
    ["recheck"],
    ["subset", "--recipe", "text", "-o", join(work, "never.parquet")],
  ]) {
    const refused = await cli([...storageFlags, ...args, "--root", missing]);
    assert.notEqual(refused.code, 0, args.join(" "));
    const lines = refused.stderr.trim().split("\n");
    assert.equal(lines.length, 1, `${args[0]}: ${refused.stderr}`);
    assert.match(
      lines[0] ?? "",
      /s3:\/\/no-such-bucket\S*: the bucket does not exist: create it, or fix the bucket in the s3:\/\/ URL/,
      args[0],
    );
  }
});

/** The shape-web root serve's tests use (download → embed → filter → index), built once. */
let shapes: Promise<ServeFixture> | undefined;
let shapeWeb: ShapeWeb | undefined;
function shapeRoot(): Promise<ServeFixture> {
  shapes ??= (async () => {
    shapeWeb = await startShapeWeb();
    return buildServeFixture(join(work, "shapes"), shapeWeb);
  })();
  return shapes;
}

after(async () => {
  await shapeWeb?.close();
});

/** A local copy of the root, made before anything changes it, for the same commands to run on. */
async function localTwin(root: string, name: string): Promise<LocalStorage> {
  const copy = join(work, name);
  await cp(root, copy, { recursive: true, preserveTimestamps: true });
  return new LocalStorage(copy);
}

/** Which samples each data file holds (image parquets: the rows not yet compacted out). */
async function keysByFile(storage: DatasetStorage): Promise<Record<string, string[]>> {
  const files: Record<string, string[]> = {};
  const parquetKeys = async (path: string) =>
    (await readParquet(storage, path))
      .filter((row) => row.status !== "removed")
      .map((row) => String(row.key));
  for (const name of await storage.list("images")) {
    const path = `images/${name}`;
    if (name.endsWith(".parquet")) files[path] = await parquetKeys(path);
    if (name.endsWith(".tar")) {
      const keys: string[] = [];
      const tar = createReadStream(await storage.localPath(path));
      for await (const sample of readWebdatasetSamples(readTarEntries(tar))) {
        assert.ok(!("kind" in sample), `${path} has a damaged member`);
        keys.push(sample.key);
      }
      files[path] = keys;
    }
  }
  for (const folder of ["embeddings/metadata", "embeddings/failures", "dataset"]) {
    for (const name of await storage.list(folder)) {
      if (name.endsWith(".parquet"))
        files[`${folder}/${name}`] = await parquetKeys(`${folder}/${name}`);
    }
  }
  for (const folder of ["embeddings/img_emb", "embeddings/text_emb"]) {
    for (const name of await storage.list(folder)) {
      const header = await readNpyFileHeader(await storage.localPath(`${folder}/${name}`));
      files[`${folder}/${name}`] = [`${header.shape[0]} rows`];
    }
  }
  return files;
}

test("remove on an s3:// root: serve, subset, stats, show and recheck leave the samples out the moment it returns; compact rewrites the files as on a local root", async () => {
  const fixture = await shapeRoot();
  const local = await localTwin(fixture.root, "shapes-local");
  const url = `s3://${s3.bucket}/shapes/governed`;
  const storage = openRoot(url);
  await upload(fixture.root, storage);
  await recordVersion(storage, "test");
  await recordVersion(local, "test");
  const server = await serve({
    indices: [{ name: "shapes", root: url, multilingualModel: fixture.multilingualModel }],
    config: { port: 0, rateLimitPerMinute: 0 },
  });
  try {
    const post = (path: string, body: unknown) =>
      fetch(`${server.url}${path}`, { method: "POST", body: JSON.stringify(body) });
    const served = async () => {
      const response = await post("/knn-service", {
        indice_name: "shapes",
        modality: "image",
        text: "a red circle",
        num_images: 200,
      });
      assert.equal(response.status, 200);
      return ((await response.json()) as { id: number; key: string }[]).filter(
        (row) => row.key !== undefined,
      );
    };
    const before = await served();
    const removed = before.slice(0, 2).map((row) => row.key);
    assert.equal(removed.length, 2);
    assert.equal((await fetch(`${server.url}/api/thumbnail/shapes/${removed[0]}`)).status, 200);
    await writeFile(join(work, "takedown.txt"), `${removed.join("\n")}\n`);
    const takedown = { lists: { keys: "takedown.txt" }, cwd: work, reason: "takedown" };
    const summary = await remove({ root: url, ...takedown });
    await remove({ root: local, ...takedown });
    const removal = summary.removals[0]?.removal;
    assert.equal(summary.removals[0]?.samples, 2);
    assert.deepEqual(await storage.list("_governance/tombstones"), [`${removal}.txt`]);

    // No wait: the server lists the tombstones before each request.
    const after = await served();
    assert.deepEqual(
      after.map((row) => row.key).sort(),
      before
        .map((row) => row.key)
        .filter((key) => !removed.includes(key))
        .sort(),
    );
    assert.equal((await fetch(`${server.url}/api/thumbnail/shapes/${removed[0]}`)).status, 404);
    const like = await post("/knn-service", { indice_name: "shapes", like_id: before[0]?.id });
    assert.equal(like.status, 404);

    const subsetKeys = async (root: string | DatasetStorage, name: string) => {
      await subset({ root, output: join(work, name), columns: ["key"] });
      return (await readParquet(new LocalStorage(work), name, ["key"])).map((row) => row.key);
    };
    const fromS3 = await subsetKeys(url, "governed-s3.parquet");
    assert.ok(!fromS3.some((key) => removed.includes(String(key))));
    assert.deepEqual(fromS3, await subsetKeys(local, "governed-local.parquet"));
    const { generatedAt: _a, root: _r, ...s3Stats } = await statsReport(storage);
    const { generatedAt: _b, root: _l, ...localStats } = await statsReport(local);
    assert.deepEqual(s3Stats, localStats);

    const shown = await showSample({ root: url, key: removed[0] as string });
    assert.ok(shown.found);
    assert.ok(
      shown.notes.some((note) => note.startsWith("tombstoned")),
      shown.notes.join("; "),
    );
    assert.deepEqual(
      shown.removals.map((entry) => entry.removal),
      [removal],
    );
    const rechecked = await recheck({ root: url, date: "2026-12-06" });
    assert.equal(rechecked.ok, true);
    const recheckRows = await readParquet(storage, layout.recheck("2026-12-06"), ["key"]);
    assert.ok(recheckRows.length > 0);
    assert.ok(!recheckRows.some((row) => removed.includes(String(row.key))), "recheck skips them");

    // compact: the same files as compact on the local twin, the version snapshot too.
    const compacted = await compact({ root: url });
    await compact({ root: local });
    assert.deepEqual(compacted.applied, [removal]);
    assert.match(compacted.index, /^rebuilt/);
    assert.deepEqual(await keysByFile(storage), await keysByFile(local));
    assert.deepEqual(await storage.list("_governance/tombstones"), []);
    assert.deepEqual(await storage.list("_governance/compaction"), []);
    assert.deepEqual(await storage.list(layout.compactionLock()), [], "no lock claim is left");
    const version = await readVersion(storage, "v1");
    const snapshotKeys = (
      await Promise.all(version.shards.map((shard) => readParquet(storage, shard.path, ["key"])))
    )
      .flat()
      .map((row) => String(row.key));
    assert.equal(version.rows, snapshotKeys.length);
    assert.equal(version.rows, (await readVersion(local, "v1")).rows);
    assert.ok(!snapshotKeys.some((key) => removed.includes(key)), "the snapshot lost them too");
    assert.deepEqual(
      (await readAuditLog(storage)).map((entry) => entry.kind),
      ["removal", "compaction"],
    );
    const afterCompact = (await served()).map((row) => row.key);
    assert.ok(!afterCompact.some((key) => removed.includes(key)), "the rebuilt index, at once");
  } finally {
    await server.close();
  }
});

test("subset --recipe on an s3:// root leaves out what it leaves out on a local root", async () => {
  const fixture = await shapeRoot();
  const url = `s3://${s3.bucket}/shapes/recipes`;
  await upload(fixture.root, openRoot(url));
  const recipes = ["text", "semdedup:epsilon=0.05"];
  const fromLocal = await subset({
    root: fixture.root,
    recipes,
    columns: ["key"],
    output: join(work, "recipe-local.parquet"),
  });
  const fromS3 = await subset({
    root: url,
    recipes,
    columns: ["key"],
    output: join(work, "recipe-s3.parquet"),
  });
  assert.ok(fromS3.rows > 0);
  assert.equal(fromS3.rows, fromLocal.rows);
  assert.deepEqual(fromS3.recipes, fromLocal.recipes);
  const outputs = new LocalStorage(work);
  assert.deepEqual(
    await readParquet(outputs, "recipe-s3.parquet"),
    await readParquet(outputs, "recipe-local.parquet"),
  );
  // SemDeDup's scratch files went to a local temporary folder, not to a path named after the URL.
  assert.equal(existsSync(join(process.cwd(), "s3:")), false);

  // The serve command takes the URL as it is (not as a path under the current folder).
  const server = await startCliServer([
    ...["serve", "--root", url, "--port", "0"],
    ...["--multilingual-model", fixture.multilingualModel],
  ]);
  try {
    const response = await fetch(`${server.url}/knn-service`, {
      method: "POST",
      body: JSON.stringify({ indice_name: "recipes", text: "a red circle", num_images: 3 }),
    });
    assert.equal(response.status, 200, server.stderr());
    assert.equal(((await response.json()) as unknown[]).length, 3);
  } finally {
    await server.stop();
  }
});

/** Whether s3rver's folder holds an object under `folder` of the bucket whose name passes `test`. */
function storedObject(folder: string, test: (name: string) => boolean): boolean {
  try {
    return readdirSync(join(s3.directory, s3.bucket, folder)).some(
      (name) => name.endsWith("._S3rver_object") && test(name.slice(0, -"._S3rver_object".length)),
    );
  } catch {
    return false;
  }
}

test("a remove --compact on an s3:// root killed mid-way, or failing on a store error, re-runs to the result of an uninterrupted one", async () => {
  const pristine = join(work, "governed-pristine");
  const samples = await writeDatasetRoot(pristine, { shards: 4, perShard: 20 });
  await writeFile(join(work, "gone-domains.txt"), "site-1.example\n");
  await writeFile(
    join(work, "gone-keys.txt"),
    samples
      .filter((sample) => sample.n % 7 === 0)
      .map((sample) => sample.key)
      .join("\n"),
  );
  const lists = { domains: "gone-domains.txt", keys: "gone-keys.txt" };
  const reference = await localTwin(pristine, "governed-reference");
  await remove({ root: reference, lists, cwd: work, compact: true });
  const expected = await keysByFile(reference);
  assert.notDeepEqual(expected, await keysByFile(new LocalStorage(pristine)));

  const cliArgs = (url: string) => [
    ...["remove", "--root", url, "--compact"],
    ...["--domains", join(work, "gone-domains.txt"), "--keys", join(work, "gone-keys.txt")],
  ];
  const killPoints: [string, (prefix: string) => boolean][] = [
    [
      "once-the-journal-is-written",
      (prefix) => storedObject(`${prefix}/_governance/pending`, (name) => name.endsWith(".json")),
    ],
    [
      "after-the-first-file",
      (prefix) =>
        storedObject(`${prefix}/_governance/compaction`, (name) =>
          name.endsWith(".progress.jsonl"),
        ),
    ],
  ];
  let interrupted = 0;
  for (const [name, reached] of killPoints) {
    const prefix = `governed/${name}`;
    const url = `s3://${s3.bucket}/${prefix}`;
    const storage = openRoot(url);
    await upload(pristine, storage);
    const outcome = await runCliUntilKilled(cliArgs(url), () => reached(prefix), 2);
    if (outcome === "SIGKILL") interrupted++;
    else assert.equal(outcome, "exit 0", name);
    // The killed run's lock claim names a process that is gone: the re-run takes it over.
    const again = await remove({ root: url, lists, cwd: work, compact: true });
    assert.equal(again.ok, true, name);
    assert.deepEqual(await keysByFile(storage), expected, name);
    // A re-run after the removal itself completed is a removal of nothing (all tombstoned).
    const audit = await readAuditLog(storage);
    const removals = audit.filter((entry) => entry.kind === "removal" && entry.samples > 0);
    assert.equal(removals.length, 1, name);
    assert.deepEqual(await storage.list("_governance/pending"), [], name);
    assert.deepEqual(await storage.list("_governance/compaction"), [], name);
    assert.deepEqual(await storage.list("_governance/tombstones"), [], name);
    assert.deepEqual(await storage.list(layout.removalLock()), [], name);
  }
  assert.ok(interrupted >= 1, `${interrupted} of the runs were killed mid-way`);

  // The store refuses the tombstone upload (503 past the SDK's retries): one line, then a re-run.
  const url = `s3://${s3.bucket}/governed/store-error`;
  const storage = openRoot(url);
  await upload(pristine, storage);
  const proxy = await faultyProxy(s3.endpoint, (request) =>
    request.method === "PUT" && (request.url ?? "").includes("_governance/tombstones/")
      ? { status: 503 }
      : "pass",
  );
  try {
    const failing = new S3Storage(url, {
      endpoint: proxy.endpoint,
      cacheDir: join(work, "cache"),
      maxAttempts: 2,
    });
    await assert.rejects(
      remove({ root: failing, lists, cwd: work, compact: true }),
      /^ClipcrawlError: s3:\/\/clipcrawl-test\/governed\/store-error\/_governance\/tombstones\/\S+\.txt: the store answered 503/,
    );
    assert.ok(proxy.answered >= 2);
  } finally {
    await proxy.close();
  }
  assert.equal((await storage.list("_governance/pending")).length, 1, "the journal stays");
  const resumed = await remove({ root: url, lists, cwd: work, compact: true });
  assert.equal(resumed.removals[0]?.resumed, true);
  assert.deepEqual(await keysByFile(storage), expected);
});

test("remove, show and compact --background from the command line on an s3:// root", async () => {
  const pristine = join(work, "cli-governed");
  const samples = await writeDatasetRoot(pristine, { shards: 2, perShard: 10 });
  const url = `s3://${s3.bucket}/governed/from-the-cli`;
  const storage = openRoot(url);
  await upload(pristine, storage);
  const gone = samples.filter((sample) => sample.kept).slice(0, 2);
  await writeFile(join(work, "cli-keys.txt"), gone.map((sample) => sample.key).join("\n"));

  const removed = await runCli(["remove", "--root", url, "--keys", join(work, "cli-keys.txt")]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /2 samples removed\n {2}tombstoned: unreachable/);
  const shown = await runCli(["show", gone[0]?.key as string, "--root", url, "--json"]);
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /tombstoned/);

  const folder = await tempDir("compact-cwd");
  // Run from a folder outside the repository: tsx by its resolved URL, not by package name.
  const started = await runProcess(
    process.execPath,
    [
      ...["--import", import.meta.resolve("tsx")],
      fileURLToPath(new URL("../src/cli/main.ts", import.meta.url)),
      ...["compact", "--root", url, "--background"],
    ],
    { cwd: folder, env: { ...process.env, NO_COLOR: "1" }, timeoutMs: 60_000 },
  );
  assert.equal(started.code, 0, started.stderr);
  assert.equal(
    /output: (\S+)/.exec(started.stdout)?.[1],
    join(folder, "clipcrawl-compact.log"),
    started.stdout,
  );
  const deadline = Date.now() + 90_000;
  while ((await storage.list("_governance/tombstones")).length > 0) {
    assert.ok(Date.now() < deadline, "the background compaction finished within 90 s");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const datasetKeys = (
    await Promise.all(
      (
        await storage.list("dataset")
      )
        .filter((name) => name.endsWith(".parquet"))
        .map((name) => readParquet(storage, `dataset/${name}`, ["key"])),
    )
  )
    .flat()
    .map((row) => String(row.key));
  assert.ok(datasetKeys.length > 0);
  assert.ok(!datasetKeys.some((key) => gone.some((sample) => sample.key === key)));
  // The detached process writes the log until it exits, just after the tombstones go.
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.match(await readFile(join(folder, "clipcrawl-compact.log"), "utf8"), /compact /);
  await rm(folder, { recursive: true, force: true });
});
