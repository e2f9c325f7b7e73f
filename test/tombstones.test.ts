import assert from "node:assert/strict";
import { createReadStream, statSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { readVersion, recordVersion } from "../src/formats/dataset-versions.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { readTarEntries, readWebdatasetSamples } from "../src/io/tar-reader.js";
import { compact, remove, showSample } from "../src/pipeline/governance-commands.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { recheck } from "../src/stages/recheck/recheck.js";
import { statsReport } from "../src/stages/stats/stats.js";
import { subset } from "../src/stages/subset/subset.js";
import { runCli } from "./support/cli.js";
import { writeDatasetRoot } from "./support/dataset-root.js";
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
  work = await tempDir("tombstones");
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
}

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${server.url}${path}`, { method: "POST", body: JSON.stringify(body) });
}

async function query(text: string, numImages = 200): Promise<Result[]> {
  const response = await post("/knn-service", {
    indice_name: "shapes",
    modality: "image",
    text,
    num_images: numImages,
  });
  assert.equal(response.status, 200);
  return (await response.json()) as Result[];
}

/** Every key each reader gives, so before, after remove and after compact can be compared. */
async function readerKeys(label: string): Promise<Record<string, string[]>> {
  const root = fixture.root;
  const out = join(work, label);
  const keys: Record<string, string[]> = {};
  for (const format of ["parquet", "csv", "jsonl"] as const) {
    const summary = await subset({
      root,
      output: join(out, `subset.${format}`),
      columns: ["key"],
      ...(format === "parquet" ? { webdataset: join(out, "webdataset") } : {}),
    });
    const text = await readFile(join(out, `subset.${format}`));
    keys[`subset ${format}`] =
      format === "parquet"
        ? (await readParquet(new LocalStorage(out), "subset.parquet", ["key"])).map((row) =>
            String(row.key),
          )
        : format === "csv"
          ? text
              .toString()
              .trim()
              .split("\n")
              .slice(1)
              .map((line) => line.split(",").at(-1) as string)
          : text
              .toString()
              .trim()
              .split("\n")
              .map((line) => String((JSON.parse(line) as { key: string }).key));
    assert.equal(summary.rows, keys[`subset ${format}`]?.length);
  }
  const webdataset: string[] = [];
  for (const name of (await readdir(join(out, "webdataset"))).filter((n) => n.endsWith(".tar"))) {
    const stream = createReadStream(join(out, "webdataset", name));
    for await (const sample of readWebdatasetSamples(readTarEntries(stream))) {
      if (!("kind" in sample)) webdataset.push(sample.key);
    }
  }
  keys["subset --webdataset"] = webdataset;
  keys["subset --version v1"] = (
    await (async () => {
      await subset({ root, version: "v1", output: join(out, "v1.parquet"), columns: ["key"] });
      return readParquet(new LocalStorage(out), "v1.parquet", ["key"]);
    })()
  ).map((row) => String(row.key));
  keys.serve = (await query("a red circle")).map((result) => String(result.key));
  const exported = await post("/api/export", {
    indice_name: "shapes",
    text: "a red circle",
    num_images: 200,
    format: "jsonl",
  });
  assert.equal(exported.status, 200);
  keys["serve export"] = (await exported.text())
    .trim()
    .split("\n")
    .map((line) => String((JSON.parse(line) as { key: string }).key));
  for (const key of Object.keys(keys)) keys[key]?.sort();
  return keys;
}

test("removed samples are unreachable through every reader the moment remove returns; compact rewrites the files and the readers agree", async () => {
  const storage = new LocalStorage(fixture.root);
  await recordVersion(storage, "test");
  const before = await readerKeys("before");
  const statsBefore = await statsReport(storage);
  const apiStatsBefore = (await (await fetch(`${server.url}/api/stats/shapes`)).json()) as {
    funnel: { kept: number };
  };
  const [first, second] = (await query("a red circle")).filter((r) => r.key !== undefined);
  assert.ok(first?.key !== undefined && second?.key !== undefined);
  const removed = [first.key, second.key] as string[];
  for (const [reader, keys] of Object.entries(before)) {
    assert.ok(
      removed.every((key) => keys.includes(key)),
      `${reader} gives the samples before the removal`,
    );
  }
  assert.equal((await fetch(`${server.url}/api/thumbnail/shapes/${first.key}`)).status, 200);
  const tarsBefore = await readdir(join(fixture.root, "images"));
  const tarStat = statSync(join(fixture.root, layout.imageTar("00000")));

  await writeFile(join(work, "takedown.txt"), `${removed.join("\n")}\n`);
  const summary = await remove({
    root: fixture.root,
    lists: { keys: "takedown.txt" },
    cwd: work,
    reason: "takedown",
  });
  const [removal] = summary.removals;
  assert.equal(removal?.samples, 2);
  assert.ok((removal?.filesHolding ?? 0) > 0, "the files still hold them");
  assert.deepEqual(removal?.files, [], "no file was rewritten");
  const tarNow = statSync(join(fixture.root, layout.imageTar("00000")));
  assert.deepEqual([tarNow.ino, tarNow.mtimeMs], [tarStat.ino, tarStat.mtimeMs], "tar untouched");
  assert.deepEqual(await readdir(join(fixture.root, "images")), tarsBefore);

  const shown = await showSample({ root: fixture.root, key: first.key as string });
  assert.ok(
    shown.notes.some((note) => note.startsWith("tombstoned")),
    shown.notes.join("; "),
  );
  assert.deepEqual(
    shown.removals.map((entry) => entry.removal),
    [removal?.removal],
  );

  // Every reader, at once.
  const afterRemove = await readerKeys("after-remove");
  for (const [reader, keys] of Object.entries(afterRemove)) {
    for (const key of removed) assert.ok(!keys.includes(key), `${reader} still gives ${key}`);
    const expected = (before[reader] ?? []).filter((key) => !removed.includes(key));
    if (reader.startsWith("subset")) assert.deepEqual(keys, expected, reader);
  }
  const thumbnail = await fetch(`${server.url}/api/thumbnail/shapes/${first.key}`);
  assert.equal(thumbnail.status, 404);
  const metadata = await post("/metadata", { indice_name: "shapes", ids: [first.id, 0, 1] });
  const answered = (await metadata.json()) as { id: number; metadata: { key: string } }[];
  assert.ok(!answered.some((row) => row.id === first.id || removed.includes(row.metadata.key)));
  const like = await post("/knn-service", { indice_name: "shapes", like_id: first.id });
  assert.equal(like.status, 404);
  const job = (await (
    await post("/api/export/jobs", {
      indice_name: "shapes",
      text: "a red circle",
      num_images: 200,
      format: "jsonl",
    })
  ).json()) as { id: string };
  let state = "running";
  while (state === "running") {
    await new Promise((resolve) => setTimeout(resolve, 50));
    state = (
      (await (await fetch(`${server.url}/api/export/jobs/${job.id}`)).json()) as {
        state: string;
      }
    ).state;
  }
  const jobFile = await (await fetch(`${server.url}/api/export/jobs/${job.id}/file`)).text();
  for (const key of removed) assert.ok(!jobFile.includes(`"${key}"`), `export job gives ${key}`);
  const statsNow = await statsReport(storage);
  assert.equal(statsNow.funnel.kept, statsBefore.funnel.kept - 2);
  const languagesNow = statsNow.languages.reduce((sum, [, n]) => sum + n, 0);
  assert.equal(languagesNow, statsNow.funnel.kept, "the distributions leave them out too");
  const apiStats = (await (await fetch(`${server.url}/api/stats/shapes`)).json()) as {
    funnel: { kept: number };
  };
  assert.equal(apiStats.funnel.kept, apiStatsBefore.funnel.kept - 2);
  const rechecked = await recheck({ root: fixture.root, date: "2026-12-06" });
  const recheckRows = await readParquet(storage, layout.recheck("2026-12-06"), ["key"]);
  assert.equal(rechecked.ok, true);
  assert.ok(recheckRows.length > 0);
  assert.ok(!recheckRows.some((row) => removed.includes(String(row.key))), "recheck skips them");

  // compact: the files without them, the version snapshot linked to the new shard, and the
  // readers give what they gave after the removal.
  const compacted = await compact({ root: fixture.root });
  assert.deepEqual(compacted.applied, [removal?.removal]);
  assert.match(compacted.index, /^rebuilt/);
  assert.deepEqual(await readdir(join(fixture.root, "_governance/tombstones")), []);
  const datasetKeys = (await readParquet(storage, layout.datasetShard("00000"), ["key"])).map(
    (row) => String(row.key),
  );
  assert.ok(!datasetKeys.some((key) => removed.includes(key)));
  const tarKeys: string[] = [];
  const tar = createReadStream(join(fixture.root, layout.imageTar("00000")));
  for await (const sample of readWebdatasetSamples(readTarEntries(tar))) {
    if (!("kind" in sample)) tarKeys.push(sample.key);
  }
  assert.ok(!tarKeys.some((key) => removed.includes(key)), "the tar lost their images");
  const version = await readVersion(storage, "v1");
  const snapshot = statSync(join(fixture.root, version.shards[0]?.path as string));
  const live = statSync(join(fixture.root, layout.datasetShard("00000")));
  assert.equal(snapshot.ino, live.ino, "the snapshot is linked to the rewritten shard again");
  assert.equal(version.rows, datasetKeys.length);
  const snapshotBytes = await readFile(join(fixture.root, version.shards[0]?.path as string));
  for (const key of removed) assert.ok(!snapshotBytes.includes(Buffer.from(key)));

  const afterCompact = await readerKeys("after-compact");
  assert.deepEqual(afterCompact, afterRemove, "the readers agree before and after compact");
  assert.equal((await statsReport(storage)).funnel.kept, statsNow.funnel.kept);
  const thumbnails = await Promise.all(
    afterCompact.serve
      ?.slice(0, 5)
      .map(async (key) => (await fetch(`${server.url}/api/thumbnail/shapes/${key}`)).status) ?? [],
  );
  assert.deepEqual(thumbnails, [200, 200, 200, 200, 200], "offsets re-read from the new tar");
});

test("a damaged tombstone file is one error naming it: serve answers 503, subset and stats refuse, until it is restored", async () => {
  const path = join(fixture.root, "_governance/tombstones/20261206T000000Z-abcdef.txt");
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, "clipcrawl tombstones v1\nremoval 20261206T000000Z-abcdef\n000000001\n");
  const response = await post("/knn-service", { indice_name: "shapes", text: "a red circle" });
  assert.equal(response.status, 503);
  const { error } = (await response.json()) as { error: string };
  assert.match(
    error,
    /20261206T000000Z-abcdef\.txt:3: damaged tombstone file \(no "end N" line: cut short\)/,
  );
  await assert.rejects(
    subset({ root: fixture.root, output: join(work, "refused.parquet") }),
    /20261206T000000Z-abcdef\.txt:3: damaged tombstone file/,
  );
  const cli = await runCli(["stats", "--root", fixture.root, "--output", join(work, "s.html")]);
  assert.notEqual(cli.code, 0);
  const lines = cli.stderr.trim().split("\n");
  assert.equal(lines.length, 1, cli.stderr);
  assert.match(lines[0] ?? "", /_governance\/tombstones\/20261206T000000Z-abcdef\.txt:3/);

  await writeFile(path, "clipcrawl tombstones v1\nremoval 20261206T000000Z-abcdef\nend 0\n");
  const restored = await post("/knn-service", { indice_name: "shapes", text: "a red circle" });
  assert.equal(restored.status, 200, "served again once the file reads");
  await rm(path);
});

test("remove of keys no sample has writes no tombstone and says so", async () => {
  const root = join(work, "small");
  await writeDatasetRoot(root, { shards: 1, perShard: 5 });
  await writeFile(join(work, "unknown.txt"), "999999999\n");
  const cli = await runCli(["remove", "--root", root, "--keys", join(work, "unknown.txt")]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /→ 0 samples removed\n {2}nothing left to remove/);
  assert.ok(!(await readdir(join(root, "_governance"))).includes("tombstones"));
  const compacted = await runCli(["compact", "--root", root]);
  assert.equal(compacted.code, 0, compacted.stderr);
  assert.match(compacted.stdout, /no tombstones, nothing to rewrite/);
});

test("compact --background returns at once and applies the tombstones in a detached process", async () => {
  const root = join(work, "background");
  const samples = await writeDatasetRoot(root, { shards: 2, perShard: 10 });
  const kept = samples.filter((sample) => sample.kept).slice(0, 2);
  await writeFile(join(work, "background-keys.txt"), kept.map((s) => s.key).join("\n"));
  // A version whose snapshot is its own file (no longer the live shard's inode): compact must
  // rewrite it, not only relink.
  const storage = new LocalStorage(root);
  const version = await recordVersion(storage, "test");
  const snapshot = join(root, version?.shards[0]?.path as string);
  const copy = `${snapshot}.copy`;
  await writeFile(copy, await readFile(snapshot));
  await rename(copy, snapshot);
  const removed = await runCli([
    "remove",
    "--root",
    root,
    "--keys",
    join(work, "background-keys.txt"),
  ]);
  assert.equal(removed.code, 0, removed.stderr);
  assert.match(removed.stdout, /2 samples removed\n {2}tombstoned: unreachable/);
  assert.equal((await readdir(join(root, "_governance/tombstones"))).length, 1);

  const started = await runCli(["compact", "--root", root, "--background"]);
  assert.equal(started.code, 0, started.stderr);
  assert.match(
    started.stdout,
    /compacting in the background \(process \d+\); output: .*compact\.log/,
  );
  const deadline = Date.now() + 60_000;
  while ((await readdir(join(root, "_governance/tombstones"))).length > 0) {
    assert.ok(Date.now() < deadline, "the background compaction finished within a minute");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const rewritten = await readVersion(storage, "v1");
  const snapshotKeys = (
    await readParquet(storage, rewritten.shards[0]?.path as string, ["key"])
  ).map((row) => String(row.key));
  assert.ok(snapshotKeys.length > 0);
  assert.ok(!snapshotKeys.some((key) => kept.some((sample) => sample.key === key)), "snapshot");
  assert.equal(rewritten.rows, (version?.rows ?? 0) - kept.length, "the record says what it holds");
  const log = await readFile(join(root, "_governance/compact.log"), "utf8");
  assert.match(
    log,
    /compact compact-\S+: the tombstones of 1 removal \(2 samples\) applied and cleared/,
  );
  for (const shard of ["00000", "00001"]) {
    const keys = (await readParquet(storage, layout.datasetShard(shard), ["key"])).map((row) =>
      String(row.key),
    );
    assert.ok(!keys.some((key) => kept.some((sample) => sample.key === key)), shard);
  }
});
