/**
 * Relative paths in a root's clipcrawl.json: relative to the root when it is a local folder,
 * to the working directory when it is an s3:// root (never a folder under `<cwd>/s3:/…`). Checked
 * where serve picks the query model and where embed hashes and loads its score heads.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { configBaseDir } from "../src/config/config-paths.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { openRoot } from "../src/io/open-root.js";
import type { DatasetStorage } from "../src/io/storage.js";
import { scoresConfigSchema } from "../src/models/heads/score-config.js";
import { resolveIndexModels } from "../src/server/index-models.js";
import { scoresDigest } from "../src/stages/embed/model-identity.js";
import { startS3Server, type TestS3Server } from "./support/s3-server.js";
import { tempDir } from "./support/temp.js";

let s3: TestS3Server;

before(async () => {
  s3 = await startS3Server("config-paths");
  process.env.AWS_ENDPOINT_URL = s3.endpoint;
});

after(() => s3.close());

const config = {
  embed: { model: "models/clip", multilingualModel: "models/multilingual" },
};

async function rootWithConfig(storage: DatasetStorage): Promise<DatasetStorage> {
  await storage.writeAtomic("clipcrawl.json", JSON.stringify(config));
  return storage;
}

test("serve's query model: a relative embed.model is relative to a local root, to the working directory on an s3:// root", async () => {
  const folder = await tempDir("config-paths-local");
  const local = await resolveIndexModels(
    "laion",
    await rootWithConfig(new LocalStorage(folder)),
    {},
  );
  assert.equal(local.model, join(folder, "models/clip"));
  assert.equal(local.multilingualModel, join(folder, "models/multilingual"));

  const remote = await resolveIndexModels(
    "laion",
    await rootWithConfig(openRoot(`s3://${s3.bucket}/datasets/one`)),
    {},
  );
  assert.equal(remote.model, resolve("models/clip"));
  assert.equal(remote.multilingualModel, resolve("models/multilingual"));
  const given = await resolveIndexModels("laion", openRoot(`s3://${s3.bucket}/datasets/one`), {
    model: "/opt/models/clip",
  });
  assert.equal(given.model, "/opt/models/clip", "--model wins over the config");
});

test("embed's score heads: a relative head file on an s3:// root is read from the working directory", async () => {
  const cwd = await tempDir("config-paths-cwd");
  await mkdir(join(cwd, "heads"));
  await writeFile(join(cwd, "heads/watermark.onnx"), "head weights");
  const scores = scoresConfigSchema.parse({
    pwatermark: { kind: "onnx", input: "image", model: "heads/watermark.onnx" },
  });
  const s3Root = openRoot(`s3://${s3.bucket}/datasets/two`);
  assert.equal(configBaseDir(s3Root, cwd), cwd);
  const digest = await scoresDigest(scores, configBaseDir(s3Root, cwd));
  const missing = await scoresDigest(scores, join(cwd, "elsewhere"));
  assert.notEqual(digest, missing, "the head file was found and hashed");
  await writeFile(join(cwd, "heads/watermark.onnx"), "another head");
  assert.notEqual(
    await scoresDigest(scores, configBaseDir(s3Root, cwd)),
    digest,
    "the head's bytes are in the digest",
  );
  const localRoot = new LocalStorage(cwd);
  assert.equal(configBaseDir(localRoot, "/somewhere/else"), cwd, "a local root is its own base");
});
