/**
 * Tiny inputs that cost a reader far more than their size: a JPEG and a PNG whose headers declare
 * more pixels than the decompression-bomb limit, an SVG (a document libvips would render at the
 * size it declares) meant to be saved under an image's name, and a tar header claiming any size.
 */
import { deflateSync } from "node:zlib";
import sharp from "sharp";
import { tarHeader } from "../../src/io/tar-writer.js";

/** A ustar header for `name` whose size field says `size` (GNU base-256), checksum recomputed. */
export function tarHeaderClaiming(name: string, size: bigint): Buffer {
  const header = tarHeader(name, 0);
  const field = header.subarray(124, 136);
  field.fill(0);
  field[0] = 0x80;
  let rest = size;
  for (let index = field.length - 1; index >= 1; index--) {
    field[index] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return withChecksum(header);
}

/** The header with its checksum field rewritten for its current bytes. */
export function withChecksum(header: Buffer): Buffer {
  header.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
  return header;
}

/** A real 16 × 16 JPEG whose frame header is rewritten to declare width × height. */
export async function jpegDeclaring(width: number, height: number): Promise<Buffer> {
  const small = await sharp({
    create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 30, b: 30 } },
  })
    .jpeg({ quality: 50 })
    .toBuffer();
  const bytes = Buffer.from(small);
  // SOF0 (FFC0) or SOF2 (FFC2): length(2), precision(1), height(2), width(2).
  for (let at = 2; at < bytes.length - 9; at++) {
    if (bytes[at] === 0xff && (bytes[at + 1] === 0xc0 || bytes[at + 1] === 0xc2)) {
      bytes.writeUInt16BE(height, at + 5);
      bytes.writeUInt16BE(width, at + 7);
      return bytes;
    }
  }
  throw new Error("no SOF marker in the JPEG sharp wrote");
}

/** A valid 1-bit greyscale PNG of width × height black pixels: a few KB of deflated zeros. */
export function pngBomb(width: number, height: number): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 1; // bit depth
  header[9] = 0; // greyscale
  const rows = deflateSync(Buffer.alloc(height * (1 + Math.ceil(width / 8))), { level: 9 });
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", rows),
    pngChunk("IEND", Buffer.alloc(0)),
  ]);
}

/** An SVG declaring width × height, filled: what a server may send for a `.jpg` URL. */
export function svgDeclaring(width: number, height: number): Buffer {
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="red"/></svg>`,
  );
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

function crc32(bytes: Buffer): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return (crc ^ 0xffffffff) >>> 0;
}
