/**
 * Commands on an s3:// root, against an S3-compatible server (s3rver) the test starts on
 * 127.0.0.1: the endpoint reaches them as a user's would, through AWS_ENDPOINT_URL, and each
 * command's output must equal the same command's on a local root.
 */
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LocalStorage } from "../src/io/local-storage.js";
import { openRoot } from "../src/io/open-root.js";
import { readParquet } from "../src/io/parquet.js";
import { extract } from "../src/stages/extract/extract.js";
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
