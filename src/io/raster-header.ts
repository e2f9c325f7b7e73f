/**
 * The header of a JPEG or PNG read in JavaScript: size, EXIF orientation, alpha and the EXIF
 * block, what sharp's `metadata()` would report for them. Most web images are one of the two, and
 * asking libvips instead costs a trip to the thread pool and a decoder set up and torn down, a
 * noticeable share of resizing a page-sized image.
 *
 * Anything this reader is not sure of (another format, a segment that runs past the end, an
 * EXIF block it cannot walk, a PNG with an eXIf chunk) gives `undefined`, and the caller asks
 * libvips, so a hostile or unusual header is judged exactly as before.
 */

export interface RasterHeader {
  /** sharp's name for the format: "jpeg" or "png". */
  format: "jpeg" | "png";
  /** As stored, before the EXIF orientation is applied. */
  width: number;
  height: number;
  /** EXIF orientation, 1–8; 1 when there is none. */
  orientation: number;
  hasAlpha: boolean;
  /** The EXIF block as libvips hands it over (starting "Exif\0\0"), when there is one. */
  exif: Buffer | undefined;
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const EXIF_PREFIX = Buffer.from("Exif\0\0", "latin1");
const ORIENTATION_TAG = 0x0112;

export function readRasterHeader(bytes: Buffer): RasterHeader | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return readJpegHeader(bytes);
  }
  if (bytes.length >= 33 && bytes.subarray(0, 8).equals(PNG_SIGNATURE)) return readPngHeader(bytes);
  return undefined;
}

/** Markers up to the start of scan: the frame header's size, and the first Exif APP1 segment. */
function readJpegHeader(bytes: Buffer): RasterHeader | undefined {
  let offset = 2;
  let frame: { width: number; height: number } | undefined;
  let exif: Buffer | undefined;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1] as number;
    if (marker === 0xff) {
      offset++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    }
    if (marker === 0xd9) return undefined;
    const length = bytes.readUInt16BE(offset + 2);
    const end = offset + 2 + length;
    if (length < 2 || end > bytes.length) return undefined;
    if (marker === 0xda) break;
    if (isStartOfFrame(marker)) {
      if (length < 8 || frame !== undefined) return undefined;
      frame = { height: bytes.readUInt16BE(offset + 5), width: bytes.readUInt16BE(offset + 7) };
    } else if (marker === 0xe1 && exif === undefined) {
      const data = bytes.subarray(offset + 4, end);
      if (data.subarray(0, EXIF_PREFIX.length).equals(EXIF_PREFIX)) exif = data;
    }
    offset = end;
  }
  // No frame before the scan, or a height left to a DNL marker: libvips decides.
  if (frame === undefined || frame.width === 0 || frame.height === 0) return undefined;
  const orientation = exif === undefined ? 1 : exifOrientation(exif);
  if (orientation === undefined) return undefined;
  return { format: "jpeg", ...frame, orientation, hasAlpha: false, exif };
}

/** SOF0–SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range. */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/**
 * The orientation in IFD0 of an EXIF block; 1 when the tag is absent or out of range (as
 * libvips reads it), undefined when the block cannot be walked.
 */
function exifOrientation(exif: Buffer): number | undefined {
  const tiff = exif.subarray(EXIF_PREFIX.length);
  if (tiff.length < 8) return undefined;
  const order = tiff.toString("latin1", 0, 2);
  if (order !== "II" && order !== "MM") return undefined;
  const little = order === "II";
  const u16 = (at: number) => (little ? tiff.readUInt16LE(at) : tiff.readUInt16BE(at));
  const u32 = (at: number) => (little ? tiff.readUInt32LE(at) : tiff.readUInt32BE(at));
  if (u16(2) !== 42) return undefined;
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > tiff.length) return undefined;
  const entries = u16(ifd);
  if (ifd + 2 + entries * 12 > tiff.length) return undefined;
  for (let index = 0; index < entries; index++) {
    const entry = ifd + 2 + index * 12;
    if (u16(entry) !== ORIENTATION_TAG) continue;
    // SHORT, one value, held in the entry itself.
    if (u16(entry + 2) !== 3 || u32(entry + 4) !== 1) return undefined;
    const value = u16(entry + 8);
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

/** IHDR, then the chunks before the image data: tRNS makes an alpha channel, eXIf goes to libvips. */
function readPngHeader(bytes: Buffer): RasterHeader | undefined {
  if (bytes.readUInt32BE(8) !== 13 || bytes.toString("latin1", 12, 16) !== "IHDR") return undefined;
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  const colourType = bytes[25] as number;
  if (width === 0 || height === 0) return undefined;
  let hasAlpha = colourType === 4 || colourType === 6;
  let offset = 33;
  while (offset + 8 <= bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString("latin1", offset + 4, offset + 8);
    if (type === "IDAT")
      return { format: "png", width, height, orientation: 1, hasAlpha, exif: undefined };
    if (type === "eXIf" || type === "IEND") return undefined;
    if (type === "tRNS") hasAlpha = true;
    offset += 12 + length;
  }
  return undefined;
}
