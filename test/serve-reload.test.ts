import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { remove } from "../src/pipeline/governance-commands.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import {
  buildServeFixture,
  type ServeFixture,
  type ShapeWeb,
  startShapeWeb,
} from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";

let work: string;
let web: ShapeWeb;
let fixture: ServeFixture;
let server: RunningServer;

before(async () => {
  work = await tempDir("serve-reload");
  web = await startShapeWeb();
  fixture = await buildServeFixture(work, web);
  server = await serve({
    indices: [{ name: "shapes", root: fixture.root, multilingualModel: fixture.multilingualModel }],
    config: { port: 0, rateLimitPerMinute: 0 },
  });
});

after(async () => {
  await server?.close();
  await web?.close();
  await rm(work, { recursive: true, force: true });
});

interface Result {
  id: number;
  key?: string;
  url?: string;
}

async function query(text: string, numImages = 8): Promise<{ status: number; results: Result[] }> {
  const response = await fetch(`${server.url}/knn-service`, {
    method: "POST",
    body: JSON.stringify({ indice_name: "shapes", modality: "image", text, num_images: numImages }),
  });
  const body = (await response.json()) as Result[] | { error: string };
  return { status: response.status, results: Array.isArray(body) ? body : [] };
}

test("a running serve follows the index that clipcrawl remove --compact rebuilt without a sample", async () => {
  const before = await query("a red circle");
  assert.equal(before.status, 200);
  const first = before.results[0];
  assert.ok(first?.key !== undefined, "results carry their key");
  const { results: rows } = await query("a red circle", 200);
  const rowsBefore = rows.length;

  // A query still running when the index is swapped finishes on the old one.
  const inFlight = query("a blue square", 50);
  await writeFile(join(work, "keys.txt"), `${first.key}\n`);
  const summary = await remove({
    root: fixture.root,
    lists: { keys: "keys.txt" },
    cwd: work,
    compact: true,
  });
  assert.equal(summary.ok, true);
  assert.equal((await inFlight).status, 200);

  const afterRemoval = await query("a red circle");
  assert.equal(afterRemoval.status, 200);
  const keys = afterRemoval.results.map((result) => result.key);
  assert.ok(!keys.includes(first.key), `${first.key} is no longer served: ${keys.join(", ")}`);
  const { results: rowsNow } = await query("a red circle", 200);
  assert.equal(rowsNow.length, rowsBefore - 1, "one row fewer");

  const metadata = await fetch(`${server.url}/metadata`, {
    method: "POST",
    body: JSON.stringify({ indice_name: "shapes", ids: [rowsNow.length] }),
  });
  assert.equal(metadata.status, 400, "the old last row id is past the new index's end");
});

test("an index deleted under a running serve is a 503 naming the fix, not the old rows", async () => {
  const { results } = await query("a green star");
  const key = results[0]?.key;
  assert.ok(key !== undefined);
  await writeFile(join(work, "more-keys.txt"), `${key}\n`);
  await remove({
    root: fixture.root,
    lists: { keys: "more-keys.txt" },
    cwd: work,
    compact: true,
    index: "delete",
  });
  const response = await fetch(`${server.url}/knn-service`, {
    method: "POST",
    body: JSON.stringify({ indice_name: "shapes", text: "a green star" }),
  });
  assert.equal(response.status, 503);
  const body = (await response.json()) as { error: string };
  assert.match(
    body.error,
    /index shapes is not available: its index was deleted; run clipcrawl index/,
  );
  assert.equal((await fetch(`${server.url}/indices-list`)).status, 200, "the server lives on");

  await buildIndex({ root: fixture.root });
  const rebuilt = await query("a green star");
  assert.equal(rebuilt.status, 200, "the rebuilt index is served again");
  assert.ok(!rebuilt.results.some((result) => result.key === key));
});
