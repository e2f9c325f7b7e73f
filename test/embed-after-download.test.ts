import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { renderShapeImage, type ShapeColour, type ShapeName } from "../scripts/shape-images.js";
import { generateTinyClipModel } from "../scripts/tiny-clip/generate.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { download } from "../src/stages/download/download.js";
import { embed } from "../src/stages/embed/embed.js";
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
      allowPrivateAddresses: true,
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
  await rm(work, { recursive: true, force: true });
});
