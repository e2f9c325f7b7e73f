/**
 * `_atlas/`: a 2-D map of the index's image embeddings (docs/formats.md, "Atlas"). Written by
 * `clipcrawl index` after its commit (src/stages/index/atlas-build.ts), read by `serve` for the
 * web UI's Atlas page.
 *
 * A build writes its four files under a name of its own (`aNNNNNN-…`) and the manifest last, so
 * a reader sees a whole atlas or the previous one. Point i of the map is index row `rows[i]` of
 * the index generation the manifest names; its sample key `keys[i]` finds it again after the
 * index is rebuilt (a removal renumbers rows).
 */

import { layout } from "../../io/layout.js";
import type { DatasetStorage } from "../../io/storage.js";

export const ATLAS_FORMAT_VERSION = 1;

export interface AtlasCluster {
  id: number;
  /** Its most frequent distinctive caption words, joined with " · ". */
  label: string;
  words: string[];
  /** The cluster's centre on the map. */
  x: number;
  y: number;
  points: number;
}

/** How the map was made, with each step's wall seconds. */
export interface AtlasMethod {
  /** PCA components the layout ran on (0: the embeddings as they are). */
  pcaDimensions: number;
  /** Points laid out by UMAP; the others are placed from their nearest laid-out neighbours. */
  layoutSample: number;
  umap: { nNeighbors: number; minDist: number; nEpochs: number };
  /** Laid-out neighbours whose similarity-weighted mean places a point. */
  placementNeighbors: number;
  seed: number;
  seconds: {
    read: number;
    pca: number;
    umap: number;
    placement: number;
    clusters: number;
    total: number;
  };
}

export interface AtlasManifest {
  format: number;
  /** The build's name, the prefix of its files. */
  build: string;
  /** Digest of the settings the atlas was built with: when they change, it is rebuilt. */
  identity: string;
  indexGeneration: number;
  indexRows: number;
  points: number;
  /** [minX, minY, maxX, maxY] of the points. */
  bounds: [number, number, number, number];
  clusters: AtlasCluster[];
  method: AtlasMethod;
  files: { points: string; rows: string; clusters: string; keys: string };
  createdWith: string;
}

export interface Atlas {
  manifest: AtlasManifest;
  /** x, y of each point, interleaved. */
  points: Float32Array;
  /** The index row of each point (in manifest.indexGeneration). */
  rows: Uint32Array;
  /** The cluster id of each point. */
  clusters: Uint16Array;
  /** The sample key of each point ("" where the row had none). */
  keys: string[];
}

export function atlasBuildName(build: number): string {
  return `a${String(build).padStart(6, "0")}`;
}

export async function readAtlasManifest(
  storage: DatasetStorage,
): Promise<AtlasManifest | undefined> {
  const path = layout.atlasManifest();
  if (!(await storage.exists(path))) return undefined;
  const manifest = JSON.parse(await storage.readText(path)) as AtlasManifest;
  if (manifest.format !== ATLAS_FORMAT_VERSION) {
    throw new Error(
      `${storage.describe(path)}: atlas format ${manifest.format}, this clipcrawl reads ${ATLAS_FORMAT_VERSION}; run clipcrawl index again`,
    );
  }
  return manifest;
}

/** The atlas and its arrays; undefined when the root has none. Damaged files throw one line. */
export async function readAtlas(storage: DatasetStorage): Promise<Atlas | undefined> {
  const manifest = await readAtlasManifest(storage);
  if (manifest === undefined) return undefined;
  const count = manifest.points;
  const read = async <T>(
    path: string,
    bytesPerPoint: number,
    view: (buffer: ArrayBuffer) => T,
  ): Promise<T> => {
    const bytes = await storage.read(path);
    if (bytes.length !== count * bytesPerPoint) {
      throw new Error(
        `${storage.describe(path)}: ${bytes.length} bytes, the atlas manifest says ${count} points of ${bytesPerPoint} bytes`,
      );
    }
    // A copy: the view must start at an aligned offset of its own buffer.
    return view(new Uint8Array(bytes).buffer);
  };
  const points = await read(manifest.files.points, 8, (buffer) => new Float32Array(buffer));
  const rows = await read(manifest.files.rows, 4, (buffer) => new Uint32Array(buffer));
  const clusters = await read(manifest.files.clusters, 2, (buffer) => new Uint16Array(buffer));
  const keysText = await storage.readText(manifest.files.keys);
  const keys = keysText === "" ? [] : keysText.split("\n");
  if (keys.at(-1) === "") keys.pop();
  if (keys.length !== count) {
    throw new Error(
      `${storage.describe(manifest.files.keys)}: ${keys.length} keys, the atlas manifest says ${count} points`,
    );
  }
  return { manifest, points, rows, clusters, keys };
}

/** Writes the arrays under the build's names, then the manifest (the commit point). */
export async function writeAtlas(storage: DatasetStorage, atlas: Atlas): Promise<void> {
  const { manifest } = atlas;
  const bytes = (array: ArrayBufferView) =>
    new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  await storage.writeAtomic(manifest.files.points, bytes(atlas.points));
  await storage.writeAtomic(manifest.files.rows, bytes(atlas.rows));
  await storage.writeAtomic(manifest.files.clusters, bytes(atlas.clusters));
  await storage.writeAtomic(
    manifest.files.keys,
    atlas.keys.length === 0 ? "" : `${atlas.keys.join("\n")}\n`,
  );
  await storage.writeAtomic(layout.atlasManifest(), `${JSON.stringify(manifest, null, 2)}\n`);
}

/** The file names of build `build`. */
export function atlasFiles(build: string): AtlasManifest["files"] {
  return {
    points: layout.atlasFile(build, "points.f32"),
    rows: layout.atlasFile(build, "rows.u32"),
    clusters: layout.atlasFile(build, "clusters.u16"),
    keys: layout.atlasFile(build, "keys.txt"),
  };
}

/** Removes the files of earlier builds (after the commit; a reader holds its arrays in memory). */
export async function removeOldAtlasFiles(
  storage: DatasetStorage,
  manifest: AtlasManifest,
): Promise<void> {
  const keep = new Set(Object.values(manifest.files));
  for (const name of await storage.list(layout.atlasFolder())) {
    const path = `${layout.atlasFolder()}/${name}`;
    if (path !== layout.atlasManifest() && !keep.has(path)) await storage.remove(path);
  }
}
