/**
 * Whether image bytes are safe to decode, judged from their header before any pixel is decoded:
 * the one rule every decoder in clipcrawl applies (download's resizer, embed's preprocessing, the
 * pixel score heads, serve's image queries and thumbnails).
 *
 * - Raster formats only, the ones download accepts (as img2dataset's decoder): an SVG or a PDF is
 *   a document that libvips would render at whatever size it declares, so it is refused whatever
 *   its file name says.
 * - At most `maxPixels` pixels (width × height of one frame): a few hundred bytes of JPEG can
 *   declare 16000 × 16000, which decodes to 768 MB.
 *
 * The decoders then pass `decodeOptions(maxPixels)` to sharp, whose own `limitInputPixels` guards
 * the decode itself should a header and the decoder disagree.
 *
 * JPEG and PNG headers are read in JavaScript (raster-header.ts); every other format, and any
 * header that reader is unsure of, is read by libvips.
 */
import sharp, { type Metadata, type SharpOptions } from "sharp";
import { ClipcrawlError } from "../errors.js";
import { asBuffer, decodeError } from "./image-format.js";
import { DEFAULT_MAX_IMAGE_PIXELS } from "./image-limits.js";
import { readRasterHeader } from "./raster-header.js";

export { DEFAULT_MAX_IMAGE_PIXELS };

/** The raster formats a web image comes in, as sharp names them (AVIF is `heif`). */
export const RASTER_IMAGE_FORMATS: ReadonlySet<string> = new Set([
  "jpeg",
  "png",
  "webp",
  "gif",
  "tiff",
  "avif",
  "heif",
]);

export type ImageRefusal = "undecodable" | "unsupported_format" | "decompression_bomb";

/** What the decoders need to know of an image before decoding it. */
export interface ImageHeader {
  /** sharp's name for the format (AVIF is `heif`). */
  format: string;
  /** Of one frame, as stored, before the EXIF orientation is applied. */
  width: number;
  height: number;
  /** EXIF orientation, 1–8; 1 when there is none. */
  orientation: number;
  hasAlpha: boolean;
  /** The EXIF block, when there is one. */
  exif: Buffer | undefined;
  /** HEIF's codec (`av1` for AVIF, `hevc` for HEIC), as libvips reports it. */
  compression: string | undefined;
}

export type ImageHeaderCheck =
  | { ok: true; header: ImageHeader }
  | { ok: false; refusal: ImageRefusal; error: string };

/** Thrown by decoders for an image the header check refuses; `message` is the reason. */
export class ImageRefusedError extends ClipcrawlError {
  readonly refusal: ImageRefusal;

  constructor(refusal: ImageRefusal, message: string) {
    super("CC_IMAGE_REFUSED", message);
    this.name = "ImageRefusedError";
    this.refusal = refusal;
  }
}

/** Whether a decoder's error is a refusal of a readable header (a bomb, an SVG). */
export function isRefusal(error: unknown): boolean {
  return error instanceof ImageRefusedError && error.refusal !== "undecodable";
}

/**
 * Reads the header only. The messages are download's (`unsupported image format svg`,
 * `decompression bomb: 16000x16000 pixels, over the limit of 89478485`), so every stage counts a
 * refused image under the same reason.
 */
export async function checkImageHeader(
  bytes: Uint8Array,
  maxPixels: number,
): Promise<ImageHeaderCheck> {
  const read = readRasterHeader(asBuffer(bytes)) ?? (await readWithLibvips(bytes));
  if ("refusal" in read) return read;
  const header = read;
  if (!RASTER_IMAGE_FORMATS.has(header.format)) {
    return {
      ok: false,
      refusal: "unsupported_format",
      error: `unsupported image format ${header.format}`,
    };
  }
  const { width, height } = header;
  if (!(width > 0) || !(height > 0)) {
    return { ok: false, refusal: "undecodable", error: "invalid image: no size in its header" };
  }
  if (width * height > maxPixels) {
    return {
      ok: false,
      refusal: "decompression_bomb",
      error: `decompression bomb: ${width}x${height} pixels, over the limit of ${maxPixels}`,
    };
  }
  return { ok: true, header: { compression: undefined, ...header } };
}

async function readWithLibvips(
  bytes: Uint8Array,
): Promise<ImageHeader | { ok: false; refusal: ImageRefusal; error: string }> {
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { failOn: "error", limitInputPixels: false }).metadata();
  } catch (error) {
    return { ok: false, refusal: "undecodable", error: decodeError(error, asBuffer(bytes)) };
  }
  return {
    format: metadata.format,
    width: metadata.width,
    // One frame is what a decoder without `pages` decodes.
    height: metadata.pageHeight ?? metadata.height,
    orientation: metadata.orientation ?? 1,
    hasAlpha: metadata.hasAlpha,
    exif: metadata.exif,
    compression: metadata.compression,
  };
}

/** checkImageHeader for decoders that throw: an ImageRefusedError when refused. */
export async function assertSafeToDecode(
  bytes: Uint8Array,
  maxPixels: number,
): Promise<ImageHeader> {
  const checked = await checkImageHeader(bytes, maxPixels);
  if (!checked.ok) throw new ImageRefusedError(checked.refusal, checked.error);
  return checked.header;
}

/** sharp's input options for a decode the header check allowed. */
export function decodeOptions(maxPixels: number): SharpOptions {
  return { failOn: "error", limitInputPixels: maxPixels };
}
