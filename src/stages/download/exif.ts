/**
 * EXIF as img2dataset stores it: one flat JSON object of `"<IFD> <Tag>": "<value as text>"`
 * (`"Image Make": "Canon"`, `"EXIF ExposureTime": "0.005"`), from the original image's EXIF
 * block. Binary values are kept only when they are short text (ExifVersion "0230").
 */
import readExif from "exif-reader";

const GROUP_NAMES: Record<string, string> = {
  Image: "Image",
  Photo: "EXIF",
  GPSInfo: "GPS",
  Iop: "Interoperability",
  Thumbnail: "Thumbnail",
};

/** Offsets to other IFDs: structure, not information. */
const POINTER_TAGS = new Set(["ExifTag", "GPSTag", "InteroperabilityTag"]);

/** The EXIF block (as sharp's metadata gives it) as JSON text; undefined when it cannot be read. */
export function exifJson(block: Buffer | undefined): string | undefined {
  if (block === undefined || block.length === 0) return "{}";
  let parsed: ReturnType<typeof readExif>;
  try {
    parsed = readExif(block);
  } catch {
    return undefined;
  }
  const flat: Record<string, string> = {};
  for (const [group, prefix] of Object.entries(GROUP_NAMES)) {
    const tags = (parsed as unknown as Record<string, Record<string, unknown> | undefined>)[group];
    if (tags === undefined) continue;
    for (const [tag, value] of Object.entries(tags)) {
      if (POINTER_TAGS.has(tag)) continue;
      const text = exifText(value);
      if (text !== undefined) flat[`${prefix} ${tag}`] = text;
    }
  }
  return JSON.stringify(flat);
}

function exifText(value: unknown): string | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "string") return value.replace(/\0+$/, "").trim();
  if (typeof value === "number" || typeof value === "bigint") return String(value);
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) return undefined;
    return value.toISOString().slice(0, 19).replace(/-/g, ":").replace("T", " ");
  }
  if (Buffer.isBuffer(value)) {
    const text = value.toString("latin1").replace(/\0+$/, "");
    return value.length <= 64 && /^[\x20-\x7e]*$/.test(text) ? text.trim() : undefined;
  }
  if (Array.isArray(value)) {
    const items = value.map(exifText);
    return items.includes(undefined) ? undefined : `[${items.join(", ")}]`;
  }
  return undefined;
}
