import assert from "node:assert/strict";
import { open, rm } from "node:fs/promises";
import { after, before, test } from "node:test";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { TarWriter } from "../src/io/tar-writer.js";
import { ThumbnailStore } from "../src/server/thumbnails.js";
import { jpegDeclaring, pngBomb, svgDeclaring } from "./support/hostile-inputs.js";
import { tempDir } from "./support/temp.js";

let workDir: string;
let storage: LocalStorage;

before(async () => {
  workDir = await tempDir("thumbnails");
  storage = new LocalStorage(workDir);
  const members: [string, Buffer][] = [
    ["000000000.jpg", await renderShapeImage("red", "circle", 1)],
    ["000000001.jpg", await jpegDeclaring(16000, 16000)],
    ["000000002.jpg", svgDeclaring(400, 400)],
    ["000000003.png", pngBomb(10000, 10000)],
    // A PNG saved under a .jpg name is served as what it is.
    ["000000004.jpg", await renderShapeImage("blue", "square", 2, 64, "png")],
  ];
  await storage.writeAtomicWith(layout.imageTar("00000"), async (path) => {
    const file = await open(path, "w");
    const tar = new TarWriter(file);
    for (const [name, data] of members) await tar.add(name, data);
    await tar.finish();
    await file.close();
  });
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

test("thumbnails serve only raster images within the pixel limit, typed by their real format", async () => {
  const store = new ThumbnailStore(storage, 40_000_000);
  const good = await store.find("000000000");
  assert.ok(good !== undefined && "bytes" in good);
  assert.equal(good.contentType, "image/jpeg");
  assert.deepEqual(await store.find("000000001"), {
    refused: "decompression bomb: 16000x16000 pixels, over the limit of 40000000",
  });
  assert.deepEqual(await store.find("000000002"), {
    refused: "unsupported image format svg",
  });
  assert.deepEqual(await store.find("000000003"), {
    refused: "decompression bomb: 10000x10000 pixels, over the limit of 40000000",
  });
  const renamed = await store.find("000000004");
  assert.ok(renamed !== undefined && "bytes" in renamed);
  assert.equal(renamed.contentType, "image/png");
  assert.equal(await store.find("000000099"), undefined);
});
