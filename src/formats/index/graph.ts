/**
 * The HNSW graph of one modality, on usearch. Keys are index row ids. A new graph (float32 or
 * float16) holds its rows scaled to unit length and compares them by inner product, which is
 * then their cosine: the neighbours of usearch's cosine metric, which normalises both sides at
 * every comparison, for less work a comparison (`npm run bench -- index-metric`: as many or up to
 * 15 % more queries a second at the same recall on clustered 512-d rows, docs/index-engine.md).
 * An 8-bit graph, and any saved before, is cosine; a saved file keeps its metric (usearch reads
 * it from the file's header), so both open alike. Rows and queries reach usearch at unit length,
 * so a returned distance d is a similarity of 1 − d whatever their norms, on either metric.
 *
 * usearch's ESM entry cannot find its native binary (its directory lookup recurses forever under
 * `import`), so it is loaded through `require`; the prebuilt binary inside the package is used and
 * no install script is needed.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { createRequire } from "node:module";
import { normaliseRows } from "../../models/unit-rows.js";
import type { GraphQuantization, IndexParams } from "./index-manifest.js";

type Usearch = typeof import("usearch");
type UsearchIndex = import("usearch").Index;

let loaded: Usearch | undefined;

function usearch(): Usearch {
  loaded ??= createRequire(import.meta.url)("usearch") as Usearch;
  return loaded;
}

export interface GraphMatches {
  ids: Uint32Array;
  similarities: Float32Array;
}

export class VectorGraph {
  private constructor(
    private readonly index: UsearchIndex,
    readonly dimensions: number,
  ) {}

  static create(dimensions: number, params: GraphSettings): VectorGraph {
    return new VectorGraph(newIndex(dimensions, params), dimensions);
  }

  /** A saved graph: loaded into memory (to add to it) or memory-mapped read-only (`view`). */
  static open(
    path: string,
    dimensions: number,
    params: GraphSettings,
    mode: "load" | "view",
  ): VectorGraph {
    const index = newIndex(dimensions, params);
    if (mode === "view") index.view(path);
    else index.load(path);
    return new VectorGraph(index, dimensions);
  }

  get size(): number {
    return this.index.size();
  }

  /** Adds rows `firstId …` from a row-major matrix (any norms: each is added at unit length). */
  add(firstId: number, vectors: Float32Array, threads: number): void {
    const { dimensions } = this;
    const rows = vectors.length / dimensions;
    for (let start = 0; start < rows; start += ADD_ROWS) {
      const end = Math.min(rows, start + ADD_ROWS);
      const keys = new BigUint64Array(end - start);
      for (let row = start; row < end; row++) keys[row - start] = BigInt(firstId + row);
      this.index.add(
        keys,
        unitRows(vectors.subarray(start * dimensions, end * dimensions), dimensions),
        threads,
      );
    }
  }

  /** The `count` nearest rows of one query, best first. */
  search(query: Float32Array, count: number): GraphMatches {
    const matches = this.index.search(unitRows(query, this.dimensions), count, 1);
    return toGraphMatches(matches.keys, matches.distances, 0, matches.keys.length);
  }

  /** The `count` nearest rows of each query of a row-major matrix, on `threads` threads. */
  searchBatch(queries: Float32Array, count: number, threads: number): GraphMatches[] {
    const rows = queries.length / this.dimensions;
    if (rows === 1) return [this.search(queries, count)];
    const units = unitRows(queries, this.dimensions);
    const batch = this.index.search(
      Array.from({ length: rows }, (_, row) =>
        units.subarray(row * this.dimensions, (row + 1) * this.dimensions),
      ),
      count,
      threads,
    );
    const results: GraphMatches[] = [];
    for (let row = 0; row < rows; row++) {
      const found = Number(batch.counts[row]);
      results.push(toGraphMatches(batch.keys, batch.distances, row * count, found));
    }
    return results;
  }

  save(path: string): void {
    this.index.save(path);
  }
}

/**
 * The exact `count` nearest rows of each query (inner product over normalised rows), by brute
 * force on `threads` threads: the truth that recall is measured against.
 */
export function exactNeighbours(
  dataset: Float32Array,
  queries: Float32Array,
  dimensions: number,
  count: number,
  threads: number,
): GraphMatches[] {
  const { exactSearch, MetricKind } = usearch();
  const rows = queries.length / dimensions;
  const found = exactSearch(dataset, queries, dimensions, count, MetricKind.IP, threads);
  if (rows === 1) return [toGraphMatches(found.keys, found.distances, 0, found.keys.length)];
  const batch = found as import("usearch").BatchMatches;
  return Array.from({ length: rows }, (_, row) =>
    toGraphMatches(batch.keys, batch.distances, row * count, Number(batch.counts[row])),
  );
}

const SCALAR_BYTES: Record<GraphQuantization, number> = { f32: 4, f16: 2, i8: 1 };

/**
 * Checks a saved graph before usearch sees it: usearch memory-maps a truncated file, or one of
 * another width, without complaint or with an error after which the process may crash, so the
 * file's own header (rows, then bytes a row, ahead of the vectors) and its size are compared
 * with what the manifest says. Throws one line saying what differs.
 */
export function checkGraphFile(
  path: string,
  expected: { rows: number; dimensions: number; quantization: GraphQuantization; bytes?: number },
): void {
  const descriptor = openSync(path, "r");
  try {
    const size = fstatSync(descriptor).size;
    const header = Buffer.alloc(8);
    if (readSync(descriptor, header, 0, 8, 0) < 8) throw new Error(`${size} bytes, not a graph`);
    const rows = header.readUInt32LE(0);
    const rowBytes = header.readUInt32LE(4);
    const scalar = SCALAR_BYTES[expected.quantization];
    if (rowBytes !== expected.dimensions * scalar) {
      throw new Error(
        `${rowBytes / scalar}-d ${expected.quantization} vectors, the index is ${expected.dimensions}-d: built with another model`,
      );
    }
    if (rows !== expected.rows) {
      throw new Error(`holds ${rows} vectors, the manifest says ${expected.rows}`);
    }
    if (expected.bytes !== undefined && size !== expected.bytes) {
      throw new Error(
        `${size} bytes, the manifest says ${expected.bytes}: ${size < expected.bytes ? "truncated" : "damaged"}`,
      );
    }
    if (size < 8 + rows * rowBytes) throw new Error(`${size} bytes: truncated`);
  } finally {
    closeSync(descriptor);
  }
}

export type GraphSettings = Pick<
  IndexParams,
  "quantization" | "connectivity" | "expansionAdd" | "expansionSearch"
>;

/** Rows handed to usearch a call: each call's rows are first scaled into a copy this size. */
const ADD_ROWS = 16_384;

function unitRows(vectors: Float32Array, dimensions: number): Float32Array {
  return normaliseRows({ rows: vectors.length / dimensions, dimensions, data: vectors }).data;
}

/** A new graph's metric (inner product unless 8-bit); an opened file's is its header's. */
function newIndex(dimensions: number, params: GraphSettings): UsearchIndex {
  const { Index, MetricKind, ScalarKind } = usearch();
  const scalar: Record<GraphQuantization, import("usearch").ScalarKind> = {
    f32: ScalarKind.F32,
    f16: ScalarKind.F16,
    i8: ScalarKind.I8,
  };
  return new Index({
    dimensions,
    // An 8-bit graph stays cosine: usearch's i8 cosine rescales the integers, its product not.
    metric: params.quantization === "i8" ? MetricKind.Cos : MetricKind.IP,
    quantization: scalar[params.quantization],
    connectivity: params.connectivity,
    expansion_add: params.expansionAdd,
    expansion_search: params.expansionSearch,
    multi: false,
  });
}

function toGraphMatches(
  keys: BigUint64Array,
  distances: Float32Array,
  offset: number,
  count: number,
): GraphMatches {
  const ids = new Uint32Array(count);
  const similarities = new Float32Array(count);
  for (let index = 0; index < count; index++) {
    ids[index] = Number(keys[offset + index]);
    similarities[index] = 1 - (distances[offset + index] as number);
  }
  return { ids, similarities };
}
