/**
 * The engine evaluation for the compressed index tier (issue 19): which engine answers at
 * ≤ 150 bytes per vector, recall@10 ≥ 0.90 after re-ranking with float16 vectors read from disk,
 * and at least faiss IVF-PQ's queries per second on one thread.
 *
 * Vectors, queries and truth are `npm run bench -- index`'s (clustered 512-d CLIP-like vectors
 * as embeddings shards, queries from the same mixture, exact top-10 over the stored float16
 * vectors), generated once per size under bench/.data/index-N/. Measured, on the image vectors:
 * - usearch 2.25.3 quantised graphs: b1 (sign bits, Hamming) and i8 (cosine), low connectivity;
 * - an IVF-PQ of our own in typed arrays (bench/engines/ivf-pq.ts), autofaiss's list count;
 * - faiss IVF-PQ with autofaiss's list count and the same code sizes, and faiss HNSW in memory;
 * every compressed engine re-ranks its top candidates with the float16 rows read from the
 * embeddings files. Bytes per vector count everything the search reads except those rows.
 *
 *   npm run bench -- index-engines [--vectors 200000] [--queries 1000] [--candidates 100]
 *     [--prepare] [--no-faiss] [--faiss-hnsw]
 * `--prepare` only generates the vectors and the truth (run it outside the bench lock).
 */
import { readFile, rm, stat } from "node:fs/promises";
import { createRequire } from "node:module";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { layout, shardName } from "../src/io/layout.js";
import { decodeNpy } from "../src/io/npy.js";
import { fromFloat16Bits } from "../src/models/float16.js";
import { Float16Reranker } from "./engines/f16-reranker.js";
import { IvfPqIndex } from "./engines/ivf-pq.js";
import { type BenchData, ensureData } from "./index.js";
import {
  type BenchRow,
  benchDataPath,
  faissPeerLines,
  loadAverage,
  printTable,
} from "./support.js";

const { Index, MetricKind, ScalarKind } = createRequire(import.meta.url)(
  "usearch",
) as typeof import("usearch");

const DIMENSIONS = 512;
const K = 10;
const ROWS_PER_SHARD = 100_000;
const BYTES_BUDGET = 150;
const RECALL_GOAL = 0.9;
/**
 * PQ64: with autofaiss's list count and 8-byte ids, the largest code that fits the 150 bytes
 * (PQ128 alone is 128 + 8 bytes before the centroids).
 */
const CODE_SIZES = [64];
const PROBES = [8, 16, 32, 64];

interface Row {
  engine: string;
  params: string;
  buildSeconds: number;
  bytesPerVector: number;
  recall: number;
  qps: number;
}

interface GraphVariant {
  quantization: "b1" | "i8";
  connectivity: number;
  expansions: number[];
}

const GRAPHS: GraphVariant[] = [
  { quantization: "b1", connectivity: 4, expansions: [128, 256, 512] },
  { quantization: "b1", connectivity: 8, expansions: [128, 256, 512] },
  { quantization: "i8", connectivity: 8, expansions: [32, 64, 128] },
];

export async function main(args: string[]): Promise<BenchRow[] | undefined> {
  const { values } = parseArgs({
    args,
    options: {
      vectors: { type: "string", default: "200000" },
      queries: { type: "string", default: "1000" },
      candidates: { type: "string", default: "100" },
      prepare: { type: "boolean", default: false },
      "no-faiss": { type: "boolean", default: false },
      "faiss-hnsw": { type: "boolean", default: false },
    },
  });
  const vectorCount = Number(values.vectors);
  const queryCount = Number(values.queries);
  const candidates = Number(values.candidates);
  const threads = cpus().length;
  const folder = await benchDataPath(`index-${vectorCount}`);
  const root = join(folder, "root");
  const data = await ensureData(root, folder, vectorCount, queryCount);
  if (values.prepare === true) return undefined;
  console.log(`${threads} cores, load average at start: ${loadAverage()}`);

  const shardPaths = Array.from({ length: Math.ceil(vectorCount / ROWS_PER_SHARD) }, (_, shard) =>
    join(root, layout.imageEmbeddings(shardName(shard))),
  );
  const vectors = await readVectors(shardPaths, vectorCount);
  const reranker = new Float16Reranker(shardPaths, DIMENSIONS);
  const rows: Row[] = [];
  try {
    for (const variant of GRAPHS) {
      rows.push(...(await measureGraph(variant, vectors, data, reranker, folder, threads)));
    }
    const lists = autofaissLists(vectorCount);
    const subQuantizers = CODE_SIZES[0] as number;
    rows.push(...measureIvfPq(vectors, data, reranker, lists, subQuantizers, candidates, threads));
  } finally {
    reranker.close();
  }
  if (values["no-faiss"] !== true) {
    console.log(`running faiss on the same vectors (load average ${loadAverage()})`);
    rows.push(...runFaiss(root, data, threads, candidates, values["faiss-hnsw"] === true));
  }

  printTable([
    ["engine", "params", "build s", "bytes/vector", "recall@10", "QPS 1 thread"],
    ...rows.map((row) => [
      row.engine,
      row.params,
      row.buildSeconds.toFixed(1),
      row.bytesPerVector.toFixed(0),
      row.recall.toFixed(3),
      row.qps.toFixed(0),
    ]),
  ]);
  console.log(`load average at end: ${loadAverage()}`);
  return headline(rows);
}

/** Per engine, the best QPS among rows within the goal's bytes and recall, against faiss IVF-PQ's. */
function headline(rows: readonly Row[]): BenchRow[] {
  const withinGoal = (row: Row) => row.bytesPerVector <= BYTES_BUDGET && row.recall >= RECALL_GOAL;
  const best = (engine: string) =>
    Math.max(
      0,
      ...rows.filter((row) => row.engine === engine && withinGoal(row)).map((row) => row.qps),
    );
  const faiss = best("faiss IVF-PQ + f16 re-rank");
  const engines = [...new Set(rows.map((row) => row.engine))].filter(
    (engine) => !engine.startsWith("faiss"),
  );
  return engines.map((engine) => {
    const ours = best(engine);
    console.log(
      `≤ ${BYTES_BUDGET} B/vector, recall@10 ≥ ${RECALL_GOAL}: ${engine} ${ours.toFixed(0)} QPS, faiss IVF-PQ ${faiss.toFixed(0)} QPS`,
    );
    return {
      stage: `compressed index, ${engine}, ≤ ${BYTES_BUDGET} B/vector, recall@10 ≥ ${RECALL_GOAL}, 1 thread`,
      unit: "QPS",
      clipcrawl: ours,
      ...(faiss === 0
        ? {}
        : {
            peer: { name: "faiss IVF-PQ", value: faiss },
            ratio: ours / faiss,
            met: ours > 0 && ours >= faiss,
          }),
      target: "≥ 1× faiss IVF-PQ",
    };
  });
}

async function measureGraph(
  variant: GraphVariant,
  vectors: Float32Array,
  data: BenchData,
  reranker: Float16Reranker,
  folder: string,
  threads: number,
): Promise<Row[]> {
  const count = vectors.length / DIMENSIONS;
  const config = {
    dimensions: DIMENSIONS,
    metric: variant.quantization === "b1" ? MetricKind.Hamming : MetricKind.Cos,
    quantization: variant.quantization === "b1" ? ScalarKind.B1 : ScalarKind.I8,
    connectivity: variant.connectivity,
    expansion_add: 64,
    multi: false,
  };
  const started = performance.now();
  const built = new Index({ ...config, expansion_search: 64 });
  built.add(
    BigUint64Array.from({ length: count }, (_, id) => BigInt(id)),
    vectors,
    threads,
  );
  const buildSeconds = (performance.now() - started) / 1000;
  const path = join(folder, `usearch-${variant.quantization}-M${variant.connectivity}.usearch`);
  built.save(path);
  const bytesPerVector = (await stat(path)).size / count;
  console.log(
    `usearch ${variant.quantization} M=${variant.connectivity}: built in ${buildSeconds.toFixed(1)} s`,
  );
  const rows: Row[] = [];
  for (const expansion of variant.expansions) {
    const index = new Index({ ...config, expansion_search: expansion });
    index.view(path);
    const measured = measure(data, reranker, (query, out) => {
      const found = index.search(query, expansion, 1);
      for (let at = 0; at < found.keys.length; at++) out[at] = Number(found.keys[at]);
      return found.keys.length;
    });
    rows.push({
      engine: `usearch ${variant.quantization} graph + f16 re-rank`,
      params: `M=${variant.connectivity} efC=64 ef=${expansion} R=${expansion}`,
      buildSeconds,
      bytesPerVector,
      ...measured,
    });
  }
  await rm(path, { force: true });
  return rows;
}

function measureIvfPq(
  vectors: Float32Array,
  data: BenchData,
  reranker: Float16Reranker,
  lists: number,
  subQuantizers: number,
  candidates: number,
  threads: number,
): Row[] {
  const started = performance.now();
  const index = IvfPqIndex.build(vectors, DIMENSIONS, {
    lists,
    subQuantizers,
    pointsPerList: 32,
    iterations: 6,
    threads,
  });
  const buildSeconds = (performance.now() - started) / 1000;
  const bytesPerVector = index.bytes() / (vectors.length / DIMENSIONS);
  console.log(`own IVF${lists},PQ${subQuantizers}: built in ${buildSeconds.toFixed(1)} s`);
  return PROBES.map((probes) => ({
    engine: "own IVF-PQ (typed arrays) + f16 re-rank",
    params: `IVF${lists},PQ${subQuantizers} nprobe=${probes} R=${candidates}`,
    buildSeconds,
    bytesPerVector,
    ...measure(data, reranker, (query, out) => index.search(query, probes, candidates, out)),
  }));
}

/** recall@10 and one-thread QPS of `candidatesOf` followed by the float16 re-rank. */
function measure(
  data: BenchData,
  reranker: Float16Reranker,
  candidatesOf: (query: Float32Array, out: Uint32Array) => number,
): { recall: number; qps: number } {
  const count = data.queries.length / DIMENSIONS;
  const out = new Uint32Array(4096);
  const answer = (query: number) => {
    const vector = data.queries.subarray(query * DIMENSIONS, (query + 1) * DIMENSIONS);
    return reranker.rerank(vector, out, candidatesOf(vector, out), K);
  };
  for (let query = 0; query < Math.min(count, 100); query++) answer(query);
  const found: number[][] = [];
  const started = performance.now();
  for (let query = 0; query < count; query++) found.push(answer(query));
  const seconds = (performance.now() - started) / 1000;
  let hits = 0;
  found.forEach((ids, query) => {
    const expected = new Set(data.truth.subarray(query * K, (query + 1) * K));
    for (const id of ids) if (expected.has(id)) hits++;
  });
  return { recall: hits / (count * K), qps: count / seconds };
}

/** autofaiss below 1M vectors: 4·sqrt(n) lists, rounded to the nearest power of two. */
function autofaissLists(count: number): number {
  return 2 ** Math.round(Math.log2(4 * Math.sqrt(count)));
}

async function readVectors(paths: readonly string[], count: number): Promise<Float32Array> {
  const halfValues = fromFloat16Bits(Uint16Array.from({ length: 65536 }, (_, bits) => bits));
  const vectors = new Float32Array(count * DIMENSIONS);
  let offset = 0;
  for (const path of paths) {
    const array = decodeNpy(await readFile(path));
    if (array.dtype !== "<f2")
      throw new Error(`${path}: expected float16 embeddings, found ${array.dtype}`);
    for (const bits of array.data) vectors[offset++] = halfValues[bits] as number;
  }
  return vectors;
}

function runFaiss(
  root: string,
  data: BenchData,
  threads: number,
  candidates: number,
  hnsw: boolean,
): Row[] {
  const script = new URL("./peers/faiss_compressed.py", import.meta.url).pathname;
  const lines = faissPeerLines<{
    engine: string;
    params: string;
    build_s: number;
    bytes_per_vector: number;
    recall: number;
    qps: number;
  }>(script, [
    join(root, "embeddings", "img_emb"),
    data.queriesPath,
    data.truthPath,
    String(threads),
    CODE_SIZES.join(","),
    String(candidates),
    hnsw ? "16" : "0",
    "64",
  ]);
  return lines.map((peer) => {
    return {
      engine: peer.engine,
      params: peer.params,
      buildSeconds: peer.build_s,
      bytesPerVector: peer.bytes_per_vector,
      recall: peer.recall,
      qps: peer.qps,
    };
  });
}
