/**
 * `clipcrawl subset` on a generated dataset root, in the same run as the I/O limit it is compared
 * with (`clipcrawl remove` on the same kind of root: bench/remove.ts).
 *
 * The root: N rows (default 1,000,000) in shards of 10,000, every file a real run writes —
 * dataset shards in the LAION schema, download's image tars (small fake images) and parquets,
 * embed's `.npy` pair (float16, `--dims`, default 48: the tiny fixture model's, so kNN queries
 * can be embedded) and metadata. Values are hashes of the row number: LANGUAGE en ≈ 40 %,
 * punsafe / pwatermark uniform on 0–1, AESTHETIC_SCORE uniform on 3–7, similarity on 0.26–0.46.
 *
 * Measured:
 * - `cat` of the dataset shards > /dev/null (warm page cache, as the subset reads them), then
 *   `subset --where` on the same files: rows/s and MB/s of parquet, and the ratio (target ≥ 0.5);
 * - what limits it: one DuckDB scan, alone, of the columns the narrow `--where` reads (the floor
 *   of a single pass), against the same `cat`;
 * - with `--knn`: the index is built (timed), then a 1,000-query kNN subset (k 100);
 *
 *   npm run bench -- subset [--rows 1000000] [--dims 48] [--knn] [--queries 1000] [--k 100]
 */
import { createHash } from "node:crypto";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { initRoot } from "../src/config/init-root.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { layout, shardName } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { encodeNpy } from "../src/io/npy.js";
import { duckdbConnection, quoteLiteral } from "../src/io/parquet.js";
import { TarWriter } from "../src/io/tar-writer.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { subset } from "../src/stages/subset/subset.js";
import { RANGE_COLUMNS } from "../src/stages/subset/subset-summary.js";
import {
  type BenchRow,
  benchDataPath,
  fileBytes,
  megabytes,
  printTable,
  timeShell,
} from "./support.js";

const ROWS_PER_SHARD = 10_000;
const WHERE = "LANGUAGE = 'en' AND punsafe < 0.1 AND AESTHETIC_SCORE > 5";
const BROAD_WHERE = "similarity >= 0.3 AND WIDTH >= 400";
const LANGUAGES = ["en", "en", "en", "en", "de", "fr", "es", "ja", "", "ru"];
const COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"];
const SHAPES = ["circle", "square", "triangle", "star"];

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: "string", default: "1000000" },
      dims: { type: "string", default: "48" },
      knn: { type: "boolean", default: false },
      queries: { type: "string", default: "1000" },
      k: { type: "string", default: "100" },
    },
  });
  const rows = Number(values.rows);
  const dims = Number(values.dims);
  const folder = await benchDataPath(`subset-${rows}-${dims}`);
  const root = join(folder, "root");
  const generated = await ensureRoot(root, rows, dims);
  const storage = new LocalStorage(root);
  const files = (await storage.list("dataset")).filter((name) => name.endsWith(".parquet"));
  const paths = files.map((name) => join(root, "dataset", name));
  const bytes = (await Promise.all(paths.map(fileBytes))).reduce<number>(
    (sum, b) => sum + (b ?? 0),
    0,
  );
  console.log(
    `root: ${rows.toLocaleString()} rows in ${files.length} shards, dataset ${megabytes(bytes).toFixed(0)} MB (generated in ${generated.toFixed(0)} s); load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );

  // Warm: the page cache (the subset reads cached files too) and DuckDB's native library.
  const cat = `cat ${paths.map((path) => `'${path}'`).join(" ")} > /dev/null`;
  timeShell(cat);
  (await duckdbConnection()).closeSync();
  // The machine is shared: each figure is the best of two runs.
  const catSeconds = Math.min(timeShell(cat) ?? Number.NaN, timeShell(cat) ?? Number.NaN);
  const table: (string | number)[][] = [
    ["run", "rows out", "seconds", "rows/s", "MB/s parquet", "vs cat"],
    [
      "cat dataset/*.parquet > /dev/null",
      "",
      catSeconds.toFixed(2),
      (rows / catSeconds).toFixed(0),
      (megabytes(bytes) / catSeconds).toFixed(0),
      "1.00",
    ],
  ];
  for (const [label, where] of [
    [`--where "${WHERE}"`, WHERE],
    [`--where "${BROAD_WHERE}"`, BROAD_WHERE],
  ] as const) {
    const first = await subset({ root, where, output: join(folder, "out.parquet") });
    const second = await subset({ root, where, output: join(folder, "out.parquet") });
    const summary = first.seconds <= second.seconds ? first : second;
    table.push([
      label,
      summary.rows,
      summary.seconds.toFixed(2),
      (summary.rowsScanned / summary.seconds).toFixed(0),
      (megabytes(bytes) / summary.seconds).toFixed(0),
      (catSeconds / summary.seconds).toFixed(2),
    ]);
  }

  if (values.knn === true) {
    const model = join(folder, "model");
    await generateTinyClipModel(model);
    const started = performance.now();
    const index = await buildIndex({ root });
    const buildSeconds = (performance.now() - started) / 1000;
    console.log(`index: ${index.rows.toLocaleString()} rows built in ${buildSeconds.toFixed(0)} s`);
    const queryCount = Number(values.queries);
    const queryFile = join(folder, "queries.txt");
    await writeFile(
      queryFile,
      Array.from({ length: queryCount }, (_, index) => {
        const colour = COLOURS[index % COLOURS.length];
        const shape = SHAPES[Math.floor(index / COLOURS.length) % SHAPES.length];
        return `a ${colour} ${shape} number ${index}`;
      }).join("\n"),
    );
    const summary = await subset({
      root,
      queryFile,
      k: Number(values.k),
      model,
      output: join(folder, "knn.parquet"),
    });
    table.push([
      `${queryCount} queries, k ${values.k}`,
      summary.rows,
      summary.seconds.toFixed(2),
      "",
      "",
      `${(queryCount / summary.seconds).toFixed(0)} queries/s`,
    ]);
  }
  printTable(table);

  const scanSeconds = await oneScanSeconds(paths, WHERE);
  console.log(
    `one DuckDB scan alone of the columns --where "${WHERE}" reads: ${(1000 * scanSeconds).toFixed(0)} ms (${(catSeconds / scanSeconds).toFixed(2)}× cat's time)`,
  );

  // The headline row for bench/RESULTS.md: the narrow --where against cat.
  const narrow = table[2] ?? [];
  const ratio = Number(narrow[5]);
  return [
    {
      stage: `subset --where, ${rows.toLocaleString("en")} rows (limit: one DuckDB scan alone of the columns it reads, ${(1000 * scanSeconds).toFixed(0)} ms, runs at ${(catSeconds / scanSeconds).toFixed(2)}× cat)`,
      unit: "MB/s",
      clipcrawl: Number(narrow[4]),
      peer: { name: "cat", value: megabytes(bytes) / catSeconds },
      ratio,
      target: "≥ 0.5× cat",
      met: ratio >= 0.5,
    },
  ];
}

/**
 * The floor of one pass: a DuckDB scan, alone, of every column `subset --where` reads (the
 * filter's, URL, TEXT and the summary's) over the rows that pass, with nothing written; best of
 * two.
 */
async function oneScanSeconds(paths: readonly string[], where: string): Promise<number> {
  const connection = await duckdbConnection();
  try {
    const files = `read_parquet([${paths.map(quoteLiteral).join(", ")}])`;
    const described = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${files}`);
    const available = new Set(described.getRows().map((row) => String(row[0])));
    const sums = RANGE_COLUMNS.filter((column) => available.has(column)).map(
      (column) => `, sum(CAST("${column}" AS DOUBLE))`,
    );
    const sql = `SELECT count(*), sum(strlen(URL)), sum(strlen(TEXT))${sums.join("")} FROM ${files} WHERE ${where}`;
    let best = Number.POSITIVE_INFINITY;
    for (let run = 0; run < 2; run++) {
      const started = performance.now();
      await connection.run(sql);
      best = Math.min(best, (performance.now() - started) / 1000);
    }
    return best;
  } finally {
    connection.closeSync();
  }
}

/** Generates the root unless a complete one is there; returns the seconds it took. */
export async function ensureRoot(root: string, rows: number, dims: number): Promise<number> {
  const marker = join(root, "generated.json");
  const wanted = JSON.stringify({ rows, dims, version: 1 });
  if ((await readFile(marker, "utf8").catch(() => "")) === wanted) return 0;
  const started = performance.now();
  await rm(root, { recursive: true, force: true });
  const storage = new LocalStorage(root);
  await initRoot(storage);
  const connection = await duckdbConnection();
  try {
    for (let shard = 0; shard * ROWS_PER_SHARD < rows; shard++) {
      const name = shardName(shard);
      const first = shard * ROWS_PER_SHARD;
      const count = Math.min(ROWS_PER_SHARD, rows - first);
      const source = rowsQuery(shard, first, count);
      const copy = (path: string, select: string) =>
        storage.writeAtomicWith(path, async (local) => {
          await connection.run(
            `COPY (SELECT ${select} FROM (${source})) TO ${quoteLiteral(local)} (FORMAT parquet, COMPRESSION snappy)`,
          );
        });
      await copy(
        layout.datasetShard(name),
        "URL, TEXT, WIDTH, HEIGHT, similarity, punsafe, pwatermark, ptoxic, AESTHETIC_SCORE, LANGUAGE, hash, key, sha256, page_url, source",
      );
      await copy(
        layout.imageParquet(name),
        "key, URL AS url, TEXT AS caption, 'success' AS status, CAST(NULL AS VARCHAR) AS error_message, 256 AS width, 256 AS height, CAST(WIDTH AS INTEGER) AS original_width, CAST(HEIGHT AS INTEGER) AS original_height, '{}' AS exif, sha256, md5, sha1, LANGUAGE AS language, page_url, source",
      );
      await copy(
        layout.embeddingMetadata(name),
        "key, URL AS url, TEXT AS caption, similarity, false AS caption_truncated, 'embedded' AS status, CAST(NULL AS VARCHAR) AS error_message, punsafe, pwatermark, ptoxic, AESTHETIC_SCORE, CAST(NULL AS VARCHAR) AS score_error, CAST(WIDTH AS INTEGER) AS original_width, CAST(HEIGHT AS INTEGER) AS original_height, sha256, md5, sha1, LANGUAGE AS language, page_url, source",
      );
      for (const path of [layout.imageEmbeddings(name), layout.textEmbeddings(name)]) {
        await storage.writeAtomic(path, randomMatrix(count, dims, `${path}`));
      }
      await writeTar(storage, name, first, count);
    }
  } finally {
    connection.closeSync();
  }
  await writeFile(marker, wanted);
  return (performance.now() - started) / 1000;
}

/** Row n's values, from hashes of n (deterministic, spread like a real dataset's). */
function rowsQuery(shard: number, first: number, count: number): string {
  const unit = (salt: number) => `((hash(n, ${salt}) % 10000) / 10000.0)`;
  const languages = `[${LANGUAGES.map((language) => quoteLiteral(language)).join(", ")}]`;
  return `SELECT
    'https://site-' || (n % 5000) || '.example/images/' || n || '.jpg' AS URL,
    'a photo of item ' || n || ' with an ordinary caption of a few words' AS TEXT,
    CAST(200 + hash(n, 1) % 1800 AS BIGINT) AS WIDTH,
    CAST(200 + hash(n, 2) % 1800 AS BIGINT) AS HEIGHT,
    0.26 + ${unit(3)} * 0.2 AS similarity,
    ${unit(4)} AS punsafe,
    ${unit(5)} AS pwatermark,
    ${unit(6)} AS ptoxic,
    3 + ${unit(7)} * 4 AS AESTHETIC_SCORE,
    ${languages}[CAST(1 + hash(n, 8) % ${LANGUAGES.length} AS BIGINT)] AS LANGUAGE,
    CAST(hash(n, 9) >> 1 AS BIGINT) AS hash,
    printf('%05d%04d', ${shard}, n - ${first}) AS key,
    sha256('image ' || n) AS sha256,
    md5('image ' || n) AS md5,
    sha1('image ' || n) AS sha1,
    'https://page-' || (n % 5000) || '.example/' || (n // 7) || '.html' AS page_url,
    'CC-MAIN-2024-10-' || lpad(CAST(n // 100000 AS VARCHAR), 5, '0') || '.warc.wat.gz' AS source
  FROM range(${first}, ${first + count}) t(n)`;
}

function randomMatrix(rows: number, dims: number, seed: string): Buffer {
  const values = new Float32Array(rows * dims);
  let state = createHash("sha256").update(seed).digest().readUInt32LE(0) || 1;
  for (let row = 0; row < rows; row++) {
    let norm = 0;
    for (let column = 0; column < dims; column++) {
      state ^= state << 13;
      state ^= state >>> 17;
      state ^= state << 5;
      const value = ((state >>> 0) / 4294967296) * 2 - 1;
      values[row * dims + column] = value;
      norm += value * value;
    }
    const scale = 1 / Math.sqrt(norm);
    for (let column = 0; column < dims; column++) {
      values[row * dims + column] = (values[row * dims + column] as number) * scale;
    }
  }
  return encodeNpy({ dtype: "<f2", shape: [rows, dims], data: toFloat16Bits(values) });
}

async function writeTar(
  storage: LocalStorage,
  name: string,
  first: number,
  count: number,
): Promise<void> {
  await storage.writeAtomicWith(layout.imageTar(name), async (local) => {
    const file = await open(local, "w");
    try {
      const tar = new TarWriter(file);
      const image = Buffer.alloc(600, 0x5a);
      for (let index = 0; index < count; index++) {
        const key = `${name}${String(index).padStart(4, "0")}`;
        const n = first + index;
        await tar.add(`${key}.jpg`, image);
        await tar.add(
          `${key}.json`,
          Buffer.from(
            JSON.stringify({
              key,
              url: `https://site-${n % 5000}.example/images/${n}.jpg`,
              status: "success",
            }),
          ),
        );
        await tar.add(
          `${key}.txt`,
          Buffer.from(`a photo of item ${n} with an ordinary caption of a few words`),
        );
      }
      await tar.finish();
    } finally {
      await file.close();
    }
  });
}

/** `count` distinct keys spread over the whole root (a fixed pseudo-random pick). */
/** `count` keys of the root's dataset, the same ones every time. */
export async function randomKeys(root: string, count: number): Promise<string[]> {
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT key FROM read_parquet(${quoteLiteral(join(root, "dataset", "*.parquet"))}) ORDER BY hash(key, 42) LIMIT ${count}`,
    );
    return reader.getRowObjects().map((row) => String(row.key));
  } finally {
    connection.closeSync();
  }
}
