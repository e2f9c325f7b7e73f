/**
 * An inverted-file product quantiser in plain typed arrays, as far as the engine evaluation
 * needs: k-means coarse lists, m sub-quantisers × 256 centroids over the residuals, one ADC
 * lookup table per query (inner product is linear, so the table does not depend on the list),
 * nprobe lists scanned, the best candidates handed to a re-ranker.
 *
 * Training assigns points with usearch's native exact search (the slow part of k-means); the
 * query path is JavaScript over typed arrays.
 */
import { createRequire } from "node:module";

const { exactSearch, MetricKind } = createRequire(import.meta.url)(
  "usearch",
) as typeof import("usearch");

export interface IvfPqParams {
  lists: number;
  subQuantizers: number;
  /** Training points per coarse list (autofaiss trains with 30–256 per list). */
  pointsPerList: number;
  iterations: number;
  threads: number;
}

const CENTROIDS_PER_SUBSPACE = 256;

export class IvfPqIndex {
  private constructor(
    readonly dimensions: number,
    readonly params: IvfPqParams,
    private readonly centroids: Float32Array,
    private readonly codebooks: Float32Array,
    private readonly listStarts: Uint32Array,
    private readonly ids: Uint32Array,
    private readonly codes: Uint8Array,
  ) {}

  static build(vectors: Float32Array, dimensions: number, params: IvfPqParams): IvfPqIndex {
    const count = vectors.length / dimensions;
    const { lists, subQuantizers } = params;
    const subDimensions = dimensions / subQuantizers;
    if (!Number.isInteger(subDimensions)) {
      throw new Error(`${dimensions} dimensions do not split into ${subQuantizers} sub-quantisers`);
    }
    const training = sample(vectors, dimensions, Math.min(count, lists * params.pointsPerList), 17);
    const centroids = kMeans(training, dimensions, lists, params.iterations, params.threads);
    const assignment = nearest(centroids, vectors, dimensions, params.threads);

    const residuals = new Float32Array(vectors.length);
    for (let row = 0; row < count; row++) {
      const base = (assignment[row] as number) * dimensions;
      for (let dim = 0; dim < dimensions; dim++) {
        residuals[row * dimensions + dim] =
          (vectors[row * dimensions + dim] as number) - (centroids[base + dim] as number);
      }
    }
    const codebooks = new Float32Array(subQuantizers * CENTROIDS_PER_SUBSPACE * subDimensions);
    const rowCodes = new Uint8Array(count * subQuantizers);
    const pqTraining = Math.min(count, 32 * CENTROIDS_PER_SUBSPACE);
    for (let sub = 0; sub < subQuantizers; sub++) {
      const slice = subvectors(residuals, dimensions, sub * subDimensions, subDimensions);
      const book = kMeans(
        sample(slice, subDimensions, pqTraining, 31 + sub),
        subDimensions,
        CENTROIDS_PER_SUBSPACE,
        params.iterations,
        params.threads,
      );
      codebooks.set(book, sub * CENTROIDS_PER_SUBSPACE * subDimensions);
      const codes = nearest(book, slice, subDimensions, params.threads);
      for (let row = 0; row < count; row++)
        rowCodes[row * subQuantizers + sub] = codes[row] as number;
    }

    const listStarts = new Uint32Array(lists + 1);
    for (const list of assignment) listStarts[list + 1] = (listStarts[list + 1] as number) + 1;
    for (let list = 0; list < lists; list++) {
      listStarts[list + 1] = (listStarts[list + 1] as number) + (listStarts[list] as number);
    }
    const cursor = listStarts.slice(0, lists);
    const ids = new Uint32Array(count);
    const codes = new Uint8Array(count * subQuantizers);
    for (let row = 0; row < count; row++) {
      const list = assignment[row] as number;
      const slot = cursor[list] as number;
      cursor[list] = slot + 1;
      ids[slot] = row;
      codes.set(
        rowCodes.subarray(row * subQuantizers, (row + 1) * subQuantizers),
        slot * subQuantizers,
      );
    }
    return new IvfPqIndex(dimensions, params, centroids, codebooks, listStarts, ids, codes);
  }

  /** Everything a query reads: centroids, codebooks, list offsets, ids, codes. */
  bytes(): number {
    return (
      this.centroids.byteLength +
      this.codebooks.byteLength +
      this.listStarts.byteLength +
      this.ids.byteLength +
      this.codes.byteLength
    );
  }

  /**
   * The `candidates` best ids by approximate inner product over the `probes` lists nearest the
   * query, written into `out` (best not first); returns how many were found.
   */
  search(query: Float32Array, probes: number, candidates: number, out: Uint32Array): number {
    const { dimensions, centroids, codebooks, listStarts, ids, codes } = this;
    const { lists, subQuantizers } = this.params;
    const subDimensions = dimensions / subQuantizers;

    const listScores = new Float32Array(lists);
    for (let list = 0; list < lists; list++) {
      let sum = 0;
      const base = list * dimensions;
      for (let dim = 0; dim < dimensions; dim++)
        sum += (query[dim] as number) * (centroids[base + dim] as number);
      listScores[list] = sum;
    }
    const probed = topIndices(listScores, probes);

    const table = new Float32Array(subQuantizers * CENTROIDS_PER_SUBSPACE);
    for (let sub = 0; sub < subQuantizers; sub++) {
      const queryBase = sub * subDimensions;
      for (let centroid = 0; centroid < CENTROIDS_PER_SUBSPACE; centroid++) {
        const bookBase = (sub * CENTROIDS_PER_SUBSPACE + centroid) * subDimensions;
        let sum = 0;
        for (let dim = 0; dim < subDimensions; dim++) {
          sum += (query[queryBase + dim] as number) * (codebooks[bookBase + dim] as number);
        }
        table[sub * CENTROIDS_PER_SUBSPACE + centroid] = sum;
      }
    }

    const best = new Float32Array(candidates).fill(Number.NEGATIVE_INFINITY);
    let found = 0;
    let worst = 0;
    for (const list of probed) {
      const coarse = listScores[list] as number;
      for (let slot = listStarts[list] as number; slot < (listStarts[list + 1] as number); slot++) {
        let score = coarse;
        const codeBase = slot * subQuantizers;
        for (let sub = 0; sub < subQuantizers; sub++) {
          score += table[
            sub * CENTROIDS_PER_SUBSPACE + (codes[codeBase + sub] as number)
          ] as number;
        }
        if (found < candidates) {
          best[found] = score;
          out[found] = ids[slot] as number;
          found++;
          if (found === candidates) worst = argMin(best);
        } else if (score > (best[worst] as number)) {
          best[worst] = score;
          out[worst] = ids[slot] as number;
          worst = argMin(best);
        }
      }
    }
    return found;
  }
}

function nearest(
  centres: Float32Array,
  points: Float32Array,
  dimensions: number,
  threads: number,
): Uint32Array {
  const found = exactSearch(centres, points, dimensions, 1, MetricKind.L2sq, threads);
  return Uint32Array.from(found.keys, (key) => Number(key));
}

/** Lloyd's k-means from k distinct sample points; an emptied cluster takes a random point. */
function kMeans(
  points: Float32Array,
  dimensions: number,
  k: number,
  iterations: number,
  threads: number,
): Float32Array {
  const count = points.length / dimensions;
  if (count < k) throw new Error(`k-means needs at least ${k} points, has ${count}`);
  const centres = points.slice(0, k * dimensions);
  const next = lcg(5);
  for (let iteration = 0; iteration < iterations; iteration++) {
    const assignment = nearest(centres, points, dimensions, threads);
    const sums = new Float64Array(k * dimensions);
    const sizes = new Uint32Array(k);
    for (let row = 0; row < count; row++) {
      const cluster = assignment[row] as number;
      sizes[cluster] = (sizes[cluster] as number) + 1;
      for (let dim = 0; dim < dimensions; dim++) {
        sums[cluster * dimensions + dim] =
          (sums[cluster * dimensions + dim] as number) + (points[row * dimensions + dim] as number);
      }
    }
    for (let cluster = 0; cluster < k; cluster++) {
      const size = sizes[cluster] as number;
      if (size === 0) {
        const row = Math.floor(next() * count);
        centres.set(
          points.subarray(row * dimensions, (row + 1) * dimensions),
          cluster * dimensions,
        );
        continue;
      }
      for (let dim = 0; dim < dimensions; dim++) {
        centres[cluster * dimensions + dim] = (sums[cluster * dimensions + dim] as number) / size;
      }
    }
  }
  return centres;
}

function sample(
  rows: Float32Array,
  dimensions: number,
  wanted: number,
  seed: number,
): Float32Array {
  const count = rows.length / dimensions;
  const order = Uint32Array.from({ length: count }, (_, index) => index);
  const next = lcg(seed);
  for (let index = 0; index < wanted; index++) {
    const swap = index + Math.floor(next() * (count - index));
    const held = order[index] as number;
    order[index] = order[swap] as number;
    order[swap] = held;
  }
  const out = new Float32Array(wanted * dimensions);
  for (let index = 0; index < wanted; index++) {
    const row = order[index] as number;
    out.set(rows.subarray(row * dimensions, (row + 1) * dimensions), index * dimensions);
  }
  return out;
}

function subvectors(
  rows: Float32Array,
  dimensions: number,
  from: number,
  width: number,
): Float32Array {
  const count = rows.length / dimensions;
  const out = new Float32Array(count * width);
  for (let row = 0; row < count; row++) {
    out.set(rows.subarray(row * dimensions + from, row * dimensions + from + width), row * width);
  }
  return out;
}

/** The indices of the `count` highest scores, by insertion into a short sorted list. */
function topIndices(scores: Float32Array, count: number): Uint32Array {
  const best = new Float32Array(count).fill(Number.NEGATIVE_INFINITY);
  const at = new Uint32Array(count);
  for (let index = 0; index < scores.length; index++) {
    const score = scores[index] as number;
    if (score <= (best[count - 1] as number)) continue;
    let position = count - 1;
    while (position > 0 && (best[position - 1] as number) < score) {
      best[position] = best[position - 1] as number;
      at[position] = at[position - 1] as number;
      position--;
    }
    best[position] = score;
    at[position] = index;
  }
  return at;
}

function argMin(values: Float32Array): number {
  let at = 0;
  for (let index = 1; index < values.length; index++) {
    if ((values[index] as number) < (values[at] as number)) at = index;
  }
  return at;
}

function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
