import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { generateScoreHeads } from "../scripts/score-heads/generate.js";
import {
  renderShapeImage,
  type ShapeColour,
  type ShapeName,
} from "../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { generateTinyMultilingualTextModel } from "../src/demo/tiny-clip/generate-multilingual.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { download } from "../src/stages/download/download.js";
import { embed } from "../src/stages/embed/embed.js";
import { filter } from "../src/stages/filter/filter.js";
import { tempDir } from "./support/temp.js";

const server = createServer((request, response) => {
  const match = /^\/(\w+)-(\w+)-(\d+)\.jpg$/.exec(request.url ?? "");
  if (match === null) {
    response.writeHead(404).end();
    return;
  }
  const [, colour, shape, index] = match;
  void renderShapeImage(colour as ShapeColour, shape as ShapeName, Number(index)).then((image) => {
    response.writeHead(200, { "content-type": "image/jpeg" }).end(image);
  });
});

before(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
});

test("embed reads what download writes: every downloaded pair is embedded with its columns", async () => {
  const work = await tempDir("embed-after-download");
  const root = join(work, "root");
  const modelDir = join(work, "model");
  await generateTinyClipModel(modelDir);
  const port = (server.address() as AddressInfo).port;
  const rows = [
    ["http://shapes.test/red-circle-1.jpg", "a red circle", "en"],
    ["http://shapes.test/blue-star-2.jpg", "a blue star", "en"],
    ["http://shapes.test/missing.jpg", "gone", "en"],
    ["http://shapes.test/green-square-3.jpg", "a yellow triangle", "fr"],
  ];
  await writeFile(
    join(work, "list.csv"),
    `url,caption,lang\n${rows.map((row) => row.join(",")).join("\n")}\n`,
  );
  const downloaded = await download({
    root,
    inputs: [join(work, "list.csv")],
    config: {
      captionCol: "caption",
      saveAdditionalColumns: ["lang"],
      allowPrivateNetwork: true,
      connectTo: [`shapes.test:80:127.0.0.1:${port}`],
      retries: 0,
      workers: 1,
      imageSize: 128,
    },
  });
  assert.equal(downloaded.totals.successes, 3, JSON.stringify(downloaded));

  const summary = await embed({ root, config: { model: modelDir, threads: 1 } });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.deepEqual(summary.totals, {
    samples: 3,
    embedded: 3,
    failed_to_embed: 0,
    captions_truncated: 0,
    damaged_tar_members: 0,
    score_errors: 0,
  });
  const metadata = await readParquet(new LocalStorage(root), layout.embeddingMetadata("00000"));
  assert.deepEqual(
    metadata.map((row) => [row.caption, row.lang, row.width, typeof row.sha256]),
    [
      ["a red circle", "en", 128, "string"],
      ["a blue star", "en", 128, "string"],
      ["a yellow triangle", "fr", 128, "string"],
    ],
  );
  const similarity = metadata.map((row) => row.similarity as number);
  assert.ok((similarity[0] as number) > 0.3 && (similarity[1] as number) > 0.3, `${similarity}`);
  assert.ok((similarity[2] as number) < 0.2, `${similarity}`);
  for (const row of metadata) {
    for (const name of ["punsafe", "pwatermark", "ptoxic"]) {
      const value = row[name] as number;
      assert.ok(value >= 0 && value <= 1, `${name} ${value} is a probability`);
    }
    const aesthetic = row.AESTHETIC_SCORE as number;
    assert.ok(aesthetic >= 0 && aesthetic <= 10, `AESTHETIC_SCORE ${aesthetic} is on 0–10`);
    assert.equal(row.score_error, null);
  }

  // Trained heads replace the zero-shot defaults; the changed config redoes the shard.
  const heads = join(root, "heads");
  await generateScoreHeads(heads);
  const configPath = join(root, "clipcrawl.json");
  const config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
  config.scores = {
    ...(JSON.parse(await readFile(join(heads, "scores.json"), "utf8")) as object),
    punsafe: {
      kind: "onnx",
      input: "image",
      model: "heads/red-mlp.onnx",
      activation: "softmax",
      outputIndex: 1,
    },
    ptoxic: { kind: "onnx", input: "text", model: "heads/unstable-red-circle.onnx" },
    pwatermark: { kind: "linear", input: "image", weights: "heads/red-circle.npy" },
  };
  await writeFile(configPath, JSON.stringify(config));
  const rescored = await embed({ root, config: { model: modelDir, threads: 1 } });
  assert.equal(rescored.shardsWritten, 1, "a new scores config redoes the shard");
  assert.equal(rescored.totals.score_errors, 2);
  const scored = await readParquet(new LocalStorage(root), layout.embeddingMetadata("00000"));
  const [redCircle, blueStar, greenSquare] = scored;
  assert.ok((redCircle?.punsafe as number) > 0.9, `red circle punsafe ${redCircle?.punsafe}`);
  assert.ok((blueStar?.punsafe as number) < 0.1, `blue star punsafe ${blueStar?.punsafe}`);
  assert.ok((redCircle?.pwatermark as number) > (blueStar?.pwatermark as number));
  assert.equal(typeof redCircle?.ptoxic, "number");
  assert.equal(redCircle?.score_error, null);
  for (const row of [blueStar, greenSquare]) {
    assert.equal(row?.status, "embedded", "a NaN score does not lose the pair");
    assert.equal(row?.ptoxic, null);
    assert.equal(row?.score_error, "ptoxic head returned NaN");
    assert.equal(typeof row?.punsafe, "number");
  }
  await rm(work, { recursive: true, force: true });
});

test("captions of multilingualTiers go through the multilingual text model", async () => {
  const work = await tempDir("embed-multilingual");
  const root = join(work, "root");
  const clipDir = join(work, "clip");
  const multilingualDir = join(work, "multilingual");
  await generateTinyClipModel(clipDir);
  await generateTinyMultilingualTextModel(multilingualDir);
  const port = (server.address() as AddressInfo).port;
  const rows = [
    ["http://shapes.test/red-circle-1.jpg", "ein roter Kreis", "multi"],
    ["http://shapes.test/blue-star-2.jpg", "a blue star", "en"],
    ["http://shapes.test/green-square-3.jpg", "un carré vert", "multi"],
    ["http://shapes.test/green-square-4.jpg", "un cercle rouge", "multi"],
  ];
  await writeFile(
    join(work, "list.csv"),
    `url,caption,language_tier\n${rows.map((row) => row.join(",")).join("\n")}\n`,
  );
  await download({
    root,
    inputs: [join(work, "list.csv")],
    config: {
      captionCol: "caption",
      saveAdditionalColumns: ["language_tier"],
      allowPrivateNetwork: true,
      connectTo: [`shapes.test:80:127.0.0.1:${port}`],
      retries: 0,
      workers: 1,
      imageSize: 64,
    },
  });
  const storage = new LocalStorage(root);

  const englishOnly = await embed({ root, config: { model: clipDir, threads: 1 } });
  assert.equal(englishOnly.multilingualModel, null);
  const before = await readParquet(storage, layout.embeddingMetadata("00000"));
  assert.deepEqual(
    before.map((row) => row.text_tower),
    ["clip", "clip", "clip", "clip"],
  );
  assert.ok((before[0]?.similarity as number) < 0.26, "CLIP's English tower misses German");

  const summary = await embed({
    root,
    config: { model: clipDir, multilingualModel: multilingualDir, threads: 1 },
  });
  assert.equal(summary.shardsWritten, 1, "adding the multilingual model redoes the shard");
  const after = await readParquet(storage, layout.embeddingMetadata("00000"));
  assert.deepEqual(
    after.map((row) => row.text_tower),
    ["multilingual", "clip", "multilingual", "multilingual"],
  );
  const similarity = after.map((row) => row.similarity as number);
  assert.ok((similarity[0] as number) > 0.9, `roter Kreis on a red circle: ${similarity[0]}`);
  assert.ok((similarity[1] as number) > 0.9, `a blue star on a blue star: ${similarity[1]}`);
  assert.ok((similarity[2] as number) > 0.9, `carré vert on a green square: ${similarity[2]}`);
  assert.ok((similarity[3] as number) < 0.2, `cercle rouge on a green square: ${similarity[3]}`);
  await rm(work, { recursive: true, force: true });
});

test("download's MD5 and SHA-1 reach filter: an image on a takedown hash list is dropped with its reason", async () => {
  const work = await tempDir("filter-after-download");
  const root = join(work, "root");
  const modelDir = join(work, "model");
  await generateTinyClipModel(modelDir);
  const port = (server.address() as AddressInfo).port;
  const rows = [
    ["http://shapes.test/red-circle-1.jpg", "a red circle"],
    ["http://shapes.test/blue-star-2.jpg", "a blue star"],
    ["http://shapes.test/green-square-3.jpg", "a green square"],
  ];
  await writeFile(
    join(work, "list.csv"),
    `url,caption\n${rows.map((row) => row.join(",")).join("\n")}\n`,
  );
  await download({
    root,
    inputs: [join(work, "list.csv")],
    config: {
      captionCol: "caption",
      allowPrivateNetwork: true,
      connectTo: [`shapes.test:80:127.0.0.1:${port}`],
      retries: 0,
      workers: 1,
      imageSize: 64,
    },
  });
  await embed({ root, config: { model: modelDir, threads: 1 } });
  // The lists hold digests of the bytes the server sends, as a takedown list would.
  const digest = async (algorithm: string, colour: ShapeColour, shape: ShapeName, index: number) =>
    createHash(algorithm)
      .update(await renderShapeImage(colour, shape, index))
      .digest("hex");
  await writeFile(join(work, "md5.txt"), `${await digest("md5", "red", "circle", 1)}\n`);
  await writeFile(join(work, "sha1.txt"), `${await digest("sha1", "blue", "star", 2)}\n`);
  const summary = await filter({
    root,
    cwd: work,
    config: {
      md5Blocklist: "md5.txt",
      sha1Blocklist: "sha1.txt",
      minSimilarityEn: -1,
      minSimilarityMulti: -1,
      minSimilarityNolang: -1,
    },
  });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.totals.dropped_by_reason.md5_blocklisted, 1);
  assert.equal(summary.totals.dropped_by_reason.sha1_blocklisted, 1);
  const dataset = await readParquet(new LocalStorage(root), layout.datasetShard("00000"), ["URL"]);
  assert.deepEqual(
    dataset.map((row) => row.URL),
    [rows[2]?.[0]],
  );
  await rm(work, { recursive: true, force: true });
});
