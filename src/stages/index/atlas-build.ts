/**
 * The atlas, built by `clipcrawl index` after its commit: a 2-D map of up to `atlasPoints` image
 * embeddings, its clusters and their labels, written to `_atlas/` (src/formats/atlas/). Rebuilt
 * when the index's generation or the atlas settings change; otherwise the one on disk is kept.
 *
 * Two passes over the segments' float16 vectors, each holding one segment at a time: the first
 * gathers the layout sample (PCA is fitted and UMAP run on it), the second projects every point
 * and places it by its nearest laid-out neighbours.
 */
import {
  ATLAS_FORMAT_VERSION,
  type AtlasManifest,
  atlasBuildName,
  atlasFiles,
  readAtlasManifest,
  removeOldAtlasFiles,
  writeAtlas,
} from "../../formats/atlas/atlas-files.js";
import type { IndexManifest, IndexSegment } from "../../formats/index/index-manifest.js";
import { layout } from "../../io/layout.js";
import { decodeNpy } from "../../io/npy.js";
import { duckdbConnection, quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { fromFloat16Bits } from "../../models/float16.js";
import { digestOf } from "../../shard/shard-state.js";
import { VERSION } from "../../version.js";
import { assignNearest, kMeans2d, labelClusters } from "./atlas-clusters.js";
import {
  fitPca,
  NeighbourPlacement,
  projectPca,
  seededRandom,
  umapLayout,
} from "./atlas-layout.js";

export interface AtlasSettings {
  /** Points on the map at most (a strided sample of the rows); 0: no atlas. */
  points: number;
  /** Points laid out by UMAP; the rest are placed from them. */
  layoutSample: number;
  clusters: number;
  pcaDimensions: number;
  threads: number;
}

export interface AtlasSummary {
  points: number;
  clusters: number;
  /** false when the atlas on disk was already that of this index and settings. */
  built: boolean;
  seconds: AtlasManifest["method"]["seconds"] | null;
}

const SEED = 42;
const UMAP_SETTINGS = { nNeighbors: 15, minDist: 0.1, nEpochs: 200 };
const PLACEMENT_NEIGHBORS = 8;
const PLACEMENT_BATCH = 20_000;
const PCA_FIT_ROWS = 4000;

export async function ensureAtlas(
  storage: DatasetStorage,
  index: IndexManifest,
  settings: AtlasSettings,
): Promise<AtlasSummary> {
  const identity = digestOf({ ...settings, threads: undefined, umap: UMAP_SETTINGS, SEED });
  const previous = await readAtlasManifest(storage).catch(() => undefined);
  if (
    previous !== undefined &&
    previous.indexGeneration === index.generation &&
    previous.indexRows === index.rows &&
    previous.identity === identity &&
    (await filesWhole(storage, previous))
  ) {
    return {
      points: previous.points,
      clusters: previous.clusters.length,
      built: false,
      seconds: null,
    };
  }
  const started = performance.now();
  const seconds = { read: 0, pca: 0, umap: 0, placement: 0, clusters: 0, total: 0 };
  const random = seededRandom(SEED);
  const dimensions = index.dimensions;
  const count = Math.min(index.rows, settings.points);
  const pointRows = stridedSample(index.rows, count);
  const sampleCount = Math.min(count, Math.max(1, settings.layoutSample));
  const samplePoints = stridedSample(count, sampleCount);

  // Pass 1: the layout sample's vectors.
  let step = performance.now();
  const sampleVectors = new Float32Array(sampleCount * dimensions);
  let sampleAt = 0;
  for (const segment of index.segments) {
    const wanted: number[] = [];
    while (sampleAt < sampleCount) {
      const row = pointRows[samplePoints[sampleAt] as number] as number;
      if (row >= segment.firstId + segment.rows) break;
      wanted.push(row - segment.firstId);
      sampleAt++;
    }
    if (wanted.length === 0) continue;
    const vectors = await segmentVectors(storage, segment, dimensions);
    const firstSample = sampleAt - wanted.length;
    wanted.forEach((local, offset) => {
      sampleVectors.set(vectors.rowsAsFloat(local), (firstSample + offset) * dimensions);
    });
  }
  seconds.read += (performance.now() - step) / 1000;

  step = performance.now();
  // The axes are fitted on up to PCA_FIT_ROWS of the sample: 32 axes of 512-d embeddings are
  // stable from a few thousand rows, and the covariance costs rows × dimensions².
  const fitRows = Math.min(sampleCount, PCA_FIT_ROWS);
  const fitVectors = new Float32Array(fitRows * dimensions);
  stridedSample(sampleCount, fitRows).forEach((sample, at) => {
    fitVectors.set(
      sampleVectors.subarray(sample * dimensions, (sample + 1) * dimensions),
      at * dimensions,
    );
  });
  const pca = fitPca(fitVectors, fitRows, dimensions, settings.pcaDimensions, random);
  const sampleProjected = projectPca(pca, sampleVectors, sampleCount);
  seconds.pca += (performance.now() - step) / 1000;
  step = performance.now();
  const umap = umapLayout(sampleProjected, sampleCount, pca.components, UMAP_SETTINGS, random);
  seconds.umap = (performance.now() - step) / 1000;

  // Pass 2: every point, placed from the laid-out sample (sample points keep their layout).
  const points = new Float32Array(count * 2);
  const placement =
    count > sampleCount
      ? new NeighbourPlacement(
          sampleProjected,
          umap.layout,
          pca.components,
          Math.min(PLACEMENT_NEIGHBORS, sampleCount),
          settings.threads,
        )
      : undefined;
  let pointAt = 0;
  for (const segment of index.segments) {
    const first = pointAt;
    while (pointAt < count && (pointRows[pointAt] as number) < segment.firstId + segment.rows) {
      pointAt++;
    }
    if (placement === undefined || pointAt === first) continue;
    step = performance.now();
    const vectors = await segmentVectors(storage, segment, dimensions);
    seconds.read += (performance.now() - step) / 1000;
    step = performance.now();
    for (let start = first; start < pointAt; start += PLACEMENT_BATCH) {
      const end = Math.min(pointAt, start + PLACEMENT_BATCH);
      const batch = new Float32Array((end - start) * dimensions);
      for (let point = start; point < end; point++) {
        batch.set(
          vectors.rowsAsFloat((pointRows[point] as number) - segment.firstId),
          (point - start) * dimensions,
        );
      }
      points.set(placement.place(projectPca(pca, batch, end - start)), start * 2);
    }
    seconds.placement += (performance.now() - step) / 1000;
  }
  samplePoints.forEach((point, sample) => {
    points[point * 2] = umap.layout[sample * 2] as number;
    points[point * 2 + 1] = umap.layout[sample * 2 + 1] as number;
  });

  step = performance.now();
  // A region needs points to be one: few points get few regions (√(n/2), as a rule of thumb).
  const regions = Math.min(settings.clusters, Math.max(1, Math.round(Math.sqrt(count / 2))));
  const { centres } = kMeans2d(umap.layout, regions, random);
  const clusters = new Uint16Array(count);
  assignNearest(points, centres, clusters);
  const sizes = new Uint32Array(centres.length / 2);
  for (const cluster of clusters) sizes[cluster] = (sizes[cluster] as number) + 1;
  const { keys, sampleCaptions } = await readKeysAndCaptions(
    storage,
    index.segments,
    pointRows,
    new Set(samplePoints),
  );
  const sampleClusters = Uint16Array.from(samplePoints, (point) => clusters[point] as number);
  const labelled = labelClusters(centres, sizes, sampleCaptions, sampleClusters);
  seconds.clusters = (performance.now() - step) / 1000;
  seconds.total = (performance.now() - started) / 1000;

  const build = atlasBuildName(Number(previous?.build.slice(1) ?? 0) + 1);
  const manifest: AtlasManifest = {
    format: ATLAS_FORMAT_VERSION,
    build,
    identity,
    indexGeneration: index.generation,
    indexRows: index.rows,
    points: count,
    bounds: bounds(points),
    clusters: labelled,
    method: {
      pcaDimensions: pca.components,
      layoutSample: sampleCount,
      umap: umap.settings,
      placementNeighbors: placement === undefined ? 0 : Math.min(PLACEMENT_NEIGHBORS, sampleCount),
      seed: SEED,
      seconds,
    },
    files: atlasFiles(build),
    createdWith: `clipcrawl ${VERSION}`,
  };
  await writeAtlas(storage, { manifest, points, rows: pointRows, clusters, keys });
  await removeOldAtlasFiles(storage, manifest);
  return { points: count, clusters: labelled.length, built: true, seconds };
}

/** Whether the build's files are there with the sizes its point count gives them. */
async function filesWhole(storage: DatasetStorage, manifest: AtlasManifest): Promise<boolean> {
  const sizes: [string, number][] = [
    [manifest.files.points, manifest.points * 8],
    [manifest.files.rows, manifest.points * 4],
    [manifest.files.clusters, manifest.points * 2],
  ];
  for (const [path, bytes] of sizes) {
    if ((await storage.stat(path))?.bytes !== bytes) return false;
  }
  return (await storage.stat(manifest.files.keys)) !== undefined;
}

/** `count` of `0 … total − 1`, evenly spread and ascending. */
export function stridedSample(total: number, count: number): Uint32Array {
  const rows = new Uint32Array(count);
  for (let index = 0; index < count; index++) rows[index] = Math.floor((index * total) / count);
  return rows;
}

function bounds(points: Float32Array): [number, number, number, number] {
  const box: [number, number, number, number] = [
    Number.POSITIVE_INFINITY,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
  ];
  for (let index = 0; index < points.length; index += 2) {
    const x = points[index] as number;
    const y = points[index + 1] as number;
    if (x < box[0]) box[0] = x;
    if (y < box[1]) box[1] = y;
    if (x > box[2]) box[2] = x;
    if (y > box[3]) box[3] = y;
  }
  return points.length === 0 ? [0, 0, 0, 0] : box;
}

/** One segment's float16 image vectors, a row at a time as float32. */
async function segmentVectors(
  storage: DatasetStorage,
  segment: IndexSegment,
  dimensions: number,
): Promise<{ rowsAsFloat(row: number): Float32Array }> {
  const path = layout.indexSegmentVectors(segment.name, "image");
  const array = decodeNpy(await storage.read(path));
  if (array.dtype !== "<f2" || array.shape[0] !== segment.rows || array.shape[1] !== dimensions) {
    throw new Error(
      `${storage.describe(path)}: ${array.dtype} [${array.shape.join(", ")}], the index manifest says float16 [${segment.rows}, ${dimensions}]`,
    );
  }
  const bits = array.data;
  return {
    rowsAsFloat: (row) => fromFloat16Bits(bits.subarray(row * dimensions, (row + 1) * dimensions)),
  };
}

/** Every point's key, and the captions of the layout sample (for the cluster labels). */
async function readKeysAndCaptions(
  storage: DatasetStorage,
  segments: readonly IndexSegment[],
  pointRows: Uint32Array,
  samplePoints: ReadonlySet<number>,
): Promise<{ keys: string[]; sampleCaptions: (string | null)[] }> {
  const keys: string[] = [];
  const sampleCaptions: (string | null)[] = [];
  const connection = await duckdbConnection();
  try {
    let pointAt = 0;
    for (const segment of segments) {
      if (pointAt >= pointRows.length) break;
      if ((pointRows[pointAt] as number) >= segment.firstId + segment.rows) continue;
      const path = await storage.localPath(layout.indexSegmentMetadata(segment.name));
      const reader = await connection.runAndReadAll(
        `SELECT key, TEXT FROM read_parquet(${quoteLiteral(path)}, file_row_number = true) ORDER BY file_row_number`,
      );
      const [keyColumn = [], textColumn = []] = reader.getColumns();
      while (
        pointAt < pointRows.length &&
        (pointRows[pointAt] as number) < segment.firstId + segment.rows
      ) {
        const local = (pointRows[pointAt] as number) - segment.firstId;
        const key = keyColumn[local];
        // A key never holds a line break (shard id + index), but a hand-made one might.
        keys.push(typeof key === "string" ? key.replaceAll("\n", " ") : "");
        if (samplePoints.has(pointAt)) {
          const text = textColumn[local];
          sampleCaptions.push(typeof text === "string" ? text : null);
        }
        pointAt++;
      }
    }
  } finally {
    connection.closeSync();
  }
  return { keys, sampleCaptions };
}
