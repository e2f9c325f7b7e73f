/**
 * Commands on an s3:// root, against an S3-compatible server (s3rver) the test starts on
 * 127.0.0.1: the endpoint reaches them as a user's would, through AWS_ENDPOINT_URL, and each
 * command's output must equal the same command's on a local root.
 */
import assert from "node:assert/strict";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { LocalStorage } from "../src/io/local-storage.js";
import { openRoot } from "../src/io/open-root.js";
import { readParquet } from "../src/io/parquet.js";
import type { DatasetStorage } from "../src/io/storage.js";
import { extract } from "../src/stages/extract/extract.js";
import { stats, statsReport } from "../src/stages/stats/stats.js";
import { subset } from "../src/stages/subset/subset.js";
import { runProcess } from "./support/cli.js";
import { writeDatasetRoot } from "./support/dataset-root.js";
import { startS3Server, type TestS3Server } from "./support/s3-server.js";
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
  const notYet = await cli([...storageFlags, "show", "000000001", "--root", url]);
  assert.equal(notYet.code, 2);
  assert.match(
    notYet.stderr,
    /^clipcrawl: clipcrawl show needs a local --root for now; s3:\/\/\S+ is object storage/,
  );
  assert.equal(notYet.stderr.trim().split("\n").length, 1);
});
