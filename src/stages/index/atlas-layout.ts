/**
 * The map's coordinates: PCA of the embeddings (fitted on the layout sample), UMAP (umap-js) of
 * the sample's PCA vectors, and every other point placed at the similarity-weighted mean of its
 * nearest laid-out neighbours in PCA space, found through a usearch HNSW over the sample.
 *
 * UMAP in JavaScript lays out about 250 points a second here, so a million points are laid out
 * from a sample (10,000 by default) and placed by their neighbours, as UMAP's own `transform`
 * places new points (initialised at the weighted mean of their neighbours), without its
 * optimisation epochs.
 */
import { UMAP } from "umap-js";
import { VectorGraph } from "../../formats/index/graph.js";

export interface Pca {
  dimensions: number;
  components: number;
  mean: Float32Array;
  /** components × dimensions, row-major, orthonormal rows. */
  basis: Float32Array;
}

/** A deterministic generator in [0, 1) (mulberry32), so a re-run draws the same map. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/**
 * The top `components` principal axes of `rows` vectors: the covariance matrix, then subspace
 * iteration (a few dozen products with a dimensions × components block, re-orthonormalised).
 */
export function fitPca(
  vectors: Float32Array,
  rows: number,
  dimensions: number,
  components: number,
  random: () => number,
): Pca {
  const k = Math.max(1, Math.min(components, dimensions, rows));
  const mean = new Float64Array(dimensions);
  for (let row = 0; row < rows; row++) {
    const base = row * dimensions;
    for (let d = 0; d < dimensions; d++)
      mean[d] = (mean[d] as number) + (vectors[base + d] as number);
  }
  for (let d = 0; d < dimensions; d++) mean[d] = (mean[d] as number) / Math.max(rows, 1);
  const covariance = new Float64Array(dimensions * dimensions);
  const centred = new Float64Array(dimensions);
  for (let row = 0; row < rows; row++) {
    const base = row * dimensions;
    for (let d = 0; d < dimensions; d++)
      centred[d] = (vectors[base + d] as number) - (mean[d] as number);
    for (let i = 0; i < dimensions; i++) {
      const value = centred[i] as number;
      if (value === 0) continue;
      const line = i * dimensions;
      for (let j = i; j < dimensions; j++) {
        covariance[line + j] = (covariance[line + j] as number) + value * (centred[j] as number);
      }
    }
  }
  for (let i = 0; i < dimensions; i++) {
    for (let j = 0; j < i; j++)
      covariance[i * dimensions + j] = covariance[j * dimensions + i] as number;
  }
  let block = new Float64Array(k * dimensions);
  for (let index = 0; index < block.length; index++) block[index] = random() - 0.5;
  orthonormalise(block, k, dimensions);
  for (let iteration = 0; iteration < 40; iteration++) {
    const next = new Float64Array(k * dimensions);
    for (let c = 0; c < k; c++) {
      const from = c * dimensions;
      for (let i = 0; i < dimensions; i++) {
        let sum = 0;
        const line = i * dimensions;
        for (let j = 0; j < dimensions; j++)
          sum += (covariance[line + j] as number) * (block[from + j] as number);
        next[from + i] = sum;
      }
    }
    orthonormalise(next, k, dimensions);
    block = next;
  }
  return {
    dimensions,
    components: k,
    mean: Float32Array.from(mean),
    basis: Float32Array.from(block),
  };
}

/** Gram–Schmidt over the rows of a k × dimensions block. */
function orthonormalise(block: Float64Array, k: number, dimensions: number): void {
  for (let c = 0; c < k; c++) {
    const from = c * dimensions;
    for (let previous = 0; previous < c; previous++) {
      const other = previous * dimensions;
      let dot = 0;
      for (let d = 0; d < dimensions; d++)
        dot += (block[from + d] as number) * (block[other + d] as number);
      for (let d = 0; d < dimensions; d++)
        block[from + d] = (block[from + d] as number) - dot * (block[other + d] as number);
    }
    let norm = 0;
    for (let d = 0; d < dimensions; d++) norm += (block[from + d] as number) ** 2;
    norm = Math.sqrt(norm);
    if (norm < 1e-12) {
      // A degenerate direction (fewer distinct rows than components): any unit axis will do.
      block.fill(0, from, from + dimensions);
      block[from + (c % dimensions)] = 1;
    } else {
      for (let d = 0; d < dimensions; d++) block[from + d] = (block[from + d] as number) / norm;
    }
  }
}

/** Rows of `vectors` in PCA coordinates (rows × components). */
export function projectPca(pca: Pca, vectors: Float32Array, rows: number): Float32Array {
  const { dimensions, components, mean, basis } = pca;
  const out = new Float32Array(rows * components);
  const centred = new Float32Array(dimensions);
  for (let row = 0; row < rows; row++) {
    const base = row * dimensions;
    for (let d = 0; d < dimensions; d++)
      centred[d] = (vectors[base + d] as number) - (mean[d] as number);
    for (let c = 0; c < components; c++) {
      const axis = c * dimensions;
      let sum = 0;
      for (let d = 0; d < dimensions; d++)
        sum += (centred[d] as number) * (basis[axis + d] as number);
      out[row * components + c] = sum;
    }
  }
  return out;
}

export interface UmapSettings {
  nNeighbors: number;
  minDist: number;
  nEpochs: number;
}

/**
 * UMAP of `rows` points (rows × dimensions) to 2-D, interleaved x, y. Under 8 points UMAP has no
 * neighbourhood to speak of, so the first two coordinates are the layout.
 */
export function umapLayout(
  projected: Float32Array,
  rows: number,
  dimensions: number,
  settings: UmapSettings,
  random: () => number,
): { layout: Float32Array; settings: UmapSettings } {
  const layout = new Float32Array(rows * 2);
  if (rows < 8) {
    for (let row = 0; row < rows; row++) {
      layout[row * 2] = projected[row * dimensions] ?? 0;
      layout[row * 2 + 1] = dimensions > 1 ? (projected[row * dimensions + 1] ?? 0) : 0;
    }
    return { layout, settings: { ...settings, nEpochs: 0 } };
  }
  const used = { ...settings, nNeighbors: Math.min(settings.nNeighbors, rows - 1) };
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: used.nNeighbors,
    minDist: used.minDist,
    nEpochs: used.nEpochs,
    random,
  });
  const data: number[][] = [];
  for (let row = 0; row < rows; row++) {
    data.push(Array.from(projected.subarray(row * dimensions, (row + 1) * dimensions)));
  }
  const embedding = umap.fit(data);
  embedding.forEach((point, row) => {
    layout[row * 2] = point[0] ?? 0;
    layout[row * 2 + 1] = point[1] ?? 0;
  });
  return { layout, settings: used };
}

/**
 * Places points by their nearest laid-out neighbours: an HNSW over the sample's PCA vectors,
 * then for each point the mean of its neighbours' coordinates weighted by similarity (clamped at
 * a small positive floor so an orthogonal neighbour still counts a little).
 */
export class NeighbourPlacement {
  private readonly graph: VectorGraph;

  constructor(
    sampleProjected: Float32Array,
    private readonly sampleLayout: Float32Array,
    private readonly dimensions: number,
    private readonly neighbours: number,
    private readonly threads: number,
  ) {
    this.graph = VectorGraph.create(dimensions, {
      quantization: "f32",
      // Placement needs near neighbours, not the nearest: a light graph is several times faster.
      connectivity: 12,
      expansionAdd: 40,
      expansionSearch: 24,
    });
    this.graph.add(0, sampleProjected, threads);
  }

  /** Interleaved x, y of each row of `projected`. */
  place(projected: Float32Array): Float32Array {
    const rows = projected.length / this.dimensions;
    const out = new Float32Array(rows * 2);
    const matches = this.graph.searchBatch(projected, this.neighbours, this.threads);
    matches.forEach((match, row) => {
      let x = 0;
      let y = 0;
      let total = 0;
      for (let n = 0; n < match.ids.length; n++) {
        const weight = Math.max(match.similarities[n] as number, 0.01) ** 4;
        const id = match.ids[n] as number;
        x += weight * (this.sampleLayout[id * 2] as number);
        y += weight * (this.sampleLayout[id * 2 + 1] as number);
        total += weight;
      }
      out[row * 2] = total > 0 ? x / total : 0;
      out[row * 2 + 1] = total > 0 ? y / total : 0;
    });
    return out;
  }
}
