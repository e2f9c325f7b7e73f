import assert from "node:assert/strict";
import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { TarWriter } from "../src/io/tar-writer.js";
import type { EmbedSummary } from "../src/stages/embed/embed.js";
import { runProcess } from "./support/cli.js";
import {
  jpegDeclaring,
  pngBomb,
  svgDeclaring,
  tarHeaderClaiming,
} from "./support/hostile-inputs.js";
import { tempDir } from "./support/temp.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const MAX_RSS = fileURLToPath(new URL("./support/max-rss.ts", import.meta.url));
/**
 * The embed CLI with the tiny model on a dozen images stays near 300 MB here; one 16000² JPEG
 * decoded is 768 MB more.
 */
const PEAK_RSS_BOUND = 600 * 1024 * 1024;

let workDir: string;
let modelDir: string;

before(async () => {
  workDir = await tempDir("embed-hostile");
  modelDir = join(workDir, "model");
  await generateTinyClipModel(modelDir);
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

interface Member {
  name: string;
  data: Buffer;
  /** A header to write instead of the true one. */
  header?: Buffer;
}

async function writeTar(path: string, members: Member[]): Promise<void> {
  const file = await open(path, "w");
  const tar = new TarWriter(file);
  for (const member of members) {
    if (member.header === undefined) {
      await tar.add(member.name, member.data);
      continue;
    }
    const padding = Buffer.alloc((512 - (member.data.length % 512)) % 512);
    await file.write(Buffer.concat([member.header, member.data, padding]));
  }
  await tar.finish();
  await file.close();
}

async function embedCli(
  args: string[],
): Promise<{ code: number | null; summary: EmbedSummary; peakRss: number; stderr: string }> {
  const rssFile = join(workDir, `rss-${Math.random().toString(36).slice(2)}`);
  const result = await runProcess(
    process.execPath,
    ["--import", "tsx", "--import", MAX_RSS, MAIN, "embed", ...args, "--json"],
    {
      env: { ...process.env, NO_COLOR: "1", CLIPCRAWL_MAX_RSS_FILE: rssFile },
      timeoutMs: 180_000,
    },
  );
  assert.ok(result.stdout.trim().startsWith("{"), `${result.stdout}\n${result.stderr}`);
  return {
    code: result.code,
    summary: JSON.parse(result.stdout) as EmbedSummary,
    peakRss: Number(await readFile(rssFile, "utf8")),
    stderr: result.stderr,
  };
}

const good = (index: number, colour: "red" | "blue" | "green") => [
  { name: `g${index}.jpg`, data: renderShapeImage(colour, "circle", index) },
  { name: `g${index}.txt`, data: Promise.resolve(Buffer.from(`a ${colour} circle`)) },
];

async function members(specs: { name: string; data: Promise<Buffer> | Buffer; header?: Buffer }[]) {
  return Promise.all(specs.map(async (spec) => ({ ...spec, data: await spec.data })));
}

test("pixel bombs and an SVG named .jpg inside a tar fail with reasons; the good images embed, memory stays bounded", async () => {
  const tar = join(workDir, "bombs.tar");
  await writeTar(
    tar,
    await members([
      ...good(0, "red"),
      { name: "bomb-jpeg.jpg", data: jpegDeclaring(16000, 16000) },
      { name: "bomb-jpeg.txt", data: Buffer.from("a red square") },
      ...good(1, "blue"),
      { name: "bomb-png.png", data: pngBomb(10000, 10000) },
      { name: "bomb-png.txt", data: Buffer.from("a black square") },
      { name: "svg.jpg", data: svgDeclaring(16000, 16000) },
      { name: "svg.txt", data: Buffer.from("a red square") },
      { name: "bomb-jpeg-2.jpg", data: jpegDeclaring(16000, 16000) },
      { name: "bomb-jpeg-2.txt", data: Buffer.from("a red square") },
      ...good(2, "green"),
    ]),
  );
  const root = join(workDir, "bombs-root");
  const run = await embedCli([tar, "--root", root, "--model", modelDir, "--threads", "1"]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.summary.totals.samples, 7);
  assert.equal(run.summary.totals.embedded, 3);
  assert.equal(run.summary.totals.failed_to_embed, 4);

  const storage = new LocalStorage(root);
  const embedded = await readParquet(storage, layout.embeddingMetadata("00000"));
  assert.deepEqual(
    embedded.map((row) => row.key),
    ["g0", "g1", "g2"],
  );
  const failures = await readParquet(storage, layout.embeddingFailures("00000"));
  assert.deepEqual(Object.fromEntries(failures.map((row) => [row.key, row.error_message])), {
    "bomb-jpeg":
      "image refused: decompression bomb: 16000x16000 pixels, over the limit of 89478485",
    "bomb-png": "image refused: decompression bomb: 10000x10000 pixels, over the limit of 89478485",
    svg: "image refused: unsupported image format svg",
    "bomb-jpeg-2":
      "image refused: decompression bomb: 16000x16000 pixels, over the limit of 89478485",
  });
  assert.ok(
    run.peakRss < PEAK_RSS_BOUND,
    `peak RSS ${Math.round(run.peakRss / 2 ** 20)} MiB, bound ${PEAK_RSS_BOUND / 2 ** 20} MiB`,
  );
});

test("a tar member whose header claims 8 GB is reported, and the good samples after it are embedded", async () => {
  const tar = join(workDir, "claims-8gb.tar");
  const eightGb = 8n * 1024n ** 3n;
  await writeTar(
    tar,
    await members([
      ...good(0, "red"),
      ...good(1, "blue"),
      {
        name: "huge.jpg",
        data: renderShapeImage("green", "square", 9),
        header: tarHeaderClaiming("huge.jpg", eightGb),
      },
      { name: "huge.txt", data: Buffer.from("a green square") },
      ...good(2, "green"),
      ...good(3, "red"),
    ]),
  );
  const root = join(workDir, "claims-root");
  const run = await embedCli([tar, "--root", root, "--model", modelDir, "--threads", "1"]);
  // A damaged member is sample-level damage, as a header whose checksum fails: the shard is
  // written, the member counted and reported on one line, its sample failed with the reason.
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.summary.totals.damaged_tar_members, 1);
  const warnings = run.stderr.split("\n").filter((line) => /huge\.jpg/.test(line));
  assert.equal(warnings.length, 1, run.stderr);
  assert.match(
    warnings[0] as string,
    /huge\.jpg claims 8589934592 bytes, over the limit of \d+ at byte \d+/,
  );

  const storage = new LocalStorage(root);
  const embedded = await readParquet(storage, layout.embeddingMetadata("00000"));
  assert.deepEqual(
    embedded.map((row) => row.key),
    ["g0", "g1", "g2", "g3"],
  );
  const failures = await readParquet(storage, layout.embeddingFailures("00000"));
  assert.deepEqual(
    failures.map((row) => [row.key, row.error_message]),
    [["huge", "image missing from tar (the tar has damaged members)"]],
  );
  assert.ok(run.peakRss < PEAK_RSS_BOUND, `peak RSS ${Math.round(run.peakRss / 2 ** 20)} MiB`);
});
