/**
 * The memory tier's graph metric: usearch's inner product over rows scaled to unit length (what
 * `VectorGraph` builds) against usearch's cosine metric (what it built before, and what 8-bit
 * graphs still use), on the same rows, queries and settings, in the same run.
 *
 * Rows: N clustered 512-d rows as in `npm run bench -- index` (its mixture and seed); 2,000
 * queries from the same mixture; the truth is exact inner-product search over the unit rows.
 * Each metric builds one graph (M 16, efConstruction 128, every core), then answers the queries
 * one at a time on one thread at each search list, after one untimed pass. Reported: build
 * seconds, recall@10 and queries a second.
 *
 *   npm run bench -- index-metric [--vectors 200000] [--lists 64,128,256]
 */
import { rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { exactNeighbours, VectorGraph } from "../src/formats/index/graph.js";
import { ClusterMixture } from "./index.js";
import { type BenchRow, benchDataPath, loadAverage, printTable } from "./support.js";

type Usearch = typeof import("usearch");

const DIMENSIONS = 512;
const QUERIES = 2000;
const K = 10;

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      vectors: { type: "string", default: "200000" },
      lists: { type: "string", default: "64,128,256" },
    },
  });
  const rows = Number(values.vectors);
  const lists = values.lists.split(",").map(Number);
  const threads = cpus().length;
  console.log(`${threads} cores, load average at start: ${loadAverage()}`);
  const usearch = createRequire(import.meta.url)("usearch") as Usearch;

  const mixture = new ClusterMixture(Math.max(50, Math.round(rows / 1000)), 20240601);
  const vectors = new Float32Array(rows * DIMENSIONS);
  const rowRandom = seededUniform(11);
  for (let row = 0; row < rows; row++) mixture.sample(rowRandom, vectors, row * DIMENSIONS);
  const queries = new Float32Array(QUERIES * DIMENSIONS);
  const queryRandom = seededUniform(7);
  for (let query = 0; query < QUERIES; query++) {
    mixture.sample(queryRandom, queries, query * DIMENSIONS);
  }
  const truth = exactNeighbours(vectors, queries, DIMENSIONS, K, threads).map(
    (matches) => new Set(matches.ids),
  );
  const keys = BigUint64Array.from({ length: rows }, (_, row) => BigInt(row));
  const queryRows = Array.from({ length: QUERIES }, (_, query) =>
    queries.subarray(query * DIMENSIONS, (query + 1) * DIMENSIONS),
  );

  /** A graph of the rows, saved; and how to open it again with a search list. */
  interface Built {
    buildSeconds: number;
    search: (list: number) => (query: Float32Array) => BigUint64Array | Uint32Array;
  }
  const path = await benchDataPath(`index-metric-${rows}.usearch`);
  const ours = "inner product, unit rows (clipcrawl's VectorGraph)";
  const before = "usearch cosine (before)";
  const settings = { quantization: "f32" as const, connectivity: 16, expansionAdd: 128 };
  const builds: [string, () => Built][] = [
    [
      ours,
      () => {
        const graph = VectorGraph.create(DIMENSIONS, { ...settings, expansionSearch: 64 });
        const started = performance.now();
        graph.add(0, vectors, threads);
        const buildSeconds = (performance.now() - started) / 1000;
        graph.save(path);
        return {
          buildSeconds,
          search: (list) => {
            const view = VectorGraph.open(
              path,
              DIMENSIONS,
              { ...settings, expansionSearch: list },
              "view",
            );
            return (query) => view.search(query, K).ids;
          },
        };
      },
    ],
    [
      before,
      () => {
        const cosine = (list: number) =>
          new usearch.Index({
            dimensions: DIMENSIONS,
            metric: usearch.MetricKind.Cos,
            quantization: usearch.ScalarKind.F32,
            connectivity: settings.connectivity,
            expansion_add: settings.expansionAdd,
            expansion_search: list,
            multi: false,
          });
        const graph = cosine(64);
        const started = performance.now();
        graph.add(keys, vectors, threads);
        const buildSeconds = (performance.now() - started) / 1000;
        graph.save(path);
        return {
          buildSeconds,
          search: (list) => {
            const view = cosine(list);
            view.view(path);
            return (query) => view.search(query, K, 1).keys;
          },
        };
      },
    ],
  ];
  const table: (string | number)[][] = [
    ["metric", "build s", "list", "recall@10", "QPS, 1 thread"],
  ];
  const qps = new Map<string, number>();
  const recalls = new Map<string, number>();
  for (const [name, build] of builds) {
    const built = build();
    for (const list of lists) {
      const search = built.search(list);
      for (const query of queryRows) search(query);
      let hits = 0;
      const timed = performance.now();
      for (const [at, query] of queryRows.entries()) {
        for (const key of search(query)) if (truth[at]?.has(Number(key))) hits++;
      }
      const seconds = (performance.now() - timed) / 1000;
      qps.set(`${name}/${list}`, QUERIES / seconds);
      recalls.set(`${name}/${list}`, hits / (QUERIES * K));
      table.push([
        name,
        built.buildSeconds.toFixed(1),
        list,
        (hits / (QUERIES * K)).toFixed(3),
        Math.round(QUERIES / seconds),
      ]);
    }
    await rm(path, { force: true });
  }
  printTable(table);
  console.log(`load average at end: ${loadAverage()}`);
  return lists.map((list) => ({
    stage: `HNSW ${rows} rows, list ${list}, 1 thread: inner product over unit rows (recall ${recalls.get(`${ours}/${list}`)?.toFixed(3)}) vs cosine (recall ${recalls.get(`${before}/${list}`)?.toFixed(3)})`,
    unit: "QPS",
    clipcrawl: qps.get(`${ours}/${list}`) ?? Number.NaN,
    peer: { name: "usearch cosine", value: qps.get(`${before}/${list}`) ?? Number.NaN },
    ratio:
      (qps.get(`${ours}/${list}`) ?? Number.NaN) / (qps.get(`${before}/${list}`) ?? Number.NaN),
    target: "none (report: the choice of metric)",
  }));
}
