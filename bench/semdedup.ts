/**
 * Semantic dedup (`clipcrawl filter --recipe semdedup`) of N image embeddings (default
 * 1,000,000 × 768, float16 as embed writes them), against SemDeDup in numpy (the same algorithm
 * and random choices, bench/peers/semdedup_numpy.py) on the same files in the same run.
 *
 * The embeddings are clustered like CLIP's: every vector shares a common direction (CLIP image
 * embeddings of unrelated images have cosines around 0.4), 5,000 topics of very different sizes
 * (Zipf-like), each with its own spread per dimension (anisotropic), and near-duplicates (the
 * same image re-encoded or resized: a fifth of the rows are an earlier row of the shard plus a
 * little noise). They are generated once into bench/.data/ (deterministic); generate them before
 * taking the exclusive lock:
 *
 *   npm run bench -- semdedup --generate-only
 *   flock -x /tmp/clipcrawl-bench.lock npm run bench -- semdedup
 *
 *   options: [--rows 1000000] [--dims 768] [--clusters 1000] [--sample 50000] [--iterations 10]
 *            [--epsilon 0.05] [--memory-mb 1024] [--no-peer]
 *
 * Reported: wall time and peak resident memory of the clipcrawl filter process (the whole
 * command: k-means, assignment, dedup, and writing the dataset shards), the fraction removed,
 * and the peer's time, memory and removed fraction, with how many removed rows the two share.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initRoot } from "../src/config/init-root.js";
import { seededRandom } from "../src/formats/recipes/spherical-kmeans.js";
import { layout, shardName } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { decodeNpy, encodeNpy } from "../src/io/npy.js";
import { duckdbConnection, quoteLiteral, writeParquet } from "../src/io/parquet.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { type BenchRow, benchDataPath, printTable } from "./support.js";

const ROWS_PER_SHARD = 50_000;
const TOPICS = 5_000;
const DUPLICATE_SHARE = 0.2;
const CLI = new URL("../src/cli/main.ts", import.meta.url).pathname;
const MAX_RSS = new URL("../test/support/max-rss.ts", import.meta.url).pathname;
const PEER = new URL("./peers/semdedup_numpy.py", import.meta.url).pathname;

export async function main(args: string[]): Promise<BenchRow[] | undefined> {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: "string", default: "1000000" },
      dims: { type: "string", default: "768" },
      clusters: { type: "string", default: "1000" },
      sample: { type: "string", default: "50000" },
      iterations: { type: "string", default: "10" },
      epsilon: { type: "string", default: "0.05" },
      "memory-mb": { type: "string", default: "1024" },
      "generate-only": { type: "boolean", default: false },
      "no-peer": { type: "boolean", default: false },
    },
  });
  const rows = Number(values.rows);
  const dims = Number(values.dims);
  const root = await benchDataPath(`semdedup-${rows}x${dims}`);
  await generateRoot(root, rows, dims);
  if (values["generate-only"]) return undefined;

  const recipe = `semdedup:epsilon=${values.epsilon}:clusters=${values.clusters}:sample=${values.sample}:iterations=${values.iterations}:seed=0:memoryMb=${values["memory-mb"]}`;
  const rssFile = join(root, "max-rss.txt");
  await rm(join(root, "_state", "filter"), { recursive: true, force: true });
  const started = performance.now();
  const run = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "--import",
      MAX_RSS,
      CLI,
      "filter",
      "--root",
      root,
      "--recipe",
      recipe,
      "--min-similarity-en",
      "-1",
      "--min-similarity-multi",
      "-1",
      "--min-similarity-nolang",
      "-1",
      "--min-caption-length",
      "0",
      "--json",
    ],
    { env: { ...process.env, CLIPCRAWL_MAX_RSS_FILE: rssFile }, maxBuffer: 1 << 26 },
  );
  const seconds = (performance.now() - started) / 1000;
  if (run.status !== 0) throw new Error(`filter failed: ${run.stderr.toString().trim()}`);
  const summary = JSON.parse(run.stdout.toString()) as {
    totals: { samples: number; kept: number };
    recipes: {
      semdedup: { duplicates: number; largestCluster: number; buckets: number; iterations: number };
    };
  };
  const maxRssMb = Number(await readFile(rssFile, "utf8")) / 1024 / 1024;
  const removed = summary.recipes.semdedup.duplicates;
  const ours = await removedRows(root);
  console.log(
    `clipcrawl: ${seconds.toFixed(1)} s, peak RSS ${maxRssMb.toFixed(0)} MB, removed ${removed} of ${summary.totals.samples} (${((100 * removed) / rows).toFixed(1)} %); k-means ${summary.recipes.semdedup.iterations} iterations, largest cluster ${summary.recipes.semdedup.largestCluster}, ${summary.recipes.semdedup.buckets} buckets`,
  );

  let peer: { seconds: number; removed: number; max_rss_mb: number } | undefined;
  let shared = 0;
  const python = ["/usr/bin/python3", "python3"].find((candidate) => {
    try {
      execFileSync(candidate, ["-c", "import numpy"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  });
  if (!values["no-peer"] && python !== undefined) {
    const out = join(root, "peer-removed.npy");
    peer = JSON.parse(
      execFileSync(python, [
        PEER,
        join(root, "embeddings", "img_emb"),
        String(values.clusters),
        String(values.sample),
        String(values.iterations),
        "0",
        String(values.epsilon),
        out,
      ]).toString(),
    );
    const theirs = decodeNpy(await readFile(out));
    const theirSet = new Set(Array.from(theirs.data as Float64Array));
    for (const row of ours) if (theirSet.has(row)) shared++;
    console.log(
      `numpy SemDeDup: ${peer?.seconds.toFixed(1)} s, peak RSS ${peer?.max_rss_mb.toFixed(0)} MB, removed ${peer?.removed}; removed by both: ${shared}`,
    );
  }
  const table: (string | number)[][] = [
    ["", "seconds", "peak MB", "removed %"],
    ["clipcrawl", seconds.toFixed(1), maxRssMb.toFixed(0), ((100 * removed) / rows).toFixed(2)],
  ];
  if (peer !== undefined) {
    table.push([
      "numpy",
      peer.seconds.toFixed(1),
      peer.max_rss_mb.toFixed(0),
      ((100 * peer.removed) / rows).toFixed(2),
    ]);
  }
  printTable(table);
  const label = `semdedup ${rows / 1e6}M×${dims}, k ${values.clusters}`;
  return [
    {
      stage: `${label}: time`,
      unit: "s",
      clipcrawl: Number(seconds.toFixed(1)),
      ...(peer === undefined
        ? {}
        : {
            peer: { name: "numpy SemDeDup", value: Number(peer.seconds.toFixed(1)) },
            ratio: Number((peer.seconds / seconds).toFixed(2)),
          }),
      target: "report",
    },
    {
      stage: `${label}: peak memory`,
      unit: "MB",
      clipcrawl: Number(maxRssMb.toFixed(0)),
      ...(peer === undefined
        ? {}
        : { peer: { name: "numpy SemDeDup", value: Number(peer.max_rss_mb.toFixed(0)) } }),
      target: `≤ memoryMb ${values["memory-mb"]} + fixed`,
    },
    {
      stage: `${label}: removed (ε ${values.epsilon})`,
      unit: "%",
      clipcrawl: Number(((100 * removed) / rows).toFixed(2)),
      ...(peer === undefined
        ? {}
        : {
            peer: {
              name: "numpy SemDeDup",
              value: Number(((100 * peer.removed) / rows).toFixed(2)),
            },
            ratio: Number((shared / Math.max(1, peer.removed)).toFixed(4)),
          }),
      target: "same rows as the peer",
      ...(peer === undefined ? {} : { met: shared === peer.removed && shared === removed }),
    },
  ];
}

/** Pool rows (shard × 50,000 + row) that filter did not keep: the removed ones. */
async function removedRows(root: string): Promise<number[]> {
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT CAST(key AS BIGINT) AS n FROM read_parquet(${quoteLiteral(join(root, "embeddings", "metadata", "*.parquet"))})
       WHERE key NOT IN (SELECT key FROM read_parquet(${quoteLiteral(join(root, "dataset", "*.parquet"))})) ORDER BY n`,
    );
    return (reader.getRows() as [bigint][]).map(([n]) => Number(n));
  } finally {
    connection.closeSync();
  }
}

/** The root: metadata and float16 image embeddings, shards of 50,000 rows. */
async function generateRoot(root: string, rows: number, dims: number): Promise<void> {
  const shards = Math.ceil(rows / ROWS_PER_SHARD);
  if (existsSync(join(root, layout.imageEmbeddings(shardName(shards - 1))))) return;
  const started = performance.now();
  const storage = new LocalStorage(root);
  await initRoot(storage).catch(() => undefined);
  const random = seededRandom(20261206);
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const unit = (vector: Float32Array) => {
    let norm = 0;
    for (const value of vector) norm += value * value;
    norm = Math.sqrt(norm);
    for (let index = 0; index < vector.length; index++)
      vector[index] = (vector[index] as number) / norm;
    return vector;
  };
  const common = unit(Float32Array.from({ length: dims }, gaussian));
  const topics = Array.from({ length: TOPICS }, () => {
    const own = unit(Float32Array.from({ length: dims }, gaussian));
    const centre = unit(own.map((value, index) => 0.8 * value + 0.6 * (common[index] as number)));
    // Each topic spreads along its own directions: a log-normal scale per dimension.
    const scale = Float32Array.from(
      { length: dims },
      () => (0.9 / Math.sqrt(dims)) * Math.exp(0.7 * gaussian()),
    );
    return { centre, scale };
  });
  // Topic sizes follow a Zipf-like law, as web image topics do.
  const weights = topics.map((_, index) => 1 / (index + 10) ** 0.9);
  const total = weights.reduce((sum, weight) => sum + weight, 0);
  const cumulative = new Float64Array(TOPICS);
  let running = 0;
  weights.forEach((weight, index) => {
    running += weight;
    cumulative[index] = running / total;
  });
  const pickTopic = () => {
    const draw = random();
    let low = 0;
    let high = TOPICS - 1;
    while (low < high) {
      const middle = (low + high) >> 1;
      if ((cumulative[middle] as number) < draw) low = middle + 1;
      else high = middle;
    }
    return topics[low] as (typeof topics)[number];
  };
  for (let shard = 0; shard < shards; shard++) {
    const count = Math.min(ROWS_PER_SHARD, rows - shard * ROWS_PER_SHARD);
    const values = new Float32Array(count * dims);
    for (let row = 0; row < count; row++) {
      const target = values.subarray(row * dims, (row + 1) * dims);
      if (row > 0 && random() < DUPLICATE_SHARE) {
        const source = Math.floor(random() * row);
        const noise = (0.12 / Math.sqrt(dims)) * Math.exp(gaussian());
        for (let index = 0; index < dims; index++) {
          target[index] = (values[source * dims + index] as number) + noise * gaussian();
        }
      } else {
        const { centre, scale } = pickTopic();
        for (let index = 0; index < dims; index++) {
          target[index] = (centre[index] as number) + (scale[index] as number) * gaussian();
        }
      }
      unit(target);
    }
    const name = shardName(shard);
    await storage.writeAtomic(
      layout.imageEmbeddings(name),
      encodeNpy({ dtype: "<f2", shape: [count, dims], data: toFloat16Bits(values) }),
    );
    const first = shard * ROWS_PER_SHARD;
    await writeParquet(
      storage,
      layout.embeddingMetadata(name),
      [
        { name: "key", type: "VARCHAR", value: (n: number) => String(n).padStart(9, "0") },
        { name: "url", type: "VARCHAR", value: (n: number) => `https://img.example/${n}.jpg` },
        { name: "caption", type: "VARCHAR", value: (n: number) => `generated image number ${n}` },
        { name: "similarity", type: "DOUBLE", value: () => 0.3 },
        { name: "language", type: "VARCHAR", value: () => "en" },
        { name: "language_tier", type: "VARCHAR", value: () => "en" },
      ],
      Array.from({ length: count }, (_, row) => first + row),
    );
    process.stdout.write(`\rgenerated ${shard + 1}/${shards} shards`);
  }
  console.log(` in ${((performance.now() - started) / 1000).toFixed(0)} s: ${root}`);
}
