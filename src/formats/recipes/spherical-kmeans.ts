/**
 * Spherical k-means over L2-normalised embeddings, as SemDeDup and DataComp's image-based filter
 * cluster CLIP embeddings (faiss `spherical=True`): a point belongs to the centroid of largest
 * cosine, and a centroid is the normalised sum of its points. Lloyd's iterations from k distinct
 * points of the sample as the initial centroids (faiss's initialisation), until no point changes
 * cluster or the iterations run out; a cluster left empty keeps its centroid.
 *
 * Why here and not a package: the k-means packages for Node (ml-kmeans, skmeans, @thi.ng/k-means)
 * take arrays of JavaScript number arrays and compute distances in JavaScript loops: a million
 * 768-d vectors would be 6 GB of doubles and hours of work. Here the vectors stay in
 * Float32Arrays and the dot products, nearly all the work, run on ONNX Runtime's kernels
 * (src/models/dot-products.ts).
 *
 * Every random choice comes from one seeded generator (mulberry32), so a run is reproducible and
 * an independent implementation (the tests' numpy one) can make the same choices.
 */
import type { DotProducts } from "../../models/dot-products.js";

/** Rows whose products with the centroids are computed in one call (bounds the result matrix). */
const ASSIGN_BLOCK_ROWS = 4096;

export interface KMeansOptions {
  clusters: number;
  iterations: number;
  seed: number;
}

export interface TrainedKMeans {
  /** clusters × dim, each row of unit length. */
  centroids: Float32Array;
  clusters: number;
  /** Sample rows the centroids started from. */
  initialRows: number[];
  /** Iterations run (fewer than asked when the assignment settled). */
  iterations: number;
}

export interface Assignment {
  /** The cluster of each row: the centroid of largest cosine, the first on a tie. */
  cluster: Int32Array;
  /** That cosine. */
  similarity: Float32Array;
}

/** A seeded generator of floats in [0, 1): mulberry32. */
export function seededRandom(seed: number): () => number {
  let state = seed | 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Which of `total` rows make the training sample: all when `size` ≥ total, else `size` rows in
 * order by selection sampling (Knuth's Algorithm S), one draw per row.
 */
export function sampleRows(total: number, size: number, random: () => number): Int32Array {
  if (size >= total) return Int32Array.from({ length: total }, (_, row) => row);
  const chosen = new Int32Array(size);
  let needed = size;
  for (let row = 0; row < total && needed > 0; row++) {
    if (random() * (total - row) < needed) {
      chosen[size - needed] = row;
      needed--;
    }
  }
  return chosen;
}

/** Trains on `rows` sample vectors of `dim` (unit length) with the generator `random`. */
export async function trainSphericalKMeans(
  sample: Float32Array,
  rows: number,
  dim: number,
  options: KMeansOptions,
  random: () => number,
  dot: DotProducts,
): Promise<TrainedKMeans> {
  const clusters = Math.min(options.clusters, rows);
  // A partial Fisher-Yates shuffle picks k distinct sample rows.
  const order = Int32Array.from({ length: rows }, (_, row) => row);
  for (let position = 0; position < clusters; position++) {
    const swap = position + Math.floor(random() * (rows - position));
    const held = order[position] as number;
    order[position] = order[swap] as number;
    order[swap] = held;
  }
  const initialRows = Array.from(order.subarray(0, clusters));
  const centroids = new Float32Array(clusters * dim);
  initialRows.forEach((row, cluster) => {
    centroids.set(sample.subarray(row * dim, (row + 1) * dim), cluster * dim);
  });
  let previous: Int32Array | undefined;
  let iterations = 0;
  for (; iterations < options.iterations; iterations++) {
    const { cluster } = await assignToCentroids(sample, rows, centroids, clusters, dim, dot);
    if (previous !== undefined && sameAssignment(previous, cluster)) break;
    updateCentroids(sample, rows, dim, cluster, centroids, clusters);
    previous = cluster;
  }
  return { centroids, clusters, initialRows, iterations };
}

/** Each row's nearest centroid by cosine (rows and centroids of unit length). */
export async function assignToCentroids(
  vectors: Float32Array,
  rows: number,
  centroids: Float32Array,
  clusters: number,
  dim: number,
  dot: DotProducts,
): Promise<Assignment> {
  const cluster = new Int32Array(rows);
  const similarity = new Float32Array(rows);
  for (let first = 0; first < rows; first += ASSIGN_BLOCK_ROWS) {
    const count = Math.min(ASSIGN_BLOCK_ROWS, rows - first);
    const products = await dot.products(
      vectors.subarray(first * dim, (first + count) * dim),
      count,
      centroids,
      clusters,
      dim,
    );
    for (let row = 0; row < count; row++) {
      let best = 0;
      let bestValue = products[row * clusters] as number;
      for (let candidate = 1; candidate < clusters; candidate++) {
        const value = products[row * clusters + candidate] as number;
        if (value > bestValue) {
          best = candidate;
          bestValue = value;
        }
      }
      cluster[first + row] = best;
      similarity[first + row] = bestValue;
    }
  }
  return { cluster, similarity };
}

/** Each centroid becomes the normalised sum of its rows; an empty cluster keeps its centroid. */
function updateCentroids(
  vectors: Float32Array,
  rows: number,
  dim: number,
  cluster: Int32Array,
  centroids: Float32Array,
  clusters: number,
): void {
  const sums = new Float64Array(clusters * dim);
  const members = new Int32Array(clusters);
  for (let row = 0; row < rows; row++) {
    const target = cluster[row] as number;
    members[target] = (members[target] as number) + 1;
    const offset = target * dim;
    const source = row * dim;
    for (let index = 0; index < dim; index++) {
      sums[offset + index] = (sums[offset + index] as number) + (vectors[source + index] as number);
    }
  }
  for (let target = 0; target < clusters; target++) {
    if (members[target] === 0) continue;
    const offset = target * dim;
    let norm = 0;
    for (let index = 0; index < dim; index++) norm += (sums[offset + index] as number) ** 2;
    norm = Math.sqrt(norm);
    if (!(norm > 0)) continue;
    for (let index = 0; index < dim; index++) {
      centroids[offset + index] = (sums[offset + index] as number) / norm;
    }
  }
}

function sameAssignment(a: Int32Array, b: Int32Array): boolean {
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false;
  return true;
}
