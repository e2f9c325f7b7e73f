/**
 * The Atlas map's points as `/api/atlas/:index/points` sends them (docs/http-api.md), decoded
 * into typed arrays without copying, and the colour encodings drawn from them.
 */

const MAGIC = 0x54414343; // "CCAT"
const VERSION = 1;
const HEADER_BYTES = 16;
/** A byte column's "no value". */
export const NO_VALUE = 255;

export interface AtlasPoints {
  count: number;
  /** x, y interleaved, in the atlas's own coordinates. */
  xy: Float32Array;
  /** The index row of each point (what `/metadata`, exports and `/knn-service` call its id). */
  rows: Uint32Array;
  clusters: Uint16Array;
  language: Uint8Array;
  /** punsafe, aesthetic (÷10) and similarity as 0 … 254 over [0, 1]; 255: none. */
  punsafe: Uint8Array;
  aesthetic: Uint8Array;
  similarity: Uint8Array;
}

export function decodeAtlasPoints(buffer: ArrayBuffer): AtlasPoints {
  const header = new DataView(buffer, 0, Math.min(buffer.byteLength, HEADER_BYTES));
  if (
    buffer.byteLength < HEADER_BYTES ||
    header.getUint32(0, true) !== MAGIC ||
    header.getUint32(4, true) !== VERSION
  ) {
    throw new Error("the server's atlas points are not in a format this page reads");
  }
  const count = header.getUint32(8, true);
  const clusterBytes = Math.ceil((count * 2) / 4) * 4;
  const expected = HEADER_BYTES + count * 8 + count * 4 + clusterBytes + count * 4;
  if (buffer.byteLength !== expected) {
    throw new Error(`atlas points: ${buffer.byteLength} bytes, ${expected} expected`);
  }
  let offset = HEADER_BYTES;
  const xy = new Float32Array(buffer, offset, count * 2);
  offset += count * 8;
  const rows = new Uint32Array(buffer, offset, count);
  offset += count * 4;
  const clusters = new Uint16Array(buffer, offset, count);
  offset += clusterBytes;
  const byteColumn = (at: number) => new Uint8Array(buffer, offset + at * count, count);
  return {
    count,
    xy,
    rows,
    clusters,
    language: byteColumn(0),
    punsafe: byteColumn(1),
    aesthetic: byteColumn(2),
    similarity: byteColumn(3),
  };
}

export type ColourBy = "cluster" | "language" | "punsafe" | "aesthetic" | "similarity";

export const COLOUR_BY: [ColourBy, string][] = [
  ["cluster", "Cluster"],
  ["language", "Language"],
  ["punsafe", "punsafe"],
  ["aesthetic", "Aesthetic score"],
  ["similarity", "Image–text similarity"],
];

/** Categories beyond the palette's share its last colour ("other"). */
export const CATEGORY_PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
  "#8cd17d",
  "#86bcb6",
  "#d37295",
  "#fabfd2",
  "#a0cbe8",
  "#888888",
];

/** Viridis, sampled: the continuous scores from low (dark) to high (yellow). */
export const VALUE_RAMP = [
  "#440154",
  "#482878",
  "#3e4989",
  "#31688e",
  "#26828e",
  "#1f9e89",
  "#35b779",
  "#6ece58",
  "#b5de2b",
  "#fde725",
];

/** Points with no score are drawn in this grey whatever the encoding. */
export const NO_VALUE_COLOUR = "#bbbbbb";

/**
 * The point data for one encoding: `z` is a category (an index into the palette) for cluster and
 * language; for the scores, a bin of the ramp (rescaled to the points' own range for
 * similarity), with one extra bin for "no score".
 */
export function colourCategories(
  points: AtlasPoints,
  by: ColourBy,
): {
  categories: Uint16Array;
  palette: string[];
} {
  const categories = new Uint16Array(points.count);
  const last = CATEGORY_PALETTE.length - 1;
  if (by === "cluster" || by === "language") {
    const source = by === "cluster" ? points.clusters : points.language;
    for (let point = 0; point < points.count; point++) {
      const value = source[point] as number;
      categories[point] = by === "language" && value === NO_VALUE ? last : Math.min(value, last);
    }
    return { categories, palette: CATEGORY_PALETTE };
  }
  const source = points[by];
  let low = 0;
  let high = 254;
  if (by === "similarity") {
    low = 254;
    high = 0;
    for (const value of source) {
      if (value === NO_VALUE) continue;
      low = Math.min(low, value);
      high = Math.max(high, value);
    }
  }
  const bins = VALUE_RAMP.length;
  for (let point = 0; point < points.count; point++) {
    const value = source[point] as number;
    categories[point] =
      value === NO_VALUE
        ? bins
        : Math.min(bins - 1, Math.floor(((value - low) / Math.max(high - low, 1)) * bins));
  }
  return { categories, palette: [...VALUE_RAMP, NO_VALUE_COLOUR] };
}
