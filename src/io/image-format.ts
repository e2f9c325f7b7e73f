/**
 * What undecodable image bytes are, in words that do not change from run to run. libvips keeps
 * one error buffer for all threads, so its own message can come back empty or mixed with another
 * image's; the download and embed stages both turn a failed decode into one of these reasons, so
 * the same input always gets the same error_message.
 */

import { ClipcrawlError } from "../errors.js";

/** A Buffer view of image bytes (no copy); empty when there are none. */
export function asBuffer(bytes: Uint8Array | undefined): Buffer {
  return bytes === undefined
    ? Buffer.alloc(0)
    : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The format of undecoded bytes, by their magic numbers. */
export function sniffFormat(bytes: Buffer): string | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff)
    return "jpg";
  if (bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return "png";
  }
  if (bytes.toString("latin1", 0, 4) === "RIFF" && bytes.toString("latin1", 8, 12) === "WEBP") {
    return "webp";
  }
  if (bytes.toString("latin1", 0, 4) === "GIF8") return "gif";
  return undefined;
}

/**
 * A stable reason for a failed decode: only sharp's own wording is trusted, and truncation is
 * recognised from the bytes.
 */
export function decodeError(error: unknown, bytes: Buffer): string {
  // image-header.ts's refusal (a bomb, an SVG) already says why, in download's words.
  if (error instanceof ClipcrawlError && error.code === "CC_IMAGE_REFUSED") return error.message;
  const message = error instanceof Error ? error.message : String(error);
  if (/unsupported image format/i.test(message)) return "invalid image: unsupported format";
  if (/exceeds pixel limit/i.test(message)) return "decompression bomb: over the pixel limit";
  if (isTruncated(bytes)) return "truncated image";
  if (/corrupt header/i.test(message)) return "invalid image: corrupt header";
  return "invalid image: corrupt data";
}

/** Whether the bytes stop before their format's end marker. */
export function isTruncated(bytes: Buffer): boolean {
  switch (sniffFormat(bytes)) {
    case "jpg": {
      let end = bytes.length;
      while (end > 2 && bytes[end - 1] === 0) end--;
      return !(bytes[end - 2] === 0xff && bytes[end - 1] === 0xd9);
    }
    case "png":
      return bytes.lastIndexOf("IEND", undefined, "latin1") < 0;
    case "gif":
      return bytes[bytes.length - 1] !== 0x3b;
    case "webp":
      return bytes.length < bytes.readUInt32LE(4) + 8;
    default:
      return false;
  }
}
