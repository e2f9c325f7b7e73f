/**
 * The compressed tier's vector index: an inverted file with product quantisation (IVF-PQ), as
 * faiss's `IVFn,PQm`. k-means coarse lists; m sub-quantisers × 256 centroids over each row's
 * residual from its list's centroid; one byte a sub-quantiser a row. A query finds the lists
 * nearest it (every centroid scored natively, or from GRAPH_COARSE_FROM lists an HNSW over
 * them, as faiss's `IVFn_HNSW32`), builds one lookup table (inner product is linear, so the
 * table is the same for every list), scans the `probes` best lists, and keeps the best
 * `candidates` approximate scores, which the caller re-ranks exactly (compressed-graph.ts).
 *
 * Centroids and codebooks are rounded to float16 before rows are encoded against them, so the
 * file stores them at 2 bytes a value and what the search uses is what the codes were made for.
 * Ids are 32-bit (an index of at most 2^32 rows: beyond, shards). Training and encoding assign
 * points on ONNX Runtime (nearest-centres.ts); the per-query work is JavaScript over typed arrays.
 *
 * File (`.ivfpq`, little-endian): "CCIVFPQ\0", u32 version, dimensions, lists, subQuantizers,
 * rows, CRC-32 of everything after the 32-byte header; then centroids (f16, lists × d),
 * codebooks (f16, m × 256 × d/m), list starts (u32, lists + 1), ids (u32, list order), codes
 * (u8, rows × m, list order).
 */
import { readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { crc32 } from "node:zlib";
import { fromFloat16Bits, toFloat16Bits } from "../../models/float16.js";
import { NearestCentres } from "../../models/nearest-centres.js";

type Usearch = typeof import("usearch");
let loaded: Usearch | undefined;
/** usearch's binding, loaded on first use (compressed-graph.ts uses it too). */
export function usearch(): Usearch {
  loaded ??= createRequire(import.meta.url)("usearch") as Usearch;
  return loaded;
}

export const CENTROIDS_PER_SUBSPACE = 256;
const MAGIC = "CCIVFPQ\0";
const FORMAT_VERSION = 1;
const HEADER_BYTES = 32;
/** faiss warns below 39 training points a centroid; fewer lists are trained instead. */
export const MIN_POINTS_PER_LIST = 39;

export interface IvfPqTraining {
  lists: number;
  subQuantizers: number;
  /** Training points per coarse list (autofaiss trains with 30–256 a list). */
  pointsPerList: number;
  /** Training points per sub-quantiser centroid. */
  pointsPerCode: number;
  iterations: number;
  threads: number;
}

/** A damaged or foreign `.ivfpq` file: the message starts with its path. */
export class IvfPqFileError extends Error {
  readonly code = "CC_INDEX_FILE_DAMAGED";
}

/**
 * From this many lists a query finds the lists to probe through an HNSW graph over the centroids,
 * as autofaiss's `IVFn_HNSW32` does, instead of scoring every centroid (16,384 × 512 multiply-adds,
 * 2.4 ms here, where the graph takes tens of µs).
 */
const GRAPH_COARSE_FROM = 4096;
const COARSE_CONNECTIVITY = 32;
const COARSE_EXPANSION = 128;
/**
 * The centroid graph's search list (faiss's quantizer efSearch is 16, widened to nprobe). At
 * 1M rows, 4096 lists, nprobe 4: 32 finds 98 % of the exact nearest lists at 0.24 ms a query
 * against 99.8 % at 0.56 ms with 128, and recall@10 after re-ranking moves by 0.002.
 */
const COARSE_SEARCH_EXPANSION = 32;
/**
 * Coarse graphs by their centroids' checksum: an index's shards share one training, so one graph
 * serves all of them in a process.
 */
const coarseGraphs = new Map<string, import("usearch").Index>();

function trainingKeyOf(centroidBits: Uint16Array, dimensions: number): string {
  const bytes = new Uint8Array(
    centroidBits.buffer,
    centroidBits.byteOffset,
    centroidBits.byteLength,
  );
  return `${dimensions}:${centroidBits.length / dimensions}:${crc32(bytes)}`;
}

function sharedCoarseGraph(
  bits: Uint16Array,
  values: Float32Array,
  dimensions: number,
): import("usearch").Index {
  const lists = values.length / dimensions;
  const key = trainingKeyOf(bits, dimensions);
  let graph = coarseGraphs.get(key);
  if (graph === undefined) {
    const { Index, MetricKind, ScalarKind } = usearch();
    graph = new Index({
      dimensions,
      metric: MetricKind.IP,
      quantization: ScalarKind.F32,
      connectivity: COARSE_CONNECTIVITY,
      expansion_add: COARSE_EXPANSION,
      expansion_search: COARSE_SEARCH_EXPANSION,
      multi: false,
    });
    graph.add(
      BigUint64Array.from({ length: lists }, (_, list) => BigInt(list)),
      whole(values),
      availableParallelism(),
    );
    coarseGraphs.set(key, graph);
  }
  return graph;
}

export class IvfPqIndex {
  private centroidValues: Float32Array;
  private coarse: import("usearch").Index | undefined;
  private trainingName: string | undefined;
  private nearby: { count: number; lists: Uint32Array; distances: Float32Array } | undefined;

  private constructor(
    readonly dimensions: number,
    readonly subQuantizers: number,
    private readonly centroidBits: Uint16Array,
    private readonly codebookBits: Uint16Array,
    private readonly codebooks: Float32Array,
    private listStarts: Uint32Array,
    private ids: Uint32Array,
    private codes: Uint8Array,
  ) {
    this.centroidValues = fromFloat16Bits(centroidBits);
  }

  get lists(): number {
    return this.listStarts.length - 1;
  }

  /** The lists' centroids, row-major (read-only: the index's own). */
  get centroids(): Float32Array {
    return this.centroidValues;
  }

  /**
   * For each list, the `count` lists whose centroids are nearest its own (itself among them) and
   * their squared distances, row-major: computed once an index (4,096 lists: about a second).
   */
  nearestLists(count: number, threads: number): { lists: Uint32Array; distances: Float32Array } {
    if (this.nearby?.count !== count) {
      this.nearby = {
        count,
        ...nearestCentroids(this.centroidValues, this.dimensions, count, threads),
      };
    }
    return this.nearby;
  }

  get size(): number {
    return this.ids.length;
  }

  /** An empty index trained on `sample` (row-major); rows are added with `add`. */
  static async train(
    sample: Float32Array,
    dimensions: number,
    training: IvfPqTraining,
  ): Promise<IvfPqIndex> {
    const count = sample.length / dimensions;
    const { subQuantizers } = training;
    const subDimensions = dimensions / subQuantizers;
    if (!Number.isInteger(subDimensions)) {
      throw new RangeError(
        `${dimensions} dimensions do not split into ${subQuantizers} sub-quantisers`,
      );
    }
    if (count < CENTROIDS_PER_SUBSPACE) {
      throw new RangeError(
        `IVF-PQ training needs at least ${CENTROIDS_PER_SUBSPACE} vectors, has ${count}`,
      );
    }
    const lists = Math.max(1, Math.min(training.lists, Math.floor(count / MIN_POINTS_PER_LIST)));
    const coarseSample = pick(sample, dimensions, Math.min(count, lists * training.pointsPerList));
    const nearest = await NearestCentres.open(training.threads);
    try {
      const centroidBits = toFloat16Bits(
        await kMeans(nearest, coarseSample, 1, dimensions, lists, training.iterations),
      );
      const centroids = fromFloat16Bits(centroidBits);

      const residualSample = pick(
        sample,
        dimensions,
        Math.min(count, CENTROIDS_PER_SUBSPACE * training.pointsPerCode),
      );
      const residuals = residualsOf(
        residualSample,
        centroids,
        await nearest.nearest(residualSample, centroids, 1, dimensions, lists),
        dimensions,
      );
      // Every sub-quantiser's k-means at once: one batched product a round for all of them.
      const codebookBits = toFloat16Bits(
        await kMeans(
          nearest,
          residuals,
          subQuantizers,
          subDimensions,
          CENTROIDS_PER_SUBSPACE,
          training.iterations,
        ),
      );
      return new IvfPqIndex(
        dimensions,
        subQuantizers,
        centroidBits,
        codebookBits,
        fromFloat16Bits(codebookBits),
        new Uint32Array(lists + 1),
        new Uint32Array(0),
        new Uint8Array(0),
      );
    } finally {
      await nearest.close();
    }
  }

  /** An empty index with this one's training (another index shard too small to train on). */
  withoutRows(): IvfPqIndex {
    return new IvfPqIndex(
      this.dimensions,
      this.subQuantizers,
      this.centroidBits,
      this.codebookBits,
      this.codebooks,
      new Uint32Array(this.lists + 1),
      new Uint32Array(0),
      new Uint8Array(0),
    );
  }

  /** Trained on `vectors` (a sample of them) and holding all of them, ids 0 …. */
  static async build(
    vectors: Float32Array,
    dimensions: number,
    training: IvfPqTraining,
  ): Promise<IvfPqIndex> {
    const index = await IvfPqIndex.train(vectors, dimensions, training);
    await index.add(0, vectors, training.threads);
    return index;
  }

  /** Encodes rows `firstId …` (row-major) into their lists; returns each row's list. */
  async add(firstId: number, vectors: Float32Array, threads: number): Promise<Uint32Array> {
    const { dimensions, subQuantizers, lists } = this;
    const count = vectors.length / dimensions;
    if (count === 0) return new Uint32Array(0);
    const subDimensions = dimensions / subQuantizers;
    const nearest = await NearestCentres.open(threads);
    let assignment: Uint32Array;
    let rowCodes: Uint8Array;
    try {
      assignment = await nearest.nearest(vectors, this.centroidValues, 1, dimensions, lists);
      const residuals = residualsOf(vectors, this.centroidValues, assignment, dimensions);
      rowCodes = Uint8Array.from(
        await nearest.nearest(
          residuals,
          this.codebooks,
          subQuantizers,
          subDimensions,
          CENTROIDS_PER_SUBSPACE,
        ),
      );
    } finally {
      await nearest.close();
    }

    const added = new Uint32Array(lists + 1);
    for (const list of assignment) added[list + 1] = (added[list + 1] as number) + 1;
    const starts = new Uint32Array(lists + 1);
    for (let list = 0; list < lists; list++) {
      const old = (this.listStarts[list + 1] as number) - (this.listStarts[list] as number);
      starts[list + 1] = (starts[list] as number) + old + (added[list + 1] as number);
    }
    const ids = new Uint32Array(this.ids.length + count);
    const codes = new Uint8Array(ids.length * subQuantizers);
    const cursor = new Uint32Array(lists);
    for (let list = 0; list < lists; list++) {
      const from = this.listStarts[list] as number;
      const to = this.listStarts[list + 1] as number;
      const at = starts[list] as number;
      ids.set(this.ids.subarray(from, to), at);
      codes.set(this.codes.subarray(from * subQuantizers, to * subQuantizers), at * subQuantizers);
      cursor[list] = at + to - from;
    }
    for (let row = 0; row < count; row++) {
      const list = assignment[row] as number;
      const slot = cursor[list] as number;
      cursor[list] = slot + 1;
      ids[slot] = firstId + row;
      codes.set(
        rowCodes.subarray(row * subQuantizers, (row + 1) * subQuantizers),
        slot * subQuantizers,
      );
    }
    this.listStarts = starts;
    this.ids = ids;
    this.codes = codes;
    return assignment;
  }

  /** Each row's list (row-major `vectors`): the nearest centroid, as `add` files them. */
  async assign(vectors: Float32Array, threads: number): Promise<Uint32Array> {
    const nearest = await NearestCentres.open(threads);
    try {
      return await nearest.nearest(vectors, this.centroidValues, 1, this.dimensions, this.lists);
    } finally {
      await nearest.close();
    }
  }

  /** The rows `list` holds: their ids, and their vectors as the codes give them back. */
  decodeList(list: number): { ids: Uint32Array; vectors: Float32Array } {
    const { dimensions, subQuantizers, codebooks, codes } = this;
    const subDimensions = dimensions / subQuantizers;
    const from = this.listStarts[list] as number;
    const to = this.listStarts[list + 1] as number;
    const vectors = new Float32Array((to - from) * dimensions);
    const centroid = this.centroidValues.subarray(list * dimensions, (list + 1) * dimensions);
    for (let slot = from; slot < to; slot++) {
      const base = (slot - from) * dimensions;
      let codeAt = slot * subQuantizers;
      for (let sub = 0; sub < subQuantizers; sub++) {
        const book = (sub * CENTROIDS_PER_SUBSPACE + (codes[codeAt++] as number)) * subDimensions;
        const at = base + sub * subDimensions;
        for (let dim = 0; dim < subDimensions; dim++) {
          vectors[at + dim] =
            (centroid[sub * subDimensions + dim] as number) + (codebooks[book + dim] as number);
        }
      }
    }
    return { ids: this.ids.slice(from, to), vectors };
  }

  /**
   * The `candidates` best rows by approximate inner product over the `probes` lists nearest
   * the query, into `outIds` / `outScores` (in no order); returns how many were found.
   */
  search(
    query: Float32Array,
    probes: number,
    candidates: number,
    outIds: Uint32Array,
    outScores: Float32Array,
  ): number {
    const { dimensions, subQuantizers, listStarts, ids, codes } = this;
    const subDimensions = dimensions / subQuantizers;
    const wanted = Math.min(probes, this.lists);
    const graph = this.coarseGraph();
    const probed =
      graph === undefined
        ? (usearch().exactSearch(
            this.centroidValues,
            whole(query),
            dimensions,
            wanted,
            usearch().MetricKind.IP,
            1,
          ) as import("usearch").Matches)
        : graph.search(whole(query), wanted, 1);

    const table = lookupTable(query, this.codebooks, subQuantizers, subDimensions);
    const tableLength = table.length;
    // Eight sub-quantisers a step (offsets of 256: CENTROIDS_PER_SUBSPACE, fixed by one-byte
    // codes), the rest of m one a step: the scan is most of a query's time, and one lookup a loop
    // turn throughout is 2.8× slower.
    const unrolled = tableLength - (tableLength % (8 * CENTROIDS_PER_SUBSPACE));

    // A min-heap of the best `candidates` scores: its root is the score to beat.
    let found = 0;
    for (let probe = 0; probe < probed.keys.length; probe++) {
      const list = Number(probed.keys[probe]);
      const coarse = 1 - (probed.distances[probe] as number);
      const end = listStarts[list + 1] as number;
      for (let slot = listStarts[list] as number; slot < end; slot++) {
        let score = coarse;
        let codeAt = slot * subQuantizers;
        let tableBase = 0;
        for (; tableBase < unrolled; tableBase += 8 * CENTROIDS_PER_SUBSPACE, codeAt += 8) {
          score +=
            (table[tableBase + (codes[codeAt] as number)] as number) +
            (table[tableBase + 256 + (codes[codeAt + 1] as number)] as number) +
            (table[tableBase + 512 + (codes[codeAt + 2] as number)] as number) +
            (table[tableBase + 768 + (codes[codeAt + 3] as number)] as number) +
            (table[tableBase + 1024 + (codes[codeAt + 4] as number)] as number) +
            (table[tableBase + 1280 + (codes[codeAt + 5] as number)] as number) +
            (table[tableBase + 1536 + (codes[codeAt + 6] as number)] as number) +
            (table[tableBase + 1792 + (codes[codeAt + 7] as number)] as number);
        }
        for (; tableBase < tableLength; tableBase += CENTROIDS_PER_SUBSPACE) {
          score += table[tableBase + (codes[codeAt++] as number)] as number;
        }
        if (found < candidates) {
          siftUp(outScores, outIds, found, score, ids[slot] as number);
          found++;
        } else if (score > (outScores[0] as number)) {
          siftDown(outScores, outIds, found, score, ids[slot] as number);
        }
      }
    }
    return found;
  }

  /** Names this index's training: equal for indices whose lists mean the same (shared training). */
  get trainingKey(): string {
    this.trainingName ??= trainingKeyOf(this.centroidBits, this.dimensions);
    return this.trainingName;
  }

  /** The HNSW over this index's centroids, from GRAPH_COARSE_FROM lists on (built on first use). */
  private coarseGraph(): import("usearch").Index | undefined {
    if (this.lists < GRAPH_COARSE_FROM) return undefined;
    this.coarse ??= sharedCoarseGraph(this.centroidBits, this.centroidValues, this.dimensions);
    return this.coarse;
  }

  /** Bytes of everything the search reads: centroids, codebooks, list starts, ids, codes. */
  get bytes(): number {
    return encodedLength(this.dimensions, this.lists, this.subQuantizers, this.size);
  }

  async save(path: string): Promise<void> {
    await writeFile(path, this.encode());
  }

  encode(): Buffer {
    const { dimensions, lists, subQuantizers, size } = this;
    const out = Buffer.alloc(encodedLength(dimensions, lists, subQuantizers, size));
    out.write(MAGIC, 0, "latin1");
    out.writeUInt32LE(FORMAT_VERSION, 8);
    out.writeUInt32LE(dimensions, 12);
    out.writeUInt32LE(lists, 16);
    out.writeUInt32LE(subQuantizers, 20);
    out.writeUInt32LE(size, 24);
    let at = HEADER_BYTES;
    for (const part of [this.centroidBits, this.codebookBits, this.listStarts, this.ids]) {
      at = align4(at);
      Buffer.from(part.buffer, part.byteOffset, part.byteLength).copy(out, at);
      at += part.byteLength;
    }
    Buffer.from(this.codes.buffer, this.codes.byteOffset, this.codes.byteLength).copy(out, at);
    out.writeUInt32LE(crc32(out.subarray(HEADER_BYTES)), 28);
    return out;
  }

  /**
   * A saved index, checked whole: a file that is not one, is cut short, fails its checksum or
   * holds vectors of another dimension is refused with one line naming `path`.
   */
  static async open(path: string, dimensions: number): Promise<IvfPqIndex> {
    return IvfPqIndex.decode(await readFile(path), path, dimensions);
  }

  static decode(bytes: Buffer, path: string, expectedDimensions: number): IvfPqIndex {
    const fail = (what: string) => new IvfPqFileError(`${path}: ${what}`);
    if (bytes.length < HEADER_BYTES || bytes.toString("latin1", 0, 8) !== MAGIC) {
      throw fail("not a clipcrawl IVF-PQ index file");
    }
    const version = bytes.readUInt32LE(8);
    if (version !== FORMAT_VERSION)
      throw fail(`format version ${version}, expected ${FORMAT_VERSION}`);
    const dimensions = bytes.readUInt32LE(12);
    const lists = bytes.readUInt32LE(16);
    const subQuantizers = bytes.readUInt32LE(20);
    const rows = bytes.readUInt32LE(24);
    if (dimensions !== expectedDimensions) {
      throw fail(`built for ${dimensions}-d vectors, the index holds ${expectedDimensions}-d`);
    }
    if (lists === 0 || subQuantizers === 0 || dimensions % subQuantizers !== 0) {
      throw fail(
        `header names ${lists} lists and ${subQuantizers} sub-quantisers for ${dimensions}-d`,
      );
    }
    const expected = encodedLength(dimensions, lists, subQuantizers, rows);
    if (bytes.length !== expected) {
      throw fail(`${bytes.length} bytes, the header implies ${expected} (truncated or damaged)`);
    }
    if (crc32(bytes.subarray(HEADER_BYTES)) !== bytes.readUInt32LE(28)) {
      throw fail("checksum mismatch (damaged)");
    }
    // Aligned copies: the buffer's own offset need not suit typed-array views.
    const data = new Uint8Array(bytes.subarray(HEADER_BYTES)).buffer;
    let at = 0;
    const take = <T>(make: (offset: number, length: number) => T, length: number, size: number) => {
      at = align4(at + HEADER_BYTES) - HEADER_BYTES;
      const view = make(at, length);
      at += length * size;
      return view;
    };
    const subDimensions = dimensions / subQuantizers;
    const centroidBits = take((o, n) => new Uint16Array(data, o, n), lists * dimensions, 2);
    const codebookBits = take(
      (o, n) => new Uint16Array(data, o, n),
      subQuantizers * CENTROIDS_PER_SUBSPACE * subDimensions,
      2,
    );
    const listStarts = take((o, n) => new Uint32Array(data, o, n), lists + 1, 4);
    const ids = take((o, n) => new Uint32Array(data, o, n), rows, 4);
    const codes = new Uint8Array(data, at, rows * subQuantizers);
    for (let list = 0; list < lists; list++) {
      if ((listStarts[list + 1] as number) < (listStarts[list] as number)) {
        throw fail(`list ${list} ends before it starts (damaged)`);
      }
    }
    if (listStarts[0] !== 0 || listStarts[lists] !== rows) {
      throw fail(`lists hold ${listStarts[lists]} rows, the header says ${rows} (damaged)`);
    }
    return new IvfPqIndex(
      dimensions,
      subQuantizers,
      centroidBits,
      codebookBits,
      fromFloat16Bits(codebookBits),
      listStarts,
      ids,
      codes,
    );
  }
}

function encodedLength(dimensions: number, lists: number, subQuantizers: number, rows: number) {
  let at = HEADER_BYTES + lists * dimensions * 2;
  at = align4(at) + subQuantizers * CENTROIDS_PER_SUBSPACE * (dimensions / subQuantizers) * 2;
  at = align4(at) + (lists + 1) * 4;
  at = align4(at) + rows * 4;
  return at + rows * subQuantizers;
}

function align4(offset: number): number {
  return (offset + 3) & ~3;
}

/**
 * The query's inner product with every codebook centroid, sub-quantiser by sub-quantiser
 * (m × 256). Four dimensions a sub-quantiser (512-d at PQ128, the tier's usual code) keep the
 * query's values in locals: 2.4× faster than the general loop, and the table is a third of a
 * short query's time.
 */
function lookupTable(
  query: Float32Array,
  codebooks: Float32Array,
  subQuantizers: number,
  subDimensions: number,
): Float32Array {
  const table = new Float32Array(subQuantizers * CENTROIDS_PER_SUBSPACE);
  for (let sub = 0; sub < subQuantizers; sub++) {
    const queryBase = sub * subDimensions;
    const tableBase = sub * CENTROIDS_PER_SUBSPACE;
    let bookAt = tableBase * subDimensions;
    if (subDimensions === 4) {
      const q0 = query[queryBase] as number;
      const q1 = query[queryBase + 1] as number;
      const q2 = query[queryBase + 2] as number;
      const q3 = query[queryBase + 3] as number;
      for (let centroid = 0; centroid < CENTROIDS_PER_SUBSPACE; centroid++, bookAt += 4) {
        table[tableBase + centroid] =
          q0 * (codebooks[bookAt] as number) +
          q1 * (codebooks[bookAt + 1] as number) +
          q2 * (codebooks[bookAt + 2] as number) +
          q3 * (codebooks[bookAt + 3] as number);
      }
      continue;
    }
    for (let centroid = 0; centroid < CENTROIDS_PER_SUBSPACE; centroid++) {
      let sum = 0;
      for (let dim = 0; dim < subDimensions; dim++, bookAt++) {
        sum += (query[queryBase + dim] as number) * (codebooks[bookAt] as number);
      }
      table[tableBase + centroid] = sum;
    }
  }
  return table;
}

function siftUp(
  scores: Float32Array,
  ids: Uint32Array,
  size: number,
  score: number,
  id: number,
): void {
  let at = size;
  while (at > 0) {
    const parent = (at - 1) >> 1;
    if ((scores[parent] as number) <= score) break;
    scores[at] = scores[parent] as number;
    ids[at] = ids[parent] as number;
    at = parent;
  }
  scores[at] = score;
  ids[at] = id;
}

/** Replaces the heap's root (its lowest score) and restores the order. */
function siftDown(
  scores: Float32Array,
  ids: Uint32Array,
  size: number,
  score: number,
  id: number,
): void {
  let at = 0;
  for (;;) {
    const left = 2 * at + 1;
    if (left >= size) break;
    const right = left + 1;
    const child =
      right < size && (scores[right] as number) < (scores[left] as number) ? right : left;
    if ((scores[child] as number) >= score) break;
    scores[at] = scores[child] as number;
    ids[at] = ids[child] as number;
    at = child;
  }
  scores[at] = score;
  ids[at] = id;
}

/**
 * The array itself when it spans its whole buffer, else a copy: usearch's native search reads a
 * typed array from the start of its buffer, ignoring a view's offset and length.
 */
export function whole(array: Float32Array): Float32Array {
  return array.byteOffset === 0 && array.byteLength === array.buffer.byteLength
    ? array
    : array.slice();
}

function residualsOf(
  vectors: Float32Array,
  centroids: Float32Array,
  assignment: Uint32Array,
  dimensions: number,
): Float32Array {
  const residuals = new Float32Array(vectors.length);
  for (let row = 0; row < assignment.length; row++) {
    const base = (assignment[row] as number) * dimensions;
    const rowBase = row * dimensions;
    for (let dim = 0; dim < dimensions; dim++) {
      residuals[rowBase + dim] =
        (vectors[rowBase + dim] as number) - (centroids[base + dim] as number);
    }
  }
  return residuals;
}

/** For each centroid (row-major), the `count` nearest it (itself among them), row-major. */
export function nearestCentroids(
  centroids: Float32Array,
  dimensions: number,
  count: number,
  threads: number,
): { lists: Uint32Array; distances: Float32Array } {
  const { exactSearch, MetricKind } = usearch();
  const values = whole(centroids);
  const found = exactSearch(values, values, dimensions, count, MetricKind.L2sq, threads);
  return {
    lists: Uint32Array.from(found.keys, Number),
    distances: Float32Array.from(found.distances),
  };
}

/**
 * k-means in `subspaces` independent subspaces of `width` values at once (the coarse lists: one
 * subspace of every dimension; the PQ codebooks: one a sub-quantiser): `points` row-major, the
 * centres subspace-major ([s][k][w]). Starts from the first k points; an empty cluster restarts
 * at a random point.
 */
export async function kMeans(
  nearest: NearestCentres,
  points: Float32Array,
  subspaces: number,
  width: number,
  k: number,
  iterations: number,
): Promise<Float32Array> {
  const rowWidth = subspaces * width;
  const count = points.length / rowWidth;
  const centres = new Float32Array(subspaces * k * width);
  const place = (sub: number, cluster: number, row: number) => {
    const from = row * rowWidth + sub * width;
    centres.set(points.subarray(from, from + width), (sub * k + cluster) * width);
  };
  for (let sub = 0; sub < subspaces; sub++) {
    for (let cluster = 0; cluster < k; cluster++) place(sub, cluster, cluster);
  }
  const next = lcg(5);
  for (let iteration = 0; iteration < iterations; iteration++) {
    const assignment = await nearest.nearest(points, centres, subspaces, width, k);
    const sums = new Float64Array(centres.length);
    const sizes = new Uint32Array(subspaces * k);
    for (let row = 0; row < count; row++) {
      for (let sub = 0; sub < subspaces; sub++) {
        const cluster = sub * k + (assignment[row * subspaces + sub] as number);
        sizes[cluster] = (sizes[cluster] as number) + 1;
        const base = cluster * width;
        const rowBase = row * rowWidth + sub * width;
        for (let dim = 0; dim < width; dim++) {
          sums[base + dim] = (sums[base + dim] as number) + (points[rowBase + dim] as number);
        }
      }
    }
    for (let cluster = 0; cluster < subspaces * k; cluster++) {
      const size = sizes[cluster] as number;
      if (size === 0) {
        place(Math.floor(cluster / k), cluster % k, Math.floor(next() * count));
        continue;
      }
      for (let dim = 0; dim < width; dim++) {
        centres[cluster * width + dim] = (sums[cluster * width + dim] as number) / size;
      }
    }
  }
  return centres;
}

/** `wanted` rows drawn without replacement (seeded), in a new matrix. */
function pick(rows: Float32Array, dimensions: number, wanted: number): Float32Array {
  const count = rows.length / dimensions;
  if (wanted >= count) return rows;
  const order = Uint32Array.from({ length: count }, (_, index) => index);
  const next = lcg(17);
  const out = new Float32Array(wanted * dimensions);
  for (let index = 0; index < wanted; index++) {
    const swap = index + Math.floor(next() * (count - index));
    const row = order[swap] as number;
    order[swap] = order[index] as number;
    out.set(rows.subarray(row * dimensions, (row + 1) * dimensions), index * dimensions);
  }
  return out;
}

function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}
