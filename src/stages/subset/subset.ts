/**
 * `clipcrawl subset`: a well-defined slice of the dataset as a URL list that `clipcrawl download`
 * and img2dataset fetch as it is (`url`, `caption`, and the columns asked for), in parquet, CSV
 * or JSONL; optionally the slice's images copied from the root's tars as a new webdataset.
 *
 * The slice is a DuckDB `--where` over the dataset shards, kNN queries answered by the index
 * (knn-selection.ts), or both (the k nearest rows that pass the condition); `--dedup` keeps one
 * row per near-duplicate group (the index's groups), the one with the best similarity. Rows are
 * gathered into one temporary DuckDB table — shards in batches for the progress bar, in dataset
 * order (kNN: by query, best first) — from which the output file, the summary and the webdataset
 * copy are written. The output file is written atomically.
 */
import { readFile, rename } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { loadConfig } from "../../config/config-file.js";
import { requireDatasetRoot } from "../../config/dataset-root.js";
import { ClipcrawlError, InputError } from "../../errors.js";
import {
  againNamingDamage,
  describeDamagedShard,
  listDatasetShards,
} from "../../formats/dataset-shards.js";
import { type ClipIndex, openIndex } from "../../formats/index/clip-index.js";
import { type IndexManifest, readManifest } from "../../formats/index/index-manifest.js";
import type { RecipeReport } from "../../formats/recipes/recipe-plan.js";
import { parseRecipes } from "../../formats/recipes/recipe-spec.js";
import { readTombstones, registerTombstones, type Tombstones } from "../../formats/tombstones.js";
import { layout } from "../../io/layout.js";
import { LocalStorage } from "../../io/local-storage.js";
import { openRoot } from "../../io/open-root.js";
import { duckdbConnection, quoteIdentifier, quoteLiteral } from "../../io/parquet.js";
import { openSqlSandbox, type SqlSandbox } from "../../io/sql-sandbox.js";
import type { DatasetStorage } from "../../io/storage.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import { datasetRecipeDrops } from "./dataset-recipes.js";
import {
  checkWhere,
  type DatasetShard,
  datasetColumns,
  datasetShards,
  parquetRelation,
  resolveColumns,
  versionShards,
} from "./dataset-source.js";
import { embedQueries, type KnnHit, type SubsetQuery, searchQueries } from "./knn-selection.js";
import { SUBSET_FORMATS, type SubsetFormat } from "./subset-formats.js";
import { type ColumnRange, summariseRows } from "./subset-summary.js";
import { copyWebdataset, type WebdatasetCopy } from "./webdataset-copy.js";

export const SUBSET_STAGE = "subset";
export { SUBSET_FORMATS, type SubsetFormat };

export interface SubsetOptions {
  /** The dataset root: a directory path, an s3:// URL, or a storage. */
  root: string | DatasetStorage;
  /** The URL list to write (relative to `cwd`). */
  output: string;
  /** Default: from the output's extension (.parquet, .csv, .jsonl / .json). */
  format?: SubsetFormat;
  /** A DuckDB condition on the dataset's columns, e.g. `LANGUAGE = 'en' AND punsafe < 0.1`. */
  where?: string;
  /** Text queries. */
  queries?: readonly string[];
  /** A file of text queries, one a line. */
  queryFile?: string;
  /** Image files used as queries. */
  imageQueries?: readonly string[];
  /** Rows per query (default 100). */
  k?: number;
  /** Which embeddings the queries are compared with (default image, as clip-retrieval). */
  modality?: "image" | "text";
  /** The CLIP model folder for the queries (default: embed.model of clipcrawl.json). */
  model?: string;
  /** One row per near-duplicate group (needs the index). */
  dedup?: boolean;
  /**
   * DataComp / SemDeDup recipes (`NAME[:PARAM=VALUE]...`, comma-separated), computed over the
   * dataset's rows; a row they drop is left out, as if it failed the condition.
   */
  recipes?: readonly string[];
  /** Dataset columns to add after url and caption. */
  columns?: readonly string[];
  /**
   * A dataset version (`clipcrawl versions`) to read instead of the dataset as it is now: its
   * kept shards. With `--where` only (the index is the current version's).
   */
  version?: string;
  /** Copy the selected samples from the root's image tars into this folder as webdataset. */
  webdataset?: string;
  /** Samples per webdataset tar (default 10,000). */
  webdatasetShardSize?: number;
  /** Replace tars already in the webdataset folder. */
  overwrite?: boolean;
  reporter?: StageReporter;
  cwd?: string;
}

export interface SubsetSummary {
  /** False when a damaged dataset shard was left out (named in `damagedShards`). */
  ok: boolean;
  output: string;
  format: SubsetFormat;
  columns: string[];
  rows: number;
  /** The dataset's shards, their rows and bytes (what was read). */
  shards: number;
  /** Shards left out because they are not readable Parquet, each with what is wrong. */
  damagedShards: { shard: string; path: string; reason: string }[];
  rowsScanned: number;
  bytesScanned: number;
  /** Rows per language, most frequent first ("" is no detected language). */
  languages: Record<string, number>;
  /** Over the selected rows: similarity, the scores, the original image size. */
  ranges: Record<string, ColumnRange>;
  knn: { queries: number; k: number; modality: "image" | "text"; rows: number } | null;
  /** Rows left out as near-duplicates of a row kept. */
  duplicatesDropped: number;
  /** What the recipes decided (null without recipes), and the rows they left out by reason. */
  recipes: RecipeReport | null;
  recipeDrops: Record<string, number>;
  webdataset: WebdatasetCopy | null;
  seconds: number;
  rowsPerSecond: number;
}

/** Columns the summary reads, taken along whatever the output holds. */
const SUMMARY_COLUMNS = [
  "LANGUAGE",
  "similarity",
  "punsafe",
  "pwatermark",
  "ptoxic",
  "AESTHETIC_SCORE",
  "WIDTH",
  "HEIGHT",
];
const PROGRESS_INTERVAL_MS = 250;
const ROWS_TABLE = "subset_rows";
const RECIPE_DROPS_TABLE = "subset_recipe_drops";

export async function subset(options: SubsetOptions): Promise<SubsetSummary> {
  return againNamingDamage((readRows) => subsetOnce(options, readRows));
}

async function subsetOnce(options: SubsetOptions, readRows: boolean): Promise<SubsetSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const cwd = options.cwd ?? process.cwd();
  const storage = openRoot(options.root);
  await requireDatasetRoot(storage);
  const output = resolve(cwd, options.output);
  const format = options.format ?? formatOfOutput(output);
  const queries = await gatherQueries(options, cwd);
  const k = options.k ?? 100;
  if (!Number.isInteger(k) || k < 1) {
    throw new ClipcrawlError("CC_SUBSET_K", `--k must be a positive whole number, got ${k}`);
  }
  const where = options.where?.trim() === "" ? undefined : options.where;
  const recipes = parseRecipes(options.recipes ?? []);
  if ((await storage.list(layout.removalJournalFolder())).some((name) => name.endsWith(".json"))) {
    reporter.warn(
      "a removal is pending on this root (interrupted): run clipcrawl remove to complete it before subsets are shared",
    );
  }

  if (options.version !== undefined && recipes.length > 0) {
    throw new ClipcrawlError(
      "CC_SUBSET_VERSION",
      "--version reads an older dataset without its embeddings: --recipe works on the current dataset",
    );
  }
  if (options.version !== undefined && (queries.length > 0 || options.dedup === true)) {
    throw new ClipcrawlError(
      "CC_SUBSET_VERSION",
      "--version reads an older dataset through --where only: kNN queries and --dedup use the index, which is the current version's",
    );
  }
  // The condition is the user's SQL: it runs where it can read the dataset's files and no other.
  // The sandbox opens while the shards' ends are read, and parses their footers for the check
  // (with their rows), so that the queries find them parsed.
  const versioned =
    options.version === undefined ? undefined : await versionShards(storage, options.version);
  // A shard gone since the listing is named by the check, not here.
  const candidates =
    versioned?.map((shard) => shard.localPath) ??
    (
      await Promise.all(
        (
          await listDatasetShards(storage)
        ).map((shard) => storage.localPath(shard.path).catch(() => undefined)),
      )
    ).filter((path): path is string => path !== undefined);
  const opening = openSqlSandbox({
    readable: [
      ...candidates,
      ...(options.dedup === true && queries.length === 0 ? await duplicateGroupFiles(storage) : []),
    ],
    outputFolder: dirname(output),
  });
  // Awaited below, after the shards' ends are read: not an unhandled rejection meanwhile.
  opening.catch(() => undefined);
  let found: Awaited<ReturnType<typeof datasetShards>>;
  try {
    const footers = opening.then((opened) => opened.connection);
    footers.catch(() => undefined);
    found =
      versioned === undefined
        ? await datasetShards(storage, { readRows, footers })
        : { shards: versioned, damaged: [] };
  } catch (error) {
    await opening.then((opened) => opened.close()).catch(() => undefined);
    throw error;
  }
  const { shards, damaged } = found;
  for (const shard of damaged)
    reporter.warn(`subset: ${describeDamagedShard(shard, storage.root)}`);
  const sandbox = await opening;
  const connection = sandbox.connection;
  let index: ClipIndex | undefined;
  try {
    // Removed samples (tombstoned, not yet compacted) are in no selection, whatever the format.
    const tombstones = await readTombstones(storage);
    await registerTombstones(connection, tombstones);
    const available = await datasetColumns(connection, shards);
    const knnColumns = queries.length > 0 ? ["query", "query_similarity"] : [];
    const extra = resolveColumns(options.columns ?? [], available, knnColumns).filter(
      (column) => column !== "URL" && column !== "TEXT",
    );
    const checked =
      where === undefined ? undefined : await checkWhere(connection, shards, where, available);
    // The recipes run on a connection of their own (they read the embeddings, which the
    // condition's sandbox cannot); the keys they drop join the condition.
    let recipeReport: RecipeReport | null = null;
    let recipeDrops: Record<string, number> = {};
    let selected = where;
    if (recipes.length > 0) {
      const recipeConnection = await duckdbConnection();
      try {
        const decided = await datasetRecipeDrops(storage, shards, recipes, recipeConnection, cwd);
        recipeReport = decided.report;
        recipeDrops = decided.droppedByReason;
        await connection.run(`CREATE OR REPLACE TEMP TABLE ${RECIPE_DROPS_TABLE} (key VARCHAR)`);
        const appender = await connection.createAppender(RECIPE_DROPS_TABLE);
        for (const { key } of decided.dropped) {
          appender.appendVarchar(key);
          appender.endRow();
        }
        appender.closeSync();
      } finally {
        recipeConnection.closeSync();
      }
      const kept = `key NOT IN (SELECT key FROM ${RECIPE_DROPS_TABLE})`;
      selected = where === undefined ? kept : `(\n${where}\n) AND ${kept}`;
    }

    const datasetExtra = extra.filter((column) => !knnColumns.includes(column));
    const carried = [
      ...new Set([...datasetExtra, "key", ...SUMMARY_COLUMNS.filter((c) => available.includes(c))]),
    ];
    await connection.run(`DROP TABLE IF EXISTS ${ROWS_TABLE}`);

    let knn: SubsetSummary["knn"] = null;
    const rowsScanned = shards.every((shard) => shard.rows !== undefined)
      ? shards.reduce((sum, shard) => sum + (shard.rows ?? 0), 0)
      : await countRows(connection, shards);
    // Where the selection is read from: the shards themselves for a plain condition (one pass
    // to the file, one for the summary), else the table the kNN hits and dedup work on.
    // Each row's shard and position cost a third of the scan: read only where they are used.
    const positions =
      checked?.joins === true || options.dedup === true || options.webdataset !== undefined;
    let selection = `(${whereSelection(shards, selected, tombstones, positions)})`;
    let order = checked?.joins === true ? "__shard, __row" : "";
    if (queries.length === 0 && options.dedup === true) {
      await connection.run(`CREATE TEMP TABLE ${ROWS_TABLE} AS SELECT * FROM ${selection}`);
      selection = ROWS_TABLE;
      order = "__shard, __row";
    } else if (queries.length > 0) {
      index = await openIndexFor(storage);
      const vectors = await embedQueries(queries, await queryModel(storage, options.model), cwd);
      const passing =
        selected === undefined
          ? undefined
          : await passingKeys(connection, shards, selected, tombstones);
      const hits = searchQueries(index as ClipIndex, vectors, {
        k,
        modality: options.modality ?? "image",
        deduplicate: options.dedup === true,
        passing,
        onQuery: (done) =>
          reporter.progress({
            stage: SUBSET_STAGE,
            shardsDone: done,
            shardsTotal: queries.length,
            counters: { queries: done },
          }),
      });
      await selectHits(connection, shards, hits, queries, carried, tombstones);
      selection = ROWS_TABLE;
      order = "__query, query_similarity DESC, key";
      knn = {
        queries: queries.length,
        k,
        modality: options.modality ?? "image",
        rows: hits.length,
      };
    }
    const duplicatesDropped =
      options.dedup === true ? await dropDuplicates(connection, storage, queries.length > 0) : 0;

    const outputColumns = ["url", "caption", ...extra];
    await watchProgress(connection, reporter, shards.length, () =>
      writeOutput(sandbox, selection, order, output, format, outputColumns),
    );
    const summary = await summariseRows(connection, selection, available);
    const rows = summary.rows;
    let webdataset: WebdatasetCopy | null = null;
    if (options.webdataset !== undefined) {
      const keysByShard = await selectedKeysByShard(connection, selection);
      let copied = 0;
      webdataset = await copyWebdataset(
        storage,
        keysByShard,
        resolve(cwd, options.webdataset),
        options.webdatasetShardSize ?? 10_000,
        options.overwrite === true,
        () => {
          copied++;
          if (copied % 1000 === 0) {
            reporter.progress({
              stage: `${SUBSET_STAGE} webdataset`,
              shardsDone: copied,
              shardsTotal: rows,
              counters: { samples: copied },
            });
          }
        },
      );
      if (webdataset.missing > 0) {
        reporter.warn(
          `--webdataset: ${webdataset.missing} selected samples are in no local image tar (downloaded as files or parquet, or removed)`,
        );
      }
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      ok: damaged.length === 0,
      output,
      format,
      columns: outputColumns,
      rows,
      shards: shards.length,
      damagedShards: damaged,
      rowsScanned,
      bytesScanned: shards.reduce((sum, shard) => sum + shard.bytes, 0),
      languages: summary.languages,
      ranges: summary.ranges,
      knn,
      duplicatesDropped,
      recipes: recipeReport,
      recipeDrops,
      webdataset,
      seconds,
      rowsPerSecond: rowsScanned / Math.max(seconds, 0.001),
    };
  } finally {
    index?.close();
    await sandbox.close();
  }
}

export function formatOfOutput(path: string): SubsetFormat {
  const lower = path.toLowerCase();
  if (lower.endsWith(".parquet")) return "parquet";
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".jsonl") || lower.endsWith(".json") || lower.endsWith(".ndjson")) {
    return "jsonl";
  }
  throw new ClipcrawlError(
    "CC_SUBSET_OUTPUT",
    `cannot tell the format of ${path} from its name: end it in .parquet, .csv or .jsonl, or give --format`,
  );
}

async function gatherQueries(options: SubsetOptions, cwd: string): Promise<SubsetQuery[]> {
  const queries: SubsetQuery[] = (options.queries ?? []).map((label) => ({ label, kind: "text" }));
  if (options.queryFile !== undefined) {
    const path = resolve(cwd, options.queryFile);
    const text = await readFile(path, "utf8").catch(() => {
      throw new InputError("CC_QUERY_FILE", path, "cannot read the query file");
    });
    for (const line of text.split(/\r?\n/)) {
      if (line.trim() !== "") queries.push({ label: line.trim(), kind: "text" });
    }
  }
  for (const image of options.imageQueries ?? []) queries.push({ label: image, kind: "image" });
  return queries;
}

/**
 * The model the queries need: the one given, else embed.model of clipcrawl.json, else the model
 * embed recorded in its shard stats (the dataset's embeddings were made with it).
 */
async function queryModel(storage: DatasetStorage, given: string | undefined): Promise<string> {
  if (given !== undefined && given !== "") return given;
  const configured = (await loadConfig(storage)).embed.model;
  if (configured !== "") return configured;
  for (const name of await storage.list(layout.embeddingsFolder())) {
    if (!/^\d{5}_stats\.json$/.test(name)) continue;
    const stats = JSON.parse(await storage.readText(`${layout.embeddingsFolder()}/${name}`)) as {
      model?: { folder?: string };
    };
    if (typeof stats.model?.folder === "string") return stats.model.folder;
  }
  return "";
}

async function openIndexFor(storage: DatasetStorage): Promise<ClipIndex> {
  if ((await readManifest(storage)) === undefined) {
    throw new ClipcrawlError(
      "CC_NO_INDEX",
      `kNN queries and --dedup need the root's index (${storage.describe(layout.indexManifest())}): run clipcrawl index first`,
    );
  }
  return openIndex(storage);
}

/**
 * The dataset's rows that pass `where`, in dataset order; with `positions`, each with its shard
 * and row (`__shard`, `__row`).
 */
function whereSelection(
  shards: readonly DatasetShard[],
  where: string | undefined,
  tombstones: Tombstones,
  positions: boolean,
): string {
  const condition = where === undefined ? "TRUE" : `(\n${where}\n)`;
  const located = positions ? `, ${shardExpression()} AS __shard, file_row_number AS __row` : "";
  return `SELECT *${located} FROM ${parquetRelation(shards, positions, tombstones)} WHERE ${condition}`;
}

/** Rows of the shards, from their parquet footers. */
async function countRows(
  connection: DuckDBConnection,
  shards: readonly DatasetShard[],
): Promise<number> {
  const reader = await connection.runAndReadAll(
    `SELECT count(*) AS n FROM ${parquetRelation(shards)}`,
  );
  return Number(reader.getRowObjects()[0]?.n ?? 0);
}

/** Runs `work` while reporting DuckDB's progress on the connection's query (a share of rows). */
async function watchProgress<T>(
  connection: DuckDBConnection,
  reporter: StageReporter,
  shards: number,
  work: () => Promise<T>,
): Promise<T> {
  const report = (share: number, rows: number) =>
    reporter.progress({
      stage: SUBSET_STAGE,
      shardsDone: Math.round(share * shards),
      shardsTotal: shards,
      counters: { rows },
    });
  let rows = 0;
  report(0, rows);
  const timer = setInterval(() => {
    const progress = connection.progress;
    if (progress.percentage >= 0) {
      rows = Number(progress.rows_processed);
      report(progress.percentage / 100, rows);
    }
  }, PROGRESS_INTERVAL_MS);
  try {
    return await work();
  } finally {
    clearInterval(timer);
    report(1, rows);
  }
}

/** The kNN hits joined with their dataset rows, by query and best first. */
async function selectHits(
  connection: DuckDBConnection,
  shards: readonly DatasetShard[],
  hits: readonly KnnHit[],
  queries: readonly SubsetQuery[],
  carried: readonly string[],
  tombstones: Tombstones,
): Promise<number> {
  await connection.run(
    "CREATE OR REPLACE TEMP TABLE subset_hits (key VARCHAR, query_index INTEGER, query VARCHAR, query_similarity DOUBLE, dup_group BIGINT)",
  );
  const appender = await connection.createAppender("subset_hits");
  for (const hit of hits) {
    appender.appendVarchar(hit.key);
    appender.appendInteger(hit.query);
    appender.appendVarchar(queries[hit.query]?.label ?? "");
    appender.appendDouble(hit.similarity);
    if (hit.dupGroup === null) appender.appendNull();
    else appender.appendBigInt(BigInt(hit.dupGroup));
    appender.endRow();
  }
  appender.closeSync();
  // A row several queries found is kept once, for the query it is most similar to.
  await connection.run(
    `CREATE TEMP TABLE ${ROWS_TABLE} AS
     SELECT ${selectList(carried, "d.")}, ${shardExpression("d.")} AS __shard, d.file_row_number AS __row,
       h.query_index AS __query, h.query, h.query_similarity, h.dup_group AS __group
     FROM ${parquetRelation(shards, true, tombstones)} d
     JOIN (SELECT * FROM subset_hits QUALIFY row_number() OVER (PARTITION BY key ORDER BY query_similarity DESC, query_index) = 1) h
       ON d.key = h.key`,
  );
  const counted = await connection.runAndReadAll(
    `SELECT count(*) AS n FROM ${parquetRelation(shards)}`,
  );
  return Number(counted.getRowObjects()[0]?.n ?? 0);
}

async function passingKeys(
  connection: DuckDBConnection,
  shards: readonly DatasetShard[],
  where: string,
  tombstones: Tombstones,
): Promise<Set<string>> {
  const reader = await connection.runAndReadAll(
    `SELECT key FROM ${parquetRelation(shards, false, tombstones)} WHERE (\n${where}\n)`,
  );
  const keys = new Set<string>();
  for (const column of reader.getColumns()) {
    for (const key of column) if (typeof key === "string") keys.add(key);
  }
  return keys;
}

/**
 * One row per near-duplicate group: the one with the best query similarity (kNN) or image–text
 * similarity, ties to the earlier row. Rows the index does not hold are their own group.
 */
async function dropDuplicates(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  knn: boolean,
): Promise<number> {
  const before = await tableRows(connection);
  if (!knn) {
    const manifest = await readManifest(storage);
    if (manifest === undefined) {
      throw new ClipcrawlError(
        "CC_NO_INDEX",
        "--dedup needs the near-duplicate groups of the root's index: run clipcrawl index first",
      );
    }
    const files = await indexFiles(storage, manifest);
    const segments = manifest.segments.map(
      (segment, position) =>
        `SELECT key, ${segment.firstId} + file_row_number AS id FROM read_parquet(${quoteLiteral(files.segments[position] as string)}, file_row_number = true)`,
    );
    const groups = quoteLiteral(files.duplicateGroups);
    await connection.run(
      `CREATE OR REPLACE TEMP TABLE subset_groups AS
       SELECT s.key, g.dup_group FROM (${segments.join(" UNION ALL ")}) s
       JOIN (SELECT file_row_number AS id, dup_group FROM read_parquet(${groups}, file_row_number = true)) g USING (id)`,
    );
    await connection.run(
      `ALTER TABLE ${ROWS_TABLE} ADD COLUMN __group BIGINT; UPDATE ${ROWS_TABLE} r SET __group = g.dup_group FROM subset_groups g WHERE r.key = g.key`,
    );
    await connection.run("DROP TABLE subset_groups");
  }
  const score = knn ? "query_similarity" : "similarity";
  await connection.run(
    `DELETE FROM ${ROWS_TABLE} WHERE rowid NOT IN (
       SELECT arg_min(rowid, [-coalesce(${score}, -1e308), __shard, __row]) FROM ${ROWS_TABLE}
       GROUP BY coalesce(__group, -1 - rowid))`,
  );
  return before - (await tableRows(connection));
}

/** The index files --dedup reads without queries: each segment's metadata and the groups. */
async function indexFiles(
  storage: DatasetStorage,
  manifest: IndexManifest,
): Promise<{ segments: string[]; duplicateGroups: string }> {
  return {
    segments: await Promise.all(
      manifest.segments.map((segment) =>
        storage.localPath(layout.indexSegmentMetadata(segment.name)),
      ),
    ),
    duplicateGroups: await storage.localPath(manifest.files.duplicateGroups),
  };
}

async function duplicateGroupFiles(storage: DatasetStorage): Promise<string[]> {
  const manifest = await readManifest(storage);
  if (manifest === undefined) return [];
  const files = await indexFiles(storage, manifest);
  return [...files.segments, files.duplicateGroups];
}

/** COPY writes into the sandbox's scratch folder; the file is then renamed into place. */
async function writeOutput(
  sandbox: SqlSandbox,
  selection: string,
  order: string,
  output: string,
  format: SubsetFormat,
  columns: readonly string[],
): Promise<void> {
  const select = columns.map((column) => {
    if (column === "url") return "URL AS url";
    if (column === "caption") return "TEXT AS caption";
    return quoteIdentifier(column);
  });
  const options =
    format === "parquet"
      ? "FORMAT parquet, COMPRESSION snappy"
      : format === "csv"
        ? "FORMAT csv, HEADER true"
        : "FORMAT json";
  const written = sandbox.scratchPath(`output.${format}`);
  await sandbox.connection.run(
    `COPY (SELECT ${select.join(", ")} FROM ${selection}${order === "" ? "" : ` ORDER BY ${order}`}) TO ${quoteLiteral(written)} (${options})`,
  );
  const folder = new LocalStorage(dirname(output));
  await folder.writeAtomicWith(basename(output), (localPath) => rename(written, localPath));
}

async function selectedKeysByShard(
  connection: DuckDBConnection,
  selection: string,
): Promise<Map<string, Set<string>>> {
  const reader = await connection.runAndReadAll(`SELECT __shard, key FROM ${selection}`);
  const byShard = new Map<string, Set<string>>();
  for (const row of reader.getRowObjects()) {
    const shard = String(row.__shard).padStart(5, "0");
    const keys = byShard.get(shard) ?? new Set<string>();
    keys.add(String(row.key));
    byShard.set(shard, keys);
  }
  return byShard;
}

function selectList(carried: readonly string[], prefix = ""): string {
  return [
    `${prefix}URL`,
    `${prefix}TEXT`,
    ...carried.map((column) => `${prefix}${quoteIdentifier(column)}`),
  ].join(", ");
}

/** The shard number from the `filename` column (dataset/NNNNN.parquet). */
function shardExpression(prefix = ""): string {
  return `CAST(regexp_extract(${prefix}filename, '(\\d{5})\\.parquet$', 1) AS INTEGER)`;
}

async function tableRows(connection: DuckDBConnection): Promise<number> {
  const reader = await connection.runAndReadAll(`SELECT count(*) AS n FROM ${ROWS_TABLE}`);
  return Number(reader.getRowObjects()[0]?.n ?? 0);
}
