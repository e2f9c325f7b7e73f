import assert from "node:assert/strict";
import { test } from "node:test";
import sharp from "sharp";
import { checkImageHeader } from "../src/io/image-header.js";
import { readRasterHeader } from "../src/io/raster-header.js";

const WIDTH = 40;
const HEIGHT = 30;

function picture(channels: 3 | 4 = 3) {
  const pixels = Buffer.alloc(WIDTH * HEIGHT * channels);
  for (let offset = 0; offset < pixels.length; offset++) pixels[offset] = (offset * 37) % 251;
  return sharp(pixels, { raw: { width: WIDTH, height: HEIGHT, channels } });
}

async function libvipsHeader(bytes: Buffer) {
  const metadata = await sharp(bytes).metadata();
  return {
    format: metadata.format,
    width: metadata.width,
    height: metadata.height,
    orientation: metadata.orientation ?? 1,
    hasAlpha: metadata.hasAlpha,
    exif: metadata.exif,
  };
}

test("JPEG and PNG headers read in JavaScript agree with libvips", async () => {
  const images: Buffer[] = [
    await picture().jpeg().toBuffer(),
    await picture().jpeg({ progressive: true }).toBuffer(),
    await picture().toColourspace("cmyk").jpeg().toBuffer(),
    await picture().png().toBuffer(),
    await picture(4).png().toBuffer(),
    await picture().greyscale().png().toBuffer(),
    await picture().png({ palette: true }).toBuffer(),
    // A palette with transparency: libvips gives it an alpha channel (tRNS).
    await picture(4).png({ palette: true }).toBuffer(),
  ];
  for (const orientation of [1, 3, 6, 8]) {
    images.push(
      await picture()
        .jpeg()
        .withExif({ IFD0: { Make: "ClipcrawlCam" } })
        .withMetadata({ orientation })
        .toBuffer(),
    );
  }
  for (const bytes of images) {
    const read = readRasterHeader(bytes);
    assert.ok(read !== undefined, "a plain JPEG or PNG header is read without libvips");
    assert.deepEqual(read, await libvipsHeader(bytes));
  }
});

test("headers the JavaScript reader is unsure of are left to libvips", async () => {
  const jpeg = await picture()
    .jpeg()
    .withExif({ IFD0: { Make: "ClipcrawlCam" } })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const exifAt = jpeg.indexOf("Exif\0\0", 0, "latin1");
  const unsure: [string, Buffer][] = [
    ["a WebP", await picture().webp().toBuffer()],
    ["a GIF", await picture().gif().toBuffer()],
    ["a JPEG cut inside its headers", jpeg.subarray(0, exifAt + 20)],
    ["a JPEG whose first segment runs past the end", patch(jpeg, 4, [0xff, 0xff])],
    ["a JPEG with a byte that is not a marker", patch(jpeg, 2, [0x00])],
    ["a JPEG whose frame declares no height (DNL)", zeroFrameHeight(jpeg)],
    ["a JPEG whose EXIF points past its end", patch(jpeg, exifAt + 10, [0x7f, 0xff, 0xff, 0xff])],
    ["a JPEG whose EXIF has no byte order", patch(jpeg, exifAt + 6, [0x58, 0x58])],
    ["a PNG with an eXIf chunk", withPngChunk(await picture().png().toBuffer(), "eXIf")],
    ["a PNG cut before its image data", (await picture().png().toBuffer()).subarray(0, 40)],
    ["an empty buffer", Buffer.alloc(0)],
  ];
  for (const [what, bytes] of unsure) {
    assert.equal(readRasterHeader(bytes), undefined, what);
  }
});

test("an orientation outside 1–8 reads as 1, as libvips reads it", async () => {
  const jpeg = await picture()
    .jpeg()
    .withExif({ IFD0: { Make: "ClipcrawlCam" } })
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const tiff = jpeg.indexOf("Exif\0\0", 0, "latin1") + 6;
  const little = jpeg.toString("latin1", tiff, tiff + 2) === "II";
  const ifd = tiff + (little ? jpeg.readUInt32LE(tiff + 4) : jpeg.readUInt32BE(tiff + 4));
  const entries = little ? jpeg.readUInt16LE(ifd) : jpeg.readUInt16BE(ifd);
  const broken = Buffer.from(jpeg);
  for (let index = 0; index < entries; index++) {
    const entry = ifd + 2 + index * 12;
    const tag = little ? broken.readUInt16LE(entry) : broken.readUInt16BE(entry);
    if (tag !== 0x0112) continue;
    if (little) broken.writeUInt16LE(9, entry + 8);
    else broken.writeUInt16BE(9, entry + 8);
  }
  assert.equal(readRasterHeader(broken)?.orientation, 1);
  assert.equal((await libvipsHeader(broken)).orientation, 1);
});

test("a decompression bomb is refused from a header read in JavaScript", async () => {
  const jpeg = await picture().jpeg().toBuffer();
  const frame = frameOffset(jpeg);
  const bomb = patch(jpeg, frame + 5, [0x75, 0x30, 0x75, 0x30]); // 30000 x 30000
  assert.deepEqual(readRasterHeader(bomb), {
    format: "jpeg",
    width: 30000,
    height: 30000,
    orientation: 1,
    hasAlpha: false,
    exif: undefined,
  });
  const checked = await checkImageHeader(bomb, 89478485);
  assert.equal(checked.ok, false);
  assert.equal(
    checked.ok ? "" : checked.error,
    "decompression bomb: 30000x30000 pixels, over the limit of 89478485",
  );
});

function patch(bytes: Buffer, at: number, values: number[]): Buffer {
  const copy = Buffer.from(bytes);
  values.forEach((value, index) => {
    copy[at + index] = value;
  });
  return copy;
}

/** Where the JPEG's SOF segment starts (its 0xFF). */
function frameOffset(jpeg: Buffer): number {
  let offset = 2;
  while (jpeg[offset + 1] !== 0xc0 && jpeg[offset + 1] !== 0xc2) {
    offset += 2 + jpeg.readUInt16BE(offset + 2);
  }
  return offset;
}

function zeroFrameHeight(jpeg: Buffer): Buffer {
  return patch(jpeg, frameOffset(jpeg) + 5, [0, 0]);
}

/** The PNG with a chunk of that type (CRC not checked by the header reader) before IDAT. */
function withPngChunk(png: Buffer, type: string): Buffer {
  const chunk = Buffer.alloc(12 + 4);
  chunk.writeUInt32BE(4, 0);
  chunk.write(type, 4, "latin1");
  return Buffer.concat([png.subarray(0, 33), chunk, png.subarray(33)]);
}
