/**
 * The images the resize bench runs on, sized as the web serves them: most are page images of
 * tens of KB (300–800 px, JPEG of q75–90, some PNG graphics and WebP), with a long tail of
 * photos as cameras and photo sites serve them (1000–2400 px, and 3000–4600 px of several MB).
 *
 * The shares are fixed by index, not drawn, so every run and both sides see the same mix:
 * of each 100 images, 90 are page images (74 JPEG, 8 PNG, 8 WebP), 7 are photos of
 * 1000–2400 px and 3 are camera-sized photos of 3000–4600 px. LAION-5B's high-resolution subset
 * (both sides ≥ 1024 px) is 170 M of its 5.85 B pairs, about 3 %, so a tail of 10 % past 1000 px
 * is, if anything, heavier than the web's.
 */
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import sharp from "sharp";
import { seededUniform } from "../../src/demo/sample/wat-generator.js";
import { benchDataPath, photoLikePixels } from "../support.js";

export type WebImageKind = "page JPEG" | "page PNG" | "page WebP" | "photo" | "camera photo";

export interface WebImage {
  path: string;
  kind: WebImageKind;
}

/** Bumped whenever the recipe changes, so stale files on disk are not reused. */
const RECIPE = "v2";
const ASPECTS = [4 / 3, 3 / 2, 16 / 9, 1, 3 / 4, 2 / 3];

/** The kind of the image at this index: 74 JPEG, 8 PNG, 8 WebP, 7 photos, 3 camera photos in 100. */
function kindAt(index: number): WebImageKind {
  const slot = index % 100;
  if (slot % 33 === 32) return "camera photo";
  if (slot % 14 === 13) return "photo";
  if (slot % 11 === 5) return "page PNG";
  if (slot % 11 === 9) return "page WebP";
  return "page JPEG";
}

export async function ensureWebImages(count: number): Promise<WebImage[]> {
  const dir = join(await benchDataPath("download-web-mix", RECIPE, "x"), "..");
  const existing = new Set(await readdir(dir));
  const random = seededUniform(17);
  const images: WebImage[] = [];
  for (let index = 0; index < count; index++) {
    const kind = kindAt(index);
    const aspect = ASPECTS[index % ASPECTS.length] as number;
    // Drawn for every index, so an image's size does not depend on which files exist already.
    const draw = random();
    const quality = random();
    const extension = kind === "page PNG" ? "png" : kind === "page WebP" ? "webp" : "jpg";
    const name = `${String(index).padStart(4, "0")}.${extension}`;
    const path = join(dir, name);
    images.push({ path, kind });
    if (existing.has(name) && existsSync(path)) continue;
    await writeWebImage(path, kind, aspect, draw, quality, seededUniform(1000 + index));
  }
  return images;
}

async function writeWebImage(
  path: string,
  kind: WebImageKind,
  aspect: number,
  draw: number,
  quality: number,
  random: () => number,
): Promise<void> {
  switch (kind) {
    case "camera photo": {
      const photo = await photoLikePixels(random, {
        long: 3000 + Math.floor(draw * 1600),
        aspect,
        cell: 64,
        grain: 10,
      });
      await raw(photo)
        .jpeg({ quality: 90 + Math.floor(quality * 6) })
        .toFile(path);
      return;
    }
    case "photo": {
      const photo = await photoLikePixels(random, {
        long: 1000 + Math.floor(draw * 1400),
        aspect,
        cell: 48,
        grain: 10,
      });
      await raw(photo)
        .jpeg({ quality: 85 + Math.floor(quality * 8) })
        .toFile(path);
      return;
    }
    case "page PNG": {
      // Graphics, logos and product shots on transparent ground: smooth, little grain, and half
      // of them with an alpha channel.
      const long = 300 + Math.floor(draw * 500);
      const photo = await photoLikePixels(random, { long, aspect, cell: 96, grain: 0 });
      // Flat areas of few colours, as drawn graphics have, not a photo's every-pixel gradient.
      for (let offset = 0; offset < photo.pixels.length; offset++) {
        photo.pixels[offset] = (photo.pixels[offset] as number) & 0xe0;
      }
      const image =
        quality < 0.5
          ? raw(photo).joinChannel(alphaMask(photo.width, photo.height), {
              raw: { width: photo.width, height: photo.height, channels: 1 },
            })
          : raw(photo);
      await image.png({ compressionLevel: 6 }).toFile(path);
      return;
    }
    default: {
      // A page image is a photo the site scaled down for the page: drawn at twice the size and
      // scaled, so its grain is smoothed as a real resized photo's is.
      const long = 300 + Math.floor(draw * 500);
      const photo = await photoLikePixels(random, { long: long * 2, aspect, cell: 96, grain: 12 });
      const width = aspect >= 1 ? long : Math.round(long * aspect);
      const height = aspect >= 1 ? Math.round(long / aspect) : long;
      const scaled = raw(photo).resize(width, height, { fit: "fill" });
      const encoded =
        kind === "page WebP"
          ? scaled.webp({ quality: 75 + Math.floor(quality * 11) })
          : scaled.jpeg({ quality: 75 + Math.floor(quality * 16) });
      await encoded.toFile(path);
    }
  }
}

function raw(photo: { pixels: Buffer; width: number; height: number }) {
  return sharp(photo.pixels, { raw: { width: photo.width, height: photo.height, channels: 3 } });
}

/** An opaque disc on transparent ground, as a cut-out product shot or a round logo. */
function alphaMask(width: number, height: number): Buffer {
  const mask = Buffer.alloc(width * height);
  const radius = Math.min(width, height) * 0.45;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const distance = Math.hypot(x - width / 2, y - height / 2);
      mask[y * width + x] = distance <= radius ? 255 : distance <= radius + 2 ? 128 : 0;
    }
  }
  return mask;
}

/** The mix as a table: per kind, how many, their long sides and file sizes. */
export async function describeWebImages(images: WebImage[]): Promise<string> {
  const byKind = new Map<WebImageKind, { long: number; bytes: number }[]>();
  for (const image of images) {
    const { width = 0, height = 0 } = await sharp(image.path).metadata();
    const shapes = byKind.get(image.kind) ?? [];
    shapes.push({ long: Math.max(width, height), bytes: (await stat(image.path)).size });
    byKind.set(image.kind, shapes);
  }
  const kb = (bytes: number) => `${Math.round(bytes / 1024)} KB`;
  const lines = [...byKind].map(([kind, shapes]) => {
    const sizes = shapes.map((shape) => shape.bytes).sort((a, b) => a - b);
    const longs = shapes.map((shape) => shape.long);
    return `  ${kind}: ${shapes.length}, ${Math.min(...longs)}–${Math.max(...longs)} px, median ${kb(sizes[sizes.length >> 1] as number)} (${kb(sizes[0] as number)}–${kb(sizes[sizes.length - 1] as number)})`;
  });
  const all = images.length;
  const total = [...byKind.values()].flat().reduce((sum, shape) => sum + shape.bytes, 0);
  const sorted = [...byKind.values()]
    .flat()
    .map((shape) => shape.bytes)
    .sort((a, b) => a - b);
  lines.push(`  all: ${all}, median ${kb(sorted[all >> 1] as number)}, mean ${kb(total / all)}`);
  return lines.join("\n");
}
