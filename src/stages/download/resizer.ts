/**
 * Decoding, checking, orienting, resizing and encoding one image with sharp (libvips), with
 * img2dataset's resize modes and size rules. The geometry is computed here, not by sharp, with
 * the same rounding as img2dataset (albumentations), so sizes match it exactly. The header must
 * pass the rule every decoder shares (src/io/image-header.ts: a raster format, within the pixel
 * limit) before any pixel is decoded (decompression bombs, SVGs).
 */
import { availableParallelism } from "node:os";
import sharp, { type Sharp } from "sharp";
import { decodeError, sniffFormat } from "../../io/image-format.js";
import { checkImageHeader, decodeOptions, type ImageHeader } from "../../io/image-header.js";
import type { DownloadConfig } from "./config.js";
import { exifJson } from "./exif.js";

export type ResizerOptions = Pick<
  DownloadConfig,
  | "imageSize"
  | "resizeMode"
  | "resizeOnlyIfBigger"
  | "resizeKernel"
  | "encodeFormat"
  | "encodeQuality"
  | "skipReencode"
  | "disableAllReencoding"
  | "minImageSize"
  | "maxImageArea"
  | "maxAspectRatio"
  | "maxImagePixels"
  | "extractExif"
>;

export type ResizeOutcome =
  | {
      ok: true;
      image: Buffer;
      /** File extension of `image`: the encode format, or the original's when stored as is. */
      extension: string;
      width: number | null;
      height: number | null;
      originalWidth: number | null;
      originalHeight: number | null;
      exif: string | null;
    }
  | { ok: false; error: string };

export interface Geometry {
  resize?: { width: number; height: number };
  crop?: { left: number; top: number; width: number; height: number };
  pad?: { top: number; bottom: number; left: number; right: number };
}

const WHITE = { r: 255, g: 255, b: 255, alpha: 1 };

const EXTENSION_OF_FORMAT: Record<string, string> = {
  jpeg: "jpg",
  png: "png",
  webp: "webp",
  gif: "gif",
  tiff: "tiff",
  avif: "avif",
  heif: "heic",
};

export class ImageResizer {
  constructor(private readonly options: ResizerOptions) {
    // Every image is seen once: libvips' operation cache would only hold memory.
    sharp.cache(false);
    sharp.concurrency(vipsThreadsPerImage());
  }

  async resize(bytes: Buffer): Promise<ResizeOutcome> {
    const options = this.options;
    if (options.disableAllReencoding) return this.storeAsIs(bytes);
    const checked = await checkImageHeader(bytes, options.maxImagePixels);
    if (!checked.ok) return { ok: false, error: checked.error };
    const stored = checked.header;
    const rotated = stored.orientation >= 5;
    const originalWidth = rotated ? stored.height : stored.width;
    const originalHeight = rotated ? stored.width : stored.height;
    const rejection = sizeRejection(originalWidth, originalHeight, options);
    if (rejection !== undefined) return { ok: false, error: rejection };
    const exif = options.extractExif ? (exifJson(stored.exif) ?? null) : null;

    const geometry = planGeometry(originalWidth, originalHeight, options);
    const unchanged =
      geometry.resize === undefined &&
      geometry.pad === undefined &&
      geometry.crop === undefined &&
      stored.orientation === 1;
    if (
      options.skipReencode &&
      unchanged &&
      EXTENSION_OF_FORMAT[stored.format] === extensionOf(options)
    ) {
      return {
        ok: true,
        image: bytes,
        extension: extensionOf(options),
        width: originalWidth,
        height: originalHeight,
        originalWidth,
        originalHeight,
        exif,
      };
    }
    try {
      const { data, info } = await this.pipeline(bytes, stored, geometry).toBuffer({
        resolveWithObject: true,
      });
      return {
        ok: true,
        image: data,
        extension: extensionOf(options),
        width: info.width,
        height: info.height,
        originalWidth,
        originalHeight,
        exif,
      };
    } catch (error) {
      return { ok: false, error: decodeError(error, bytes) };
    }
  }

  private pipeline(bytes: Buffer, stored: ImageHeader, geometry: Geometry): Sharp {
    const options = this.options;
    let image = sharp(bytes, {
      ...decodeOptions(options.maxImagePixels),
      autoOrient: true,
      sequentialRead: true,
    });
    // As img2dataset: transparent pixels become white, not black.
    if (stored.hasAlpha) image = image.flatten({ background: WHITE });
    if (geometry.resize !== undefined) {
      image = image.resize(geometry.resize.width, geometry.resize.height, {
        fit: "fill",
        kernel: options.resizeKernel,
      });
    }
    if (geometry.crop !== undefined) image = image.extract(geometry.crop);
    if (geometry.pad !== undefined) image = image.extend({ ...geometry.pad, background: WHITE });
    // CMYK, greyscale and 16-bit inputs all end as 8-bit sRGB, as img2dataset's BGR images.
    image = image.toColourspace("srgb");
    switch (options.encodeFormat) {
      case "jpg":
        return image.jpeg({ quality: options.encodeQuality, optimiseCoding: false });
      case "png":
        return image.png({
          compressionLevel: options.encodeQuality <= 9 ? options.encodeQuality : 6,
        });
      case "webp":
        return image.webp({ quality: options.encodeQuality });
    }
  }

  private async storeAsIs(bytes: Buffer): Promise<ResizeOutcome> {
    const format = sniffFormat(bytes);
    return {
      ok: true,
      image: bytes,
      extension: format ?? extensionOf(this.options),
      width: null,
      height: null,
      originalWidth: null,
      originalHeight: null,
      exif: null,
    };
  }
}

/**
 * sharp runs each image on one of libuv's pool threads (UV_THREADPOOL_SIZE, 4 by default, shared
 * by every worker thread of the process), and libvips may spread one image over several threads.
 * One thread an image is the cheapest when the pool has a thread a core; with a smaller pool
 * each image gets enough libvips threads for the pool to still cover every core. The pool size
 * cannot be raised from inside an ES module: the module loader has started the pool before any
 * of our code runs, so it is read here, not set.
 */
function vipsThreadsPerImage(): number {
  const poolSize = Number(process.env.UV_THREADPOOL_SIZE) || 4;
  return Math.max(1, Math.ceil(availableParallelism() / poolSize));
}

function extensionOf(options: ResizerOptions): string {
  return options.encodeFormat;
}

/** img2dataset's checks on the original size, with its messages. */
function sizeRejection(width: number, height: number, options: ResizerOptions): string | undefined {
  if (Math.min(width, height) < options.minImageSize) return "image too small";
  if (options.maxImageArea > 0 && width * height > options.maxImageArea) {
    return "image area too large";
  }
  if (
    options.maxAspectRatio > 0 &&
    Math.max(width, height) / Math.min(width, height) > options.maxAspectRatio
  ) {
    return "aspect ratio too large";
  }
  return undefined;
}

/** What img2dataset's resizer does to an image of this size, as a resize, crop and pad. */
export function planGeometry(
  width: number,
  height: number,
  options: Pick<ResizerOptions, "imageSize" | "resizeMode" | "resizeOnlyIfBigger">,
): Geometry {
  const size = options.imageSize;
  const scaleTo = (target: number, side: number) => ({
    width: roundHalfEven((width * target) / side),
    height: roundHalfEven((height * target) / side),
  });
  switch (options.resizeMode) {
    case "no":
      return {};
    case "keep_ratio": {
      const shortSide = Math.min(width, height);
      if (options.resizeOnlyIfBigger && shortSide <= size) return {};
      return shortSide === size ? {} : { resize: scaleTo(size, shortSide) };
    }
    case "keep_ratio_largest": {
      const longSide = Math.max(width, height);
      if (options.resizeOnlyIfBigger && longSide <= size) return {};
      return longSide === size ? {} : { resize: scaleTo(size, longSide) };
    }
    case "center_crop": {
      const shortSide = Math.min(width, height);
      if (options.resizeOnlyIfBigger && shortSide <= size) return {};
      const resized = shortSide === size ? { width, height } : scaleTo(size, shortSide);
      const geometry: Geometry = shortSide === size ? {} : { resize: resized };
      if (resized.width !== size || resized.height !== size) {
        geometry.crop = {
          left: Math.floor((resized.width - size) / 2),
          top: Math.floor((resized.height - size) / 2),
          width: size,
          height: size,
        };
      }
      return geometry;
    }
    case "border": {
      const longSide = Math.max(width, height);
      if (options.resizeOnlyIfBigger && longSide <= size) return {};
      const resized = longSide === size ? { width, height } : scaleTo(size, longSide);
      const geometry: Geometry = longSide === size ? {} : { resize: resized };
      if (resized.width !== size || resized.height !== size) {
        const top = Math.trunc((size - resized.height) / 2);
        const left = Math.trunc((size - resized.width) / 2);
        geometry.pad = {
          top,
          bottom: size - resized.height - top,
          left,
          right: size - resized.width - left,
        };
      }
      return geometry;
    }
  }
}

/** Python 3's round(), which albumentations uses for the resized sides. */
export function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (Math.abs(fraction - 0.5) > 1e-9) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}
