/**
 * Images and image tars for the fuzz sweep: valid pictures of every raster format download keeps
 * (JPEG, PNG, WebP, GIF), hostile ones (pixel bombs, an SVG named .jpg, a GIF declaring 65535²,
 * empty or HTML bodies) and damaged ones; download's image shards (`images/NNNNN.parquet` + the
 * webdataset tar) built from them, with the byte span of every sample in the tar; and lies told
 * in one tar member header (a size of 8 GB, sizes too large or small, a broken checksum, a
 * directory or link type, another sample's name, an end-of-archive block in the middle).
 */
import sharp from "sharp";
import { initRoot } from "../../src/config/init-root.js";
import { layout, shardName } from "../../src/io/layout.js";
import { LocalStorage } from "../../src/io/local-storage.js";
import { writeParquet } from "../../src/io/parquet.js";
import { tarHeader } from "../../src/io/tar-writer.js";
import { type SampleRecord, sampleKey } from "../../src/stages/download/samples.js";
import { metadataColumns, sampleJson } from "../../src/stages/download/shard-writers.js";
import { type FuzzRandom, mutateBytes } from "./fuzz-mutations.js";
import {
  jpegDeclaring,
  pngBomb,
  svgDeclaring,
  tarHeaderClaiming,
  withChecksum,
} from "./hostile-inputs.js";
import { testImage } from "./image-server.js";

export interface FuzzImage {
  /** What it is, for messages. */
  name: string;
  bytes: Buffer;
  /** The extension it is stored and served under (an SVG goes as jpg). */
  extension: string;
  contentType: string;
}

/** One valid image of each raster format, small. */
export async function validImages(): Promise<FuzzImage[]> {
  const gif = await sharp(await testImage(40, 30, "png", 4))
    .gif()
    .toBuffer();
  return [
    {
      name: "valid JPEG",
      bytes: await testImage(96, 64, "jpeg", 1),
      extension: "jpg",
      contentType: "image/jpeg",
    },
    {
      name: "valid PNG",
      bytes: await testImage(48, 80, "png", 2),
      extension: "png",
      contentType: "image/png",
    },
    {
      name: "valid WebP",
      bytes: await testImage(64, 64, "webp", 3),
      extension: "webp",
      contentType: "image/webp",
    },
    { name: "valid GIF", bytes: gif, extension: "gif", contentType: "image/gif" },
  ];
}

/** The hostile images found by hand, and some more of their kind. */
export async function hostileImages(): Promise<FuzzImage[]> {
  const gif = (await validImages())[3] as FuzzImage;
  const hugeGif = Buffer.from(gif.bytes);
  hugeGif.writeUInt16LE(65535, 6);
  hugeGif.writeUInt16LE(65535, 8);
  const jpeg = (name: string, bytes: Buffer): FuzzImage => ({
    name,
    bytes,
    extension: "jpg",
    contentType: "image/jpeg",
  });
  return [
    jpeg("JPEG declaring 16000x16000 (269-byte pixel bomb)", await jpegDeclaring(16000, 16000)),
    jpeg("JPEG declaring 65535x1", await jpegDeclaring(65535, 1)),
    jpeg("JPEG declaring 0x0", await jpegDeclaring(0, 0)),
    {
      name: "PNG bomb 10000x10000",
      bytes: pngBomb(10000, 10000),
      extension: "png",
      contentType: "image/png",
    },
    jpeg("SVG named .jpg declaring 16000x16000", svgDeclaring(16000, 16000)),
    jpeg("SVG named .jpg, small", svgDeclaring(64, 64)),
    {
      name: "GIF declaring 65535x65535",
      bytes: hugeGif,
      extension: "gif",
      contentType: "image/gif",
    },
    jpeg("empty body", Buffer.alloc(0)),
    jpeg("an HTML page", Buffer.from("<!doctype html><html><body>Not found</body></html>")),
    jpeg("four JPEG magic bytes", Buffer.from([0xff, 0xd8, 0xff, 0xe0])),
  ];
}

/** A valid image damaged by a byte-level mutation, or one of the hostile ones. */
export function fuzzImage(valid: FuzzImage[], hostile: FuzzImage[], random: FuzzRandom): FuzzImage {
  if (random.chance(0.4)) return random.pick(hostile);
  const source = random.pick(valid);
  const mutation = mutateBytes(source.bytes, random);
  return { ...source, name: `${source.name}, ${mutation.name}`, bytes: mutation.bytes };
}

export interface ImageSample {
  key: string;
  caption: string;
  image: FuzzImage;
}

/** A shard's tar in webdataset layout, and per sample the [start, end) of its members. */
export function webdatasetTar(samples: readonly ImageSample[]): {
  bytes: Buffer;
  spans: [number, number][];
  /** Per sample, the offset of each member's header. */
  headers: number[][];
} {
  const pieces: Buffer[] = [];
  const spans: [number, number][] = [];
  const headers: number[][] = [];
  let offset = 0;
  for (const sample of samples) {
    const start = offset;
    const at: number[] = [];
    for (const [name, data] of [
      [`${sample.key}.${sample.image.extension}`, sample.image.bytes],
      [`${sample.key}.txt`, Buffer.from(sample.caption)],
      [`${sample.key}.json`, Buffer.from(sampleJson(record(sample), []))],
    ] as const) {
      at.push(offset);
      const padding = Buffer.alloc((512 - (data.length % 512)) % 512);
      pieces.push(tarHeader(name, data.length), data, padding);
      offset += 512 + data.length + padding.length;
    }
    spans.push([start, offset]);
    headers.push(at);
  }
  pieces.push(Buffer.alloc(1024));
  return { bytes: Buffer.concat(pieces), spans, headers };
}

function record(sample: ImageSample): SampleRecord {
  return {
    key: sample.key,
    url: `https://img.example/${sample.key}.${sample.image.extension}`,
    caption: sample.caption,
    status: "success",
    errorMessage: null,
    width: 64,
    height: 64,
    originalWidth: 64,
    originalHeight: 64,
    exif: null,
    sha256: null,
    md5: null,
    sha1: null,
    extension: sample.image.extension,
    extra: {},
  };
}

export function imageSamples(shardIndex: number, images: readonly FuzzImage[]): ImageSample[] {
  return images.map((image, index) => ({
    key: sampleKey(shardIndex, index, 100),
    caption: `a picture number ${index} of shard ${shardIndex}`,
    image,
  }));
}

/** A root holding download's outputs for these shards: each one's parquet and the tar given. */
export async function writeImageShards(
  root: string,
  shards: readonly { samples: readonly ImageSample[]; tar: Buffer }[],
): Promise<LocalStorage> {
  const storage = new LocalStorage(root);
  await initRoot(storage);
  for (const [index, shard] of shards.entries()) {
    const name = shardName(index);
    await writeParquet(
      storage,
      layout.imageParquet(name),
      metadataColumns([]),
      shard.samples.map(record),
    );
    await storage.writeAtomic(layout.imageTar(name), shard.tar);
  }
  return storage;
}

/** One lie in the header at `at` of the tar: the tar with it, and what it was. */
export function tarHeaderLie(
  tar: Buffer,
  at: number,
  random: FuzzRandom,
  otherName: string,
): { name: string; bytes: Buffer } {
  const bytes = Buffer.from(tar);
  const header = bytes.subarray(at, at + 512);
  const name = header.toString("latin1", 0, 100).replace(/\0.*$/s, "");
  const size = Number.parseInt(header.toString("latin1", 124, 135), 8);
  const octal = (value: number) => {
    header.write(`${value.toString(8).padStart(11, "0")}\0`, 124, "latin1");
    withChecksum(header);
  };
  switch (random.int(8)) {
    case 0:
      tarHeaderClaiming(name, 8n * 1024n ** 3n).copy(header);
      return { name: `${name} header claiming 8 GB`, bytes };
    case 1: {
      const claimed = size + 1 + random.int(20_000);
      octal(claimed);
      return { name: `${name} header claiming ${claimed} bytes of its ${size}`, bytes };
    }
    case 2: {
      const claimed = random.int(Math.max(1, size));
      octal(claimed);
      return { name: `${name} header claiming ${claimed} bytes of its ${size}`, bytes };
    }
    case 3: {
      const at = random.int(100);
      header[at] = (header[at] as number) ^ 0x20;
      return { name: `${name} header with a checksum that fails`, bytes };
    }
    case 4:
      header[156] = random.pick([0x35, 0x32, 0x4c, 0x78]);
      withChecksum(header);
      return { name: `${name} typed ${String.fromCharCode(header[156] as number)}`, bytes };
    case 5:
      header.fill(0, 0, 100);
      header.write(otherName, 0, "latin1");
      withChecksum(header);
      return { name: `${name} renamed ${otherName}`, bytes };
    case 6:
      header.write(`${"0".repeat(6)}zz9\0`, 124, "latin1");
      withChecksum(header);
      return { name: `${name} size field not octal`, bytes };
    default:
      header.fill(0);
      return { name: `${name} header zeroed (an end-of-archive block in the middle)`, bytes };
  }
}
