/**
 * The Atlas page's data: the root's `_atlas/` map (src/formats/atlas/) joined with the index's
 * current rows, as one compact binary answer (docs/http-api.md, `/api/atlas/:index/points`).
 *
 * The map names index rows of the generation it was built from; when the index has been rebuilt
 * since (`clipcrawl remove` renumbers rows), each point is found again by its sample key, and the
 * points whose sample is gone are dropped, so a removed sample never shows on the map.
 */
import { type AtlasManifest, readAtlas } from "../formats/atlas/atlas-files.js";
import type { ClipIndex } from "../formats/index/clip-index.js";
import type { DatasetStorage } from "../io/storage.js";

/** "CCAT": the first four bytes of the points answer. */
export const ATLAS_MAGIC = 0x54414343;
export const ATLAS_POINTS_VERSION = 1;
const HEADER_BYTES = 16;
/** A byte column's value for "no value". */
const NO_VALUE = 255;
const ATTRIBUTE_BATCH = 10_000;

/** What `/api/atlas/:index` says of the map. */
export interface AtlasDescription {
  index: string;
  points: number;
  bounds: AtlasManifest["bounds"];
  clusters: AtlasManifest["clusters"];
  /** The language byte's meaning: code of value i (LANGUAGE "" is "none"). */
  languages: string[];
  method: AtlasManifest["method"];
  /** true when the map was built from an earlier index generation and re-joined by key. */
  rejoined: boolean;
  createdWith: string;
}

export class AtlasMap {
  private constructor(
    readonly manifest: AtlasManifest,
    private readonly points: Float32Array,
    private readonly rows: Uint32Array,
    private readonly clusters: Uint16Array,
    private readonly languageOf: Uint8Array,
    private readonly languages: string[],
    private readonly punsafe: Uint8Array,
    /** punsafe as stored (NaN: none), for the safe-mode cut. */
    private readonly punsafeValues: Float32Array,
    private readonly aesthetic: Uint8Array,
    private readonly similarity: Uint8Array,
    private readonly rejoined: boolean,
  ) {}

  /** undefined when the root has no atlas. */
  static async load(
    storage: DatasetStorage,
    index: ClipIndex,
    rowOfKey: (key: string) => number | undefined,
  ): Promise<AtlasMap | undefined> {
    const atlas = await readAtlas(storage);
    if (atlas === undefined) return undefined;
    const current =
      atlas.manifest.indexGeneration === index.manifest.generation &&
      atlas.manifest.indexRows === index.size;
    let keep: number[] | undefined;
    let rows = atlas.rows;
    if (!current) {
      keep = [];
      const joined: number[] = [];
      atlas.keys.forEach((key, point) => {
        const row = key === "" ? undefined : rowOfKey(key);
        if (row === undefined) return;
        keep?.push(point);
        joined.push(row);
      });
      rows = Uint32Array.from(joined);
    } else if (atlas.rows.some((row) => row >= index.size)) {
      throw new Error(`the atlas names rows past the index's ${index.size}`);
    }
    const count = rows.length;
    const points = new Float32Array(count * 2);
    const clusters = new Uint16Array(count);
    for (let point = 0; point < count; point++) {
      const from = keep === undefined ? point : (keep[point] as number);
      points[point * 2] = atlas.points[from * 2] as number;
      points[point * 2 + 1] = atlas.points[from * 2 + 1] as number;
      clusters[point] = atlas.clusters[from] as number;
    }
    const languages: string[] = [];
    const languageCodes = new Map<string, number>();
    const languageOf = new Uint8Array(count);
    const punsafe = new Uint8Array(count);
    const punsafeValues = new Float32Array(count);
    const aesthetic = new Uint8Array(count);
    const similarity = new Uint8Array(count);
    for (let start = 0; start < count; start += ATTRIBUTE_BATCH) {
      const ids = Array.from(rows.subarray(start, start + ATTRIBUTE_BATCH));
      index
        .metadata(ids, ["LANGUAGE", "punsafe", "AESTHETIC_SCORE", "similarity"])
        .forEach((row, offset) => {
          const point = start + offset;
          const language =
            typeof row.LANGUAGE === "string" && row.LANGUAGE !== "" ? row.LANGUAGE : "none";
          let code = languageCodes.get(language);
          if (code === undefined && languages.length < NO_VALUE) {
            code = languages.length;
            languages.push(language);
            languageCodes.set(language, code);
          }
          languageOf[point] = code ?? NO_VALUE;
          punsafe[point] = quantise(row.punsafe, 0, 1);
          punsafeValues[point] = typeof row.punsafe === "number" ? row.punsafe : Number.NaN;
          aesthetic[point] = quantise(row.AESTHETIC_SCORE, 0, 10);
          similarity[point] = quantise(row.similarity, 0, 1);
        });
    }
    return new AtlasMap(
      atlas.manifest,
      points,
      rows,
      clusters,
      languageOf,
      languages,
      punsafe,
      punsafeValues,
      aesthetic,
      similarity,
      !current,
    );
  }

  get size(): number {
    return this.rows.length;
  }

  describe(index: string): AtlasDescription {
    return {
      index,
      points: this.size,
      bounds: this.manifest.bounds,
      clusters: this.manifest.clusters,
      languages: this.languages,
      method: this.manifest.method,
      rejoined: this.rejoined,
      createdWith: this.manifest.createdWith,
    };
  }

  /**
   * The points answer: a 16-byte header ("CCAT", version, count, 0), then column after column:
   * x, y (float32, interleaved), index row (uint32), cluster (uint16, padded to 4 bytes),
   * language, punsafe, aesthetic, similarity (one byte each, 255: none). Points whose punsafe is
   * above `maxPunsafe` are left out (a point with no punsafe passes, as in the index's filters).
   */
  encode(maxPunsafe: number | undefined): Buffer {
    const kept: number[] = [];
    for (let point = 0; point < this.size; point++) {
      // NaN (no punsafe) compares false: it passes.
      if (maxPunsafe === undefined || !((this.punsafeValues[point] as number) > maxPunsafe)) {
        kept.push(point);
      }
    }
    const count = kept.length;
    const clusterBytes = Math.ceil((count * 2) / 4) * 4;
    const buffer = Buffer.alloc(HEADER_BYTES + count * 8 + count * 4 + clusterBytes + count * 4);
    buffer.writeUInt32LE(ATLAS_MAGIC, 0);
    buffer.writeUInt32LE(ATLAS_POINTS_VERSION, 4);
    buffer.writeUInt32LE(count, 8);
    const xy = new Float32Array(buffer.buffer, buffer.byteOffset + HEADER_BYTES, count * 2);
    let offset = HEADER_BYTES + count * 8;
    const rows = new Uint32Array(buffer.buffer, buffer.byteOffset + offset, count);
    offset += count * 4;
    const clusters = new Uint16Array(buffer.buffer, buffer.byteOffset + offset, count);
    offset += clusterBytes;
    const bytes = [this.languageOf, this.punsafe, this.aesthetic, this.similarity].map(
      (column, at) => ({
        column,
        target: buffer.subarray(offset + at * count, offset + (at + 1) * count),
      }),
    );
    kept.forEach((point, at) => {
      xy[at * 2] = this.points[point * 2] as number;
      xy[at * 2 + 1] = this.points[point * 2 + 1] as number;
      rows[at] = this.rows[point] as number;
      clusters[at] = this.clusters[point] as number;
      for (const { column, target } of bytes) target[at] = column[point] as number;
    });
    return buffer;
  }
}

/** A score in [low, high] as 0 … 254; 255 when the row has none. */
function quantise(value: unknown, low: number, high: number): number {
  if (typeof value !== "number" || !Number.isFinite(value)) return NO_VALUE;
  const clamped = Math.min(Math.max(value, low), high);
  return Math.round(((clamped - low) / (high - low)) * 254);
}
