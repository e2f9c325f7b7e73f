/**
 * `clipcrawl index` and its query path against faiss on the same vectors, in the same run.
 *
 * Vectors: N synthetic 512-d L2-normalised embeddings drawn from a mixture of clusters (cluster
 * centres, each with its own spread), written once as embeddings shards (img_emb/text_emb
 * float16 .npy + metadata parquet with score and language columns) that both clipcrawl and the
 * faiss peer read. Queries come from the same mixture; the truth is exact search over the stored
 * (float16) vectors.
 *
 * Measured: build time and size of the stage (both graphs, near-duplicate groups, metadata), then
 * on the image graph recall@10 and queries per second for a sweep of the search candidate list:
 * one thread, one query per call through `ClipIndex.search` (the serve hot path); and W worker
 * threads, each with the index memory-mapped, one query per call. Filtered queries (safe mode,
 * a 1% language, deduplication) report their QPS and how many returned k. faiss (HNSW with the
 * same M at efConstruction 128; IVF-PQ as autofaiss builds it, with and without re-ranking) runs
 * on the same files. Target: at recall@10 ≥ 0.95, clipcrawl's QPS ≥ faiss's.
 *
 *   npm run bench -- index [--vectors 1000000] [--queries 1000] [--workers 2] [--no-faiss]
 *     [--tier memory|compressed] [--faiss-lists LISTS[:CODE],…] [--expansion-add N]
 * `--tier compressed`: the compressed tier (IVF-PQ + float16 re-rank) against faiss IVF-PQ as
 * autofaiss builds it; see compressedTier.
 */
import { mkdir, open, readdir, readFile, rm, stat } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { isMainThread } from "node:worker_threads";
import { CAPTION_LANGUAGES, type CaptionLanguage } from "../src/demo/sample/sample-captions.js";
import { SeededRandom, seededUniform } from "../src/demo/sample/wat-generator.js";
import { webCaption } from "../src/demo/sample/web-captions.js";
import { type ClipIndex, openIndex, type SearchFilters } from "../src/formats/index/clip-index.js";
import { indexShards, readManifest } from "../src/formats/index/index-manifest.js";
import { layout, shardName } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { decodeNpy, encodeNpy } from "../src/io/npy.js";
import { writeParquet } from "../src/io/parquet.js";
import { DotProducts } from "../src/models/dot-products.js";
import { fromFloat16Bits, toFloat16Bits } from "../src/models/float16.js";
import { serveWorkerTasks, WorkerPool } from "../src/shard/worker-pool.js";
import { buildIndex, type IndexSummary } from "../src/stages/index/build-index.js";
import { indexConfigSchema } from "../src/stages/index/config.js";
import {
  autofaissLists,
  headline as compressedHeadline,
  type Row as EngineRow,
  runFaiss as runFaissCompressed,
} from "./index-engines.js";
import { startServeProcess } from "./serve.js";
import {
  type BenchRow,
  benchDataPath,
  faissPeerLines,
  loadAverage,
  printTable,
} from "./support.js";

const DIMENSIONS = 512;
const K = 10;
/** Share of rows that are near-duplicates of an earlier row (the web's copies of one image). */
export const NEAR_DUPLICATE_SHARE = 0.03;
/**
 * The generated vectors' version, in their folder's name: a change to how they are drawn gets a
 * new folder, since faiss's cached indices and the truth there belong to the vectors.
 */
const DATA_VERSION = 2;

/** Where the index benches keep `vectors` generated rows, their queries, truth and faiss's builds. */
export function indexDataFolder(vectors: number): Promise<string> {
  return benchDataPath(`index-${vectors}-v${DATA_VERSION}`);
}
const ROWS_PER_SHARD = 100_000;
const CONNECTIVITY = 16;
/** clipcrawl's efConstruction: the product's default unless `--expansion-add` sets it. */
const EXPANSION_ADD = indexConfigSchema.parse({}).expansionAdd;
/**
 * faiss HNSW's efConstruction: 128 (its default is 40), which buys its graph more recall a list
 * than its default would, and the value clipcrawl's graphs were first measured at.
 */
const FAISS_EXPANSION_ADD = 128;
/** The search lists measured, on both sides (faiss's efSearch gets the same grid). */
const EXPANSIONS = [16, 32, 48, 64, 96, 128, 160, 192, 224, 256];
const LANGUAGES = ["en", "de", "fr", "es", "ja", "sw"];

interface Row {
  engine: string;
  params: string;
  build: string;
  mb: string;
  recall: number;
  qps1: number;
  qpsN: number;
  note?: string;
}

/** The compressed tier's rows are recorded apart from the in-memory tier's. */
export function resultName(args: string[]): string {
  const at = args.indexOf("--tier");
  const tier = at >= 0 ? args[at + 1] : args.find((arg) => arg.startsWith("--tier="))?.slice(7);
  return tier === "compressed" ? "index --tier compressed" : "index";
}

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      vectors: { type: "string", default: "1000000" },
      queries: { type: "string", default: "1000" },
      workers: { type: "string", default: String(cpus().length) },
      "no-faiss": { type: "boolean", default: false },
      tier: { type: "string", default: "memory" },
      "faiss-lists": { type: "string" },
      "expansion-add": { type: "string", default: String(EXPANSION_ADD) },
    },
  });
  if (values.tier !== "memory" && values.tier !== "compressed") {
    throw new Error(`--tier is memory or compressed, not ${values.tier}`);
  }
  const vectors = Number(values.vectors);
  const queryCount = Number(values.queries);
  const expansionAdd = Number(values["expansion-add"]);
  if (!Number.isInteger(expansionAdd) || expansionAdd < 1) {
    throw new Error(`--expansion-add is a positive integer, not ${values["expansion-add"]}`);
  }
  const workers = Number(values.workers);
  const load = () =>
    loadavg()
      .map((value) => value.toFixed(2))
      .join(" ");
  console.log(`${cpus().length} cores, load average at start: ${load()}`);

  const folder = await indexDataFolder(vectors);
  const root = join(folder, "root");
  const data = await ensureData(root, folder, vectors, queryCount);
  if (values.tier === "compressed") {
    const faissLists = values["faiss-lists"]?.split(",");
    return compressedTier(root, folder, data, workers, values["no-faiss"] !== true, faissLists);
  }

  await rm(join(root, "index"), { recursive: true, force: true });
  await rm(join(root, "_state", "index"), { recursive: true, force: true });
  const summary = await buildIndex({
    root,
    config: {
      threads: cpus().length,
      connectivity: CONNECTIVITY,
      expansionAdd,
      memoryBudgetMb: 1e6,
      quantization: "f32",
    },
  });
  if (!summary.ok) throw new Error(`index failed: ${JSON.stringify(summary.failedShards)}`);
  const indexBytes = await folderBytes(join(root, "index"));
  const manifest = await readManifest(new LocalStorage(root));
  if (manifest === undefined) throw new Error("no manifest after a successful build");
  let imageGraphBytes = 0;
  for (const shard of indexShards(manifest)) {
    imageGraphBytes += (await stat(join(root, shard.graphs.image))).size;
  }
  console.log(describeBuild(summary, indexBytes));

  const rows: Row[] = [];
  const graphBuild = `${(summary.timings.graph / 2).toFixed(1)} (one graph)`;
  let chosen: number | undefined;
  for (const expansion of EXPANSIONS) {
    const index = await openIndex(root, { expansionSearch: expansion });
    const { recall, qps } = measureSingle(index, data.queries, data.truth);
    index.close();
    rows.push({
      engine: "clipcrawl (usearch HNSW)",
      params: `M=${CONNECTIVITY} efC=${expansionAdd} ef=${expansion} f32`,
      build: graphBuild,
      mb: (imageGraphBytes / 1e6).toFixed(0),
      recall,
      qps1: qps,
      qpsN: Number.NaN,
    });
    if (chosen === undefined && recall >= 0.95) chosen = expansion;
  }
  const pool = new WorkerPool<QueryTask, QueryResult>(new URL(import.meta.url), workers);
  try {
    for (const row of rows) {
      const expansion = Number(/ef=(\d+)/.exec(row.params)?.[1]);
      row.qpsN = await measureConcurrent(pool, workers, root, expansion, data.queries);
    }
  } finally {
    await pool.close();
  }

  if (chosen !== undefined) {
    const index = await openIndex(root, { expansionSearch: chosen });
    for (const [label, filters] of filterCases()) {
      const measured = measureFiltered(index, data.queries, filters);
      rows.push({
        engine: "clipcrawl filtered",
        params: `ef=${chosen} ${label}`,
        build: "",
        mb: "",
        recall: Number.NaN,
        qps1: measured.qps,
        qpsN: Number.NaN,
        note: `${(measured.full * 100).toFixed(1)}% returned k; plans ${measured.paths}`,
      });
    }
    index.close();
  }

  if (values["no-faiss"] !== true) {
    console.log(`running faiss on the same vectors (load average ${load()})`);
    rows.push(...runFaiss(root, data, workers));
  }

  printTable([
    [
      "engine",
      "params",
      "build s",
      "MB",
      "recall@10",
      "QPS 1 thread",
      `QPS ${workers} threads`,
      "",
    ],
    ...rows.map((row) => [
      row.engine,
      row.params,
      row.build,
      row.mb,
      Number.isNaN(row.recall) ? "" : row.recall.toFixed(3),
      row.qps1.toFixed(0),
      Number.isNaN(row.qpsN) ? "" : row.qpsN.toFixed(0),
      row.note ?? "",
    ]),
  ]);
  const headline = report(rows, workers);
  console.log(`load average at end: ${load()}`);
  return headline;
}

const COMPRESSED_PROBES = [4, 8, 16, 32];
const COMPRESSED_RERANK = [50, 100, 200];
/** faiss IVF-PQ's code within 150 bytes a vector with its 8-byte ids (autofaiss's choice). */
const FAISS_CODE_SIZE = 64;

/**
 * `--tier compressed`: the stage as `clipcrawl index --tier compressed` builds it (IVF-PQ a
 * modality, float16 re-rank from the segment files), its bytes a vector, recall@10 and QPS on
 * 1 and W threads over a sweep of lists scanned and candidates re-ranked, filtered queries,
 * `clipcrawl serve`'s peak RSS answering the queries, and faiss IVF-PQ on the same vectors.
 */
async function compressedTier(
  root: string,
  folder: string,
  data: BenchData,
  workers: number,
  faiss: boolean,
  /** faiss's IVF-PQ configurations, `LISTS` or `LISTS:CODE`; default: autofaiss's and ours. */
  faissLists?: readonly string[],
): Promise<BenchRow[]> {
  await rm(join(root, "index"), { recursive: true, force: true });
  await rm(join(root, "_state", "index"), { recursive: true, force: true });
  const summary = await buildIndex({
    root,
    config: { threads: cpus().length, tier: "compressed", atlasPoints: 0 },
  });
  if (!summary.ok) throw new Error(`index failed: ${JSON.stringify(summary.failedShards)}`);
  const manifest = await readManifest(new LocalStorage(root));
  if (manifest === undefined) throw new Error("no manifest after a successful build");
  const rows = manifest.rows;
  let listBytes = 0;
  for (const shard of indexShards(manifest)) {
    listBytes += (await stat(join(root, shard.graphs.image))).size;
  }
  // The lists and code the first shard's file holds (what the training made of the request).
  const file = await open(join(root, indexShards(manifest)[0]?.graphs.image ?? ""));
  const { buffer: header } = await file.read(Buffer.alloc(32), 0, 32, 0);
  await file.close();
  const trained = { lists: header.readUInt32LE(16), subQuantizers: header.readUInt32LE(20) };
  const folderTotal = await folderBytes(join(root, "index"));
  const vectorBytes = await folderBytes(join(root, "index", "segments"), /_emb\.npy$/);
  const buildSeconds = summary.timings.total;
  console.log(describeBuild(summary, folderTotal));
  console.log(`tier: ${summary.tierReason}`);
  const metadataText =
    (await folderBytes(join(root, "index", "segments"), /^metadata\.(parquet|rows)$/)) / rows;
  const bytesPerVector = listBytes / rows;
  const besideVectors = (folderTotal - vectorBytes) / (2 * rows);
  const besideMetadata = besideVectors - metadataText / 2;
  console.log(
    `bytes a vector a modality: ${bytesPerVector.toFixed(1)} in the image .ivfpq files (lists, codes, ids, centroids); ${besideVectors.toFixed(1)} for everything in index/ but the float16 rows (metadata columns and groups included), ${besideMetadata.toFixed(1)} without the segments' metadata files (${metadataText.toFixed(1)} B a row: metadata.parquet and metadata.rows, URL, caption and the other columns)`,
  );

  const measured: (EngineRow & { qpsN: number; search: { probes: number; rerank: number } })[] = [];
  const pool = new WorkerPool<QueryTask, QueryResult>(new URL(import.meta.url), workers);
  try {
    for (const probes of COMPRESSED_PROBES) {
      for (const rerank of COMPRESSED_RERANK) {
        const search = { probes, rerank };
        const index = await openIndex(root, { compressedSearch: search });
        const { recall, qps } = measureSingle(index, data.queries, data.truth);
        index.close();
        const qpsN = await measureConcurrent(pool, workers, root, 0, data.queries, search);
        console.log(
          `  nprobe ${probes} R ${rerank}: recall@10 ${recall.toFixed(3)}, ${qps.toFixed(0)} QPS on 1 thread, ${qpsN.toFixed(0)} on ${workers}`,
        );
        const { lists, subQuantizers } = trained;
        measured.push({
          engine: "clipcrawl compressed tier",
          params: `IVF${lists},PQ${subQuantizers} nprobe=${probes} R=${rerank}`,
          buildSeconds,
          bytesPerVector,
          recall,
          qps,
          qpsN,
          search,
        });
      }
    }
  } finally {
    await pool.close();
  }
  const qualifying = measured.filter((row) => row.recall >= 0.9);
  const chosen = qualifying.sort((a, b) => b.qps - a.qps)[0];
  const filtered: string[][] = [];
  if (chosen !== undefined) {
    const index = await openIndex(root, { compressedSearch: chosen.search });
    for (const [label, filters] of filterCases()) {
      const result = measureFiltered(index, data.queries, filters);
      filtered.push([
        `${chosen.params} ${label}`,
        result.qps.toFixed(0),
        `${(result.full * 100).toFixed(1)}% returned k; plans ${result.paths}`,
      ]);
    }
    index.close();
  }
  console.log("serve's peak RSS over the queries…");
  const serving = await servePeakRss(root, data.queries);

  if (faiss)
    console.log(`running faiss IVF-PQ on the same vectors (load average ${loadAverage()})`);
  const peers = faiss
    ? runFaissCompressed(
        root,
        folder,
        data,
        cpus().length,
        [FAISS_CODE_SIZE],
        COMPRESSED_RERANK,
        false,
        COMPRESSED_PROBES,
        // autofaiss's lists for the row count, the same lists as ours (the same kind of index),
        // and with them the largest code that keeps faiss (8-byte ids, float32 centroids) in 150 B.
        faissLists ?? [
          ...new Set([autofaissLists(rows), trained.lists]),
          ...faissCodesWithin(rows, trained.lists).map((code) => `${trained.lists}:${code}`),
        ],
      )
    : [];
  printTable([
    [
      "engine",
      "params",
      "build s",
      "B/vector",
      "recall@10",
      "QPS 1 thread",
      `QPS ${workers} threads`,
    ],
    ...[...measured, ...peers].map((row) => [
      row.engine,
      row.params,
      row.buildSeconds.toFixed(1),
      row.bytesPerVector.toFixed(0),
      row.recall.toFixed(3),
      row.qps.toFixed(0),
      "qpsN" in row ? (row.qpsN as number).toFixed(0) : "",
    ]),
  ]);
  if (filtered.length > 0) printTable([["filtered query", "QPS 1 thread", ""], ...filtered]);
  console.log(
    `clipcrawl serve on this index (its own nprobe/R), ${serving.queries} /knn-service queries: peak RSS ${serving.peakMb.toFixed(0)} MB`,
  );
  console.log(`load average at end: ${loadAverage()}`);
  // The same kind of index: faiss with our lists and code, else our lists, else autofaiss's.
  const code = `PQ${trained.subQuantizers} `;
  const sameKind =
    peers.find((peer) => peer.params.startsWith(`IVF${trained.lists}_HNSW32,${code}`)) ??
    peers.find((peer) => peer.params.startsWith(`IVF${trained.lists},${code}`)) ??
    peers.find((peer) => peer.params.startsWith(`IVF${trained.lists}`)) ??
    peers[0];
  const faissBuild = sameKind?.buildSeconds;
  const perSecond = (seconds: number) => rows / seconds;
  const build: BenchRow = {
    stage: `compressed index build, ${rows} rows, whole stage (read ${summary.timings.read.toFixed(0)} s, both IVF-PQ ${summary.timings.graph.toFixed(0)} s, near-duplicates ${summary.timings.duplicates.toFixed(0)} s, write ${summary.timings.write.toFixed(0)} s); faiss builds one modality`,
    unit: "vectors/s",
    clipcrawl: perSecond(buildSeconds),
    ...(faissBuild === undefined
      ? {}
      : {
          peer: { name: `faiss ${sameKind?.params.split(" ")[0]}`, value: perSecond(faissBuild) },
          ratio: faissBuild / buildSeconds,
          met: buildSeconds <= faissBuild,
        }),
    target: "≥ 1× faiss",
  };
  const duplicates: BenchRow = {
    stage: `compressed index build, ${rows} rows: near-duplicate groups' share of the stage`,
    unit: "%",
    clipcrawl: (100 * summary.timings.duplicates) / buildSeconds,
    target: "≤ 20 %",
    met: summary.timings.duplicates <= 0.2 * buildSeconds,
  };
  const size: BenchRow = {
    stage: `compressed index, ${rows} rows: bytes a vector a modality, everything in index/ but the float16 rows`,
    unit: "B",
    clipcrawl: besideVectors,
    target: "≤ 150 B",
    met: besideVectors <= 150,
  };
  const sizeIndexOnly: BenchRow = {
    stage: `compressed index, ${rows} rows: bytes a vector a modality, index/ but the float16 rows and the segments' metadata files (URL, caption, … as clip-back keeps apart: ${metadataText.toFixed(0)} B a row)`,
    unit: "B",
    clipcrawl: besideMetadata,
    target: "≤ 150 B",
    met: besideMetadata <= 150,
  };
  const threadsRow: BenchRow = {
    stage: `compressed index, ${rows} rows, ${workers} threads: ${chosen?.params ?? "none at recall ≥ 0.9"}`,
    unit: "QPS",
    clipcrawl: chosen?.qpsN ?? 0,
    target: "report (faiss's peer times one thread)",
  };
  const rss: BenchRow = {
    stage: `clipcrawl serve, compressed index of ${rows} rows: peak RSS answering ${serving.queries} queries`,
    unit: "MB",
    clipcrawl: serving.peakMb,
    target: "report",
  };
  return [
    ...compressedHeadline([...measured, ...peers]),
    threadsRow,
    build,
    duplicates,
    size,
    sizeIndexOnly,
    rss,
  ];
}

/**
 * faiss codes above FAISS_CODE_SIZE that fit 150 bytes a row at this size: code, 8-byte id,
 * float32 centroids and codebooks spread over the rows (PQ128 from about 1M rows at 4,096 lists).
 */
function faissCodesWithin(rows: number, lists: number): number[] {
  const bytes = (code: number) => code + 8 + (lists * DIMENSIONS * 4 + 256 * DIMENSIONS * 4) / rows;
  return [128].filter((code) => code > FAISS_CODE_SIZE && bytes(code) <= 150);
}

/** `clipcrawl serve` on the index as its own process: its peak RSS after answering `queries`. */
async function servePeakRss(
  root: string,
  queries: Float32Array,
): Promise<{ queries: number; peakMb: number }> {
  const server = await startServeProcess([
    "--root",
    root,
    "--no-model",
    "--rate-limit-per-minute",
    "0",
    "--port",
    "0",
  ]);
  try {
    const count = queries.length / DIMENSIONS;
    for (let query = 0; query < count; query++) {
      const response = await fetch(`${server.url}/knn-service`, {
        method: "POST",
        body: JSON.stringify({
          embedding_input: Array.from(row(queries, query)),
          modality: "image",
          num_images: K,
        }),
      });
      if (!response.ok) throw new Error(`serve answered ${response.status}`);
      await response.arrayBuffer();
    }
    const status = await readFile(`/proc/${server.pid}/status`, "utf8");
    const peakKb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
    return { queries: count, peakMb: peakKb / 1024 };
  } finally {
    await server.stop();
  }
}

/** Best QPS at recall@10 ≥ 0.95 per engine, clipcrawl's against faiss's best. */
function report(rows: readonly Row[], workers: number): BenchRow[] {
  const best = (engine: string, pick: (row: Row) => number) =>
    Math.max(
      0,
      ...rows.filter((row) => row.engine.startsWith(engine) && row.recall >= 0.95).map(pick),
    );
  const headline: BenchRow[] = [];
  for (const [label, pick] of [
    ["1 thread", (row: Row) => row.qps1],
    [`${workers} threads`, (row: Row) => row.qpsN],
  ] as const) {
    const ours = best("clipcrawl (", pick);
    const faiss = best("faiss", pick);
    console.log(
      `at recall@10 ≥ 0.95, ${label}: clipcrawl ${ours.toFixed(0)} QPS, faiss ${faiss.toFixed(0)} QPS → ${faiss === 0 ? "n/a" : (ours / faiss).toFixed(2)}× (target ≥ 1)`,
    );
    headline.push({
      stage: `index search at recall@10 ≥ 0.95, ${label}`,
      unit: "QPS",
      clipcrawl: ours,
      ...(faiss === 0
        ? {}
        : {
            peer: { name: "faiss (best)", value: faiss },
            ratio: ours / faiss,
            met: ours >= faiss,
          }),
      target: "≥ 1× faiss",
    });
  }
  return headline;
}

function filterCases(): [string, SearchFilters][] {
  return [
    ["safe (punsafe ≤ 0.5)", { maxPunsafe: 0.5 }],
    ["safe + watermark ≤ 0.8 + dedup", { maxPunsafe: 0.5, maxPwatermark: 0.8, deduplicate: true }],
    ["aesthetic ≥ 7", { minAestheticScore: 7 }],
    ["language sw (1%)", { languages: ["sw"] }],
  ];
}

function measureSingle(
  index: ClipIndex,
  queries: Float32Array,
  truth: Uint32Array,
): { recall: number; qps: number } {
  const count = queries.length / DIMENSIONS;
  // Every query once untimed: the compressed tier re-ranks from float16 rows on disk, and the
  // timed pass measures them in the page cache, as faiss's peer holds them in memory.
  for (let query = 0; query < count; query++) {
    index.search({ vector: row(queries, query), k: K, modality: "image" });
  }
  let hits = 0;
  const started = performance.now();
  const found: number[][] = [];
  for (let query = 0; query < count; query++) {
    const results = index.search({ vector: row(queries, query), k: K, modality: "image" });
    found.push(results.map((result) => result.id));
  }
  const seconds = (performance.now() - started) / 1000;
  found.forEach((ids, query) => {
    const expected = new Set(truth.subarray(query * K, (query + 1) * K));
    for (const id of ids) if (expected.has(id)) hits++;
  });
  return { recall: hits / (count * K), qps: count / seconds };
}

function measureFiltered(
  index: ClipIndex,
  queries: Float32Array,
  filters: SearchFilters,
): { qps: number; full: number; paths: string } {
  const count = queries.length / DIMENSIONS;
  const paths = new Map<string, number>();
  let full = 0;
  for (let query = 0; query < count; query++) {
    index.search({ vector: row(queries, query), k: K, modality: "image", filters });
  }
  const started = performance.now();
  for (let query = 0; query < count; query++) {
    const report = index.searchWithReport({
      vector: row(queries, query),
      k: K,
      modality: "image",
      filters,
    });
    if (report.results.length === K) full++;
    const label = `${report.path}${report.rounds > 1 ? `×${report.rounds}` : ""}`;
    paths.set(label, (paths.get(label) ?? 0) + 1);
  }
  const seconds = (performance.now() - started) / 1000;
  const described = [...paths.entries()].map(([label, n]) => `${label} ${n}`).join(", ");
  return { qps: count / seconds, full: full / count, paths: described };
}

interface QueryTask {
  root: string;
  expansion: number;
  /** Compressed tier: lists scanned and candidates re-ranked. */
  compressedSearch?: { probes: number; rerank: number };
  queries: Float32Array;
  /** Only open the index (warm-up), do not search. */
  openOnly: boolean;
}

interface QueryResult {
  seconds: number;
  count: number;
}

const opened = new Map<string, Promise<ClipIndex>>();

async function answerQueries(task: QueryTask): Promise<QueryResult> {
  const key = `${task.root}#${task.expansion}#${JSON.stringify(task.compressedSearch)}`;
  if (!opened.has(key)) {
    opened.set(
      key,
      openIndex(task.root, {
        expansionSearch: task.expansion,
        ...(task.compressedSearch === undefined ? {} : { compressedSearch: task.compressedSearch }),
      }),
    );
  }
  const index = await (opened.get(key) as Promise<ClipIndex>);
  if (task.openOnly) return { seconds: 0, count: 0 };
  const count = task.queries.length / DIMENSIONS;
  const started = performance.now();
  for (let query = 0; query < count; query++) {
    index.search({ vector: row(task.queries, query), k: K, modality: "image" });
  }
  return { seconds: (performance.now() - started) / 1000, count };
}

/** W workers, each with the index memory-mapped, run their share of the queries at once. */
async function measureConcurrent(
  pool: WorkerPool<QueryTask, QueryResult>,
  workers: number,
  root: string,
  expansion: number,
  queries: Float32Array,
  compressedSearch?: QueryTask["compressedSearch"],
): Promise<number> {
  const count = queries.length / DIMENSIONS;
  const task = (share: Float32Array, openOnly: boolean): QueryTask => ({
    root,
    expansion,
    queries: share,
    openOnly,
    ...(compressedSearch === undefined ? {} : { compressedSearch }),
  });
  const shares = Array.from({ length: workers }, (_, worker) => {
    const from = Math.floor((worker * count) / workers);
    const to = Math.floor(((worker + 1) * count) / workers);
    return queries.slice(from * DIMENSIONS, to * DIMENSIONS);
  });
  // Open the index in every worker and warm its caches with the full query set, then time.
  await Promise.all(shares.map(() => pool.run(task(queries, true))));
  await Promise.all(shares.map(() => pool.run(task(queries, false))));
  const started = performance.now();
  await Promise.all(shares.map((share) => pool.run(task(share, false))));
  return count / ((performance.now() - started) / 1000);
}

function runFaiss(root: string, data: BenchData, workers: number): Row[] {
  const script = new URL("./peers/faiss_index.py", import.meta.url).pathname;
  const lines = faissPeerLines<{
    engine: string;
    params: string;
    build_s: number;
    bytes: number;
    recall: number;
    qps_call: number;
    qps_batch_1: number;
    qps_batch_n: number;
  }>(script, [
    join(root, "embeddings", "img_emb"),
    data.queriesPath,
    data.truthPath,
    String(workers),
    String(CONNECTIVITY),
    String(FAISS_EXPANSION_ADD),
    join(root, ".."),
    EXPANSIONS.join(","),
  ]);
  return lines.map((peer) => {
    return {
      engine: peer.engine,
      params: peer.params,
      build: peer.build_s.toFixed(1),
      mb: (peer.bytes / 1e6).toFixed(0),
      recall: peer.recall,
      qps1: peer.qps_call,
      qpsN: peer.qps_batch_n,
      note: `1 thread batched: ${peer.qps_batch_1.toFixed(0)} QPS`,
    };
  });
}

export interface BenchData {
  queries: Float32Array;
  truth: Uint32Array;
  queriesPath: string;
  truthPath: string;
}

/**
 * The vectors (as embeddings shards), the queries and the exact top-10 of each query; generated
 * once per size and kept in bench/.data/.
 */
export async function ensureData(
  root: string,
  folder: string,
  vectors: number,
  queryCount: number,
): Promise<BenchData> {
  const queriesPath = join(folder, `queries-${queryCount}.npy`);
  const truthPath = join(folder, `truth-${queryCount}.npy`);
  const mixture = new ClusterMixture(Math.max(50, Math.round(vectors / 1000)), 20240601);
  const queries = new Float32Array(queryCount * DIMENSIONS);
  const queryRandom = seededUniform(7);
  for (let query = 0; query < queryCount; query++) {
    mixture.sample(queryRandom, queries, query * DIMENSIONS);
  }
  const storage = new LocalStorage(folder);
  const shards = Math.ceil(vectors / ROWS_PER_SHARD);
  const marker = join(root, "embeddings", `complete-${vectors}`);
  const complete = await stat(marker).then(
    () => true,
    () => false,
  );
  if (complete) {
    // The truth of these queries over the stored vectors, written by an earlier run (minutes
    // of exact search on a loaded machine); the queries are regenerated from their seed.
    const stored = await readFile(truthPath).then(
      (bytes) => decodeNpy(bytes),
      () => undefined,
    );
    if (stored !== undefined && stored.shape[0] === queryCount && stored.shape[1] === K) {
      for (let query = 0; query < queryCount; query++) normalise(queries, query * DIMENSIONS);
      const truth = Uint32Array.from(stored.data as Float64Array);
      return { queries, truth, queriesPath, truthPath };
    }
  }
  const best = new TopK(queryCount, K);
  const products = await DotProducts.open();
  const started = performance.now();
  const rootStorage = new LocalStorage(root);
  const dataRandom = seededUniform(11);
  let previous: Float32Array = new Float32Array(0);
  let done = 0;
  try {
    for (let shard = 0; shard < shards; shard++) {
      const rows = Math.min(ROWS_PER_SHARD, vectors - done);
      // Stored shards are read back: regenerating them would not repeat the stream that wrote them
      // (captions and metadata draw from it too), so a later shard's truth would be another's.
      const name = shardName(shard);
      const imageBits = complete
        ? await readStoredBits(root, name)
        : generatedBits(mixture, dataRandom, rows, previous);
      const stored = fromFloat16Bits(imageBits);
      previous = stored;
      await best.add(products, queries, stored, done);
      if (!complete) {
        const texts = new Float32Array(rows * DIMENSIONS);
        for (let row = 0; row < rows; row++) {
          mixture.caption(dataRandom, stored, row * DIMENSIONS, texts, row * DIMENSIONS);
        }
        await rootStorage.writeAtomic(
          layout.imageEmbeddings(name),
          encodeNpy({ dtype: "<f2", shape: [rows, DIMENSIONS], data: imageBits }),
        );
        await rootStorage.writeAtomic(
          layout.textEmbeddings(name),
          encodeNpy({ dtype: "<f2", shape: [rows, DIMENSIONS], data: toFloat16Bits(texts) }),
        );
        await writeMetadata(rootStorage, name, done, rows, dataRandom);
      }
      done += rows;
      process.stdout.write(
        `\r${complete ? "computing the truth over" : "generating"} ${done}/${vectors} vectors (${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
  } finally {
    await products.close();
  }
  process.stdout.write("\n");
  if (!complete) await mkdir(join(root, "embeddings"), { recursive: true });
  if (!complete) await rootStorage.writeAtomic(`embeddings/complete-${vectors}`, "");
  await storage.writeAtomic(
    `queries-${queryCount}.npy`,
    encodeNpy({ dtype: "<f4", shape: [queryCount, DIMENSIONS], data: queries }),
  );
  const truth = best.ids();
  await storage.writeAtomic(
    `truth-${queryCount}.npy`,
    encodeNpy({ dtype: "<f8", shape: [queryCount, K], data: Float64Array.from(truth) }),
  );
  for (let query = 0; query < queryCount; query++) normalise(queries, query * DIMENSIONS);
  return { queries, truth, queriesPath, truthPath };
}

/**
 * A shard's image rows: drawn from the mixture, but NEAR_DUPLICATE_SHARE of them near-duplicates
 * of an earlier row of this shard or the one before (`previous`), as re-encoded and resized
 * copies of one image are on the web.
 */
function generatedBits(
  mixture: ClusterMixture,
  next: () => number,
  rows: number,
  previous: Float32Array,
): Uint16Array {
  const images = new Float32Array(rows * DIMENSIONS);
  const earlier = previous.length / DIMENSIONS;
  for (let row = 0; row < rows; row++) {
    if (earlier + row === 0 || next() >= NEAR_DUPLICATE_SHARE) {
      mixture.sample(next, images, row * DIMENSIONS);
      continue;
    }
    const source = Math.floor(next() * (earlier + row));
    const [from, fromRow] = source < earlier ? [previous, source] : [images, source - earlier];
    plantNearDuplicate(next, from, fromRow * DIMENSIONS, images, row * DIMENSIONS);
  }
  return toFloat16Bits(images);
}

/**
 * Writes at `to[offset …]` a near-duplicate of the row at `from[fromOffset …]`: the row plus
 * noise of norm ≈ 0.08–0.27, renormalised (cosine ≈ 0.997 down to 0.965).
 */
export function plantNearDuplicate(
  next: () => number,
  from: Float32Array,
  fromOffset: number,
  to: Float32Array,
  offset: number,
): void {
  const noise = 0.0035 + 0.0085 * next();
  let norm = 0;
  for (let dim = 0; dim < DIMENSIONS; dim++) {
    const value = (from[fromOffset + dim] as number) + noise * gaussian(next);
    to[offset + dim] = value;
    norm += value * value;
  }
  const scale = 1 / Math.sqrt(norm);
  for (let dim = 0; dim < DIMENSIONS; dim++)
    to[offset + dim] = (to[offset + dim] as number) * scale;
}

async function readStoredBits(root: string, shard: string): Promise<Uint16Array> {
  const path = join(root, layout.imageEmbeddings(shard));
  const array = decodeNpy(await readFile(path));
  if (array.dtype !== "<f2")
    throw new Error(`${path}: expected float16 embeddings, found ${array.dtype}`);
  return array.data;
}

async function writeMetadata(
  storage: LocalStorage,
  shard: string,
  firstRow: number,
  rows: number,
  next: () => number,
): Promise<void> {
  const scores = Array.from({ length: rows }, () => ({
    // Most rows safe, as on the web: P(punsafe ≤ 0.5) ≈ 0.79.
    punsafe: next() ** 3,
    pwatermark: next() ** 2,
    aesthetic: 3 + 5 * next() ** 1.5,
    language: next() < 0.01 ? "sw" : (LANGUAGES[Math.floor(next() * 5)] as string),
  }));
  const web = webMetadata(firstRow, rows, scores);
  const metadata = scores.map((score, index) => ({
    key: String(firstRow + index).padStart(9, "0"),
    ...score,
    ...(web[index] as (typeof web)[number]),
  }));
  type Metadata = (typeof metadata)[number];
  await writeParquet<Metadata>(
    storage,
    layout.embeddingMetadata(shard),
    [
      { name: "key", type: "VARCHAR", value: (row) => row.key },
      { name: "url", type: "VARCHAR", value: (row) => row.url },
      { name: "caption", type: "VARCHAR", value: (row) => row.caption },
      { name: "original_width", type: "INTEGER", value: (row) => row.width },
      { name: "original_height", type: "INTEGER", value: (row) => row.height },
      { name: "sha256", type: "VARCHAR", value: (row) => row.sha256 },
      { name: "similarity", type: "DOUBLE", value: (row) => row.similarity },
      { name: "language", type: "VARCHAR", value: (row) => row.language },
      { name: "punsafe", type: "DOUBLE", value: (row) => row.punsafe },
      { name: "pwatermark", type: "DOUBLE", value: (row) => row.pwatermark },
      { name: "AESTHETIC_SCORE", type: "DOUBLE", value: (row) => row.aesthetic },
    ],
    metadata,
  );
}

/**
 * What a row's metadata holds on the web (and so what the index keeps for it): an alt text as
 * varied as the web's (web-captions.ts) in the row's language, an image URL of one of 50,000
 * sites with a path and a file name, the image's size, its sha256 and CLIP similarity. Drawn from
 * a stream of their own (seeded by the first row), so the vectors are the same as before.
 */
function webMetadata(
  firstRow: number,
  rows: number,
  scores: readonly { language: string }[],
): {
  url: string;
  caption: string;
  width: number;
  height: number;
  sha256: string;
  similarity: number;
}[] {
  const random = new SeededRandom(0x5eed + firstRow);
  const words = (count: number) =>
    Array.from({ length: count }, () =>
      random.string(random.int(3, 9), "abcdefghijklmnopqrstuvwxyz"),
    );
  return Array.from({ length: rows }, (_, row) => {
    const language = scores[row]?.language ?? "en";
    const caption = webCaption(
      random,
      (CAPTION_LANGUAGES as readonly string[]).includes(language)
        ? (language as CaptionLanguage)
        : "en",
    );
    const site = random.int(0, 49_999);
    const host = `${site % 3 === 0 ? "www." : site % 3 === 1 ? "cdn." : ""}${words(1)[0]}-${site}.${["com", "de", "fr", "net", "org", "co.uk"][site % 6]}`;
    const file = `${words(random.int(1, 5)).join("-")}-${random.int(1, 99_999)}.${random.chance(0.8) ? "jpg" : random.chance(0.5) ? "png" : "webp"}`;
    const path = words(random.int(0, 3)).join("/");
    // Web image sizes: most a few hundred pixels a side, a long tail of large photos.
    const width = Math.round(120 * Math.exp(random.next() * 3.2));
    return {
      url: `https://${host}/${path}${path === "" ? "" : "/"}${file}`,
      caption,
      width,
      height: Math.round(width * (0.5 + random.next())),
      sha256: random.string(64, "0123456789abcdef"),
      similarity: 0.2 + 0.2 * random.next(),
    };
  });
}

/** Centres drawn at random, each cluster with its own spread; samples are L2-normalised. */
export class ClusterMixture {
  private readonly centres: Float32Array;
  private readonly spreads: Float32Array;

  constructor(
    readonly clusters: number,
    seed: number,
  ) {
    const next = seededUniform(seed);
    this.centres = new Float32Array(clusters * DIMENSIONS);
    for (let index = 0; index < this.centres.length; index++) this.centres[index] = gaussian(next);
    this.spreads = Float32Array.from({ length: clusters }, () => 0.8 + 0.8 * next());
  }

  sample(next: () => number, out: Float32Array, offset: number): void {
    const cluster = Math.floor(next() * this.clusters);
    const spread = this.spreads[cluster] as number;
    const base = cluster * DIMENSIONS;
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      out[offset + dim] = (this.centres[base + dim] as number) + spread * gaussian(next);
    }
    normalise(out, offset);
  }

  /** A caption embedding: its image's, moved as far again at random. */
  caption(
    next: () => number,
    image: Float32Array,
    imageOffset: number,
    out: Float32Array,
    offset: number,
  ): void {
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      out[offset + dim] = (image[imageOffset + dim] as number) + 0.05 * gaussian(next);
    }
    normalise(out, offset);
  }
}

/**
 * The exact k nearest stored rows of each query by inner product, over rows given a shard at a
 * time: the products on ONNX Runtime (MLAS, every core), a batch of rows at a time; usearch's
 * exact search ran at about 7 GFLOP/s here, most of the time it took to generate the vectors.
 */
class TopK {
  private readonly scores: Float32Array;
  private readonly best: Uint32Array;

  constructor(
    private readonly queries: number,
    private readonly k: number,
  ) {
    this.scores = new Float32Array(queries * k).fill(Number.NEGATIVE_INFINITY);
    this.best = new Uint32Array(queries * k);
  }

  async add(
    products: DotProducts,
    queries: Float32Array,
    vectors: Float32Array,
    firstId: number,
  ): Promise<void> {
    const { k } = this;
    const rows = vectors.length / DIMENSIONS;
    for (let start = 0; start < rows; start += TRUTH_BATCH) {
      const batch = Math.min(TRUTH_BATCH, rows - start);
      const scores = await products.products(
        queries,
        this.queries,
        vectors.subarray(start * DIMENSIONS, (start + batch) * DIMENSIONS),
        batch,
        DIMENSIONS,
      );
      for (let query = 0; query < this.queries; query++) {
        const slot = query * k;
        let floor = this.scores[slot + k - 1] as number;
        for (let at = 0; at < batch; at++) {
          const score = scores[query * batch + at] as number;
          if (score <= floor) continue;
          let position = k - 1;
          while (position > 0 && (this.scores[slot + position - 1] as number) < score) {
            this.scores[slot + position] = this.scores[slot + position - 1] as number;
            this.best[slot + position] = this.best[slot + position - 1] as number;
            position--;
          }
          this.scores[slot + position] = score;
          this.best[slot + position] = firstId + start + at;
          floor = this.scores[slot + k - 1] as number;
        }
      }
    }
  }

  ids(): Uint32Array {
    return this.best;
  }
}

/** Stored rows a product call of TopK (1,000 queries: 32 MB of scores). */
const TRUTH_BATCH = 8192;

function row(matrix: Float32Array, index: number): Float32Array {
  return matrix.subarray(index * DIMENSIONS, (index + 1) * DIMENSIONS);
}

function normalise(values: Float32Array, offset: number): void {
  let norm = 0;
  for (let dim = 0; dim < DIMENSIONS; dim++) norm += (values[offset + dim] as number) ** 2;
  const scale = 1 / Math.sqrt(norm);
  for (let dim = 0; dim < DIMENSIONS; dim++) {
    values[offset + dim] = (values[offset + dim] as number) * scale;
  }
}

export function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
}

async function folderBytes(folder: string, only = /./): Promise<number> {
  let total = 0;
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && only.test(entry.name)) {
      total += (await stat(join(entry.parentPath, entry.name))).size;
    }
  }
  return total;
}

function describeBuild(summary: IndexSummary, bytes: number): string {
  const { timings } = summary;
  return `clipcrawl index: ${summary.rows} rows, ${summary.dimensions}-d, ${timings.total.toFixed(1)} s (read ${timings.read.toFixed(1)}, both graphs ${timings.graph.toFixed(1)}, near-duplicates ${timings.duplicates.toFixed(1)}, write ${timings.write.toFixed(1)}); index folder ${(bytes / 1e6).toFixed(0)} MB; ${summary.duplicateGroups} near-duplicate groups`;
}

if (!isMainThread) serveWorkerTasks(answerQueries);
