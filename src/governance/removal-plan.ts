/**
 * Finding what a removal takes out, before anything is touched: every sample of the root that
 * matches the lists (its URL, its domain or a domain above it, a digest of its image bytes, or
 * its key), wherever it is — download's image parquets, embed's metadata and failures, the
 * dataset, the index's segments — and then every file that holds one of those samples, by key.
 * A sample found by its digest in the image parquet is so also taken out of the dataset, whose
 * rows carry no MD5 or SHA-1.
 *
 * The plan names each file to rewrite with the keys it loses (and, for the `.npy` embeddings, the
 * row positions, read from the metadata before it is rewritten), plus the URLs and digests of
 * the removed samples for the governance lists. Everything is asked of DuckDB, one query per kind
 * of file over all shards at once.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError } from "../errors.js";
import { readManifest } from "../formats/index/index-manifest.js";
import { REMOVAL_KINDS, type RemovalKind, type RemovalLists } from "../formats/removal-lists.js";
import { registerFilterFunctions, URL_DOMAINS_FUNCTION } from "../formats/sql-functions.js";
import {
  NO_TOMBSTONES,
  registerTombstones,
  TOMBSTONED_KEYS_TABLE,
  type Tombstones,
} from "../formats/tombstones.js";
import { layout } from "../io/layout.js";
import { quoteLiteral } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { npyRows, REMOVED_STATUS } from "./file-rewrites.js";

export type RewriteKind =
  | "image-parquet"
  | "image-tar"
  | "image-folder"
  | "parquet-rows"
  | "npy-rows";

export interface PlannedRewrite {
  /** Root-relative path (a folder for image-folder). */
  path: string;
  kind: RewriteKind;
  /** The keys the file loses. */
  keys: string[];
  /** npy-rows: the positions of the rows to drop (sorted) and the file's rows when planned. */
  positions?: number[];
  rowsBefore?: number;
}

export interface RemovalPlan {
  /** Every sample key to take out. */
  keys: string[];
  /** The URLs and digests of those samples, added to the governance lists. */
  found: Record<"urls" | "sha256" | "md5" | "sha1", string[]>;
  rewrites: PlannedRewrite[];
  /** Whether the index holds any of the keys. */
  indexAffected: boolean;
}

/** The root's files of each kind (root-relative), sorted. */
interface RootFiles {
  imageParquets: string[];
  imageTars: string[];
  imageFolders: string[];
  metadata: string[];
  failures: string[];
  dataset: string[];
  indexMetadata: string[];
}

const IMAGE_PARQUET = /^\d{5}\.parquet$/;
const IMAGE_TAR = /^\d{5}\.tar$/;
const DATASET_SHARD = /^\d{5}\.parquet$/;
const METADATA_SHARD = /^metadata_\d{5}\.parquet$/;
const FAILURES_SHARD = /^failures_\d{5}\.parquet$/;

/** Request list kind → the table it is loaded into and the column of a file it is matched on. */
const MATCHED_COLUMN: Record<RemovalKind, string> = {
  urls: "url",
  domains: "url",
  sha256: "sha256",
  md5: "md5",
  sha1: "sha1",
  keys: "key",
};

const listTable = (kind: RemovalKind) => `removal_list_${kind}`;

/**
 * `tombstoned`: samples an earlier removal took out already (its tombstones not yet compacted):
 * they are not matched again.
 */
export async function planRemoval(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  lists: RemovalLists,
  tombstoned: Tombstones = NO_TOMBSTONES,
): Promise<RemovalPlan> {
  await registerFilterFunctions(connection);
  await registerTombstones(connection, tombstoned);
  const files = await rootFiles(storage);
  for (const kind of REMOVAL_KINDS) {
    await connection.run(`CREATE OR REPLACE TEMP TABLE ${listTable(kind)} (v VARCHAR)`);
    const appender = await connection.createAppender(listTable(kind));
    for (const entry of lists[kind].entries) {
      appender.appendVarchar(entry);
      appender.endRow();
    }
    appender.closeSync();
  }
  await connection.run("CREATE OR REPLACE TEMP TABLE removal_keys (key VARCHAR)");
  const groups = [
    files.imageParquets,
    files.metadata,
    files.failures,
    files.dataset,
    files.indexMetadata,
  ];
  for (const group of groups) {
    if (group.length === 0) continue;
    const source = await parquetSource(storage, group);
    const columns = await columnsOf(connection, source);
    const predicate = matchPredicate(lists, columns, source);
    if (predicate === undefined || !columns.has("key")) continue;
    // A tombstone of an earlier removal has nothing left to take out.
    const live = columns.has("status") ? `status IS DISTINCT FROM '${REMOVED_STATUS}'` : "TRUE";
    await connection.run(
      `INSERT INTO removal_keys SELECT DISTINCT key FROM ${source} WHERE key IS NOT NULL AND ${live} AND (${predicate})`,
    );
  }
  await connection.run(
    `CREATE OR REPLACE TEMP TABLE removal_keys AS SELECT DISTINCT key FROM removal_keys WHERE key NOT IN (SELECT key FROM ${TOMBSTONED_KEYS_TABLE})`,
  );
  const keys = (await connection.runAndReadAll("SELECT key FROM removal_keys ORDER BY key"))
    .getRowObjects()
    .map((row) => String(row.key));

  const plan: RemovalPlan = {
    keys,
    found: { urls: [], sha256: [], md5: [], sha1: [] },
    rewrites: [],
    indexAffected: false,
  };
  if (keys.length === 0) return plan;

  const found = {
    urls: new Set<string>(),
    sha256: new Set<string>(),
    md5: new Set<string>(),
    sha1: new Set<string>(),
  };
  const hits = async (group: string[]) => {
    if (group.length === 0) return [];
    const rootPaths = new Map<string, string>();
    const source = await parquetSource(storage, group, rootPaths);
    const columns = await columnsOf(connection, source);
    const live = columns.has("status") ? `status IS DISTINCT FROM '${REMOVED_STATUS}'` : "TRUE";
    const pick = (name: string) => (columns.has(name) ? `CAST(${name} AS VARCHAR)` : "NULL");
    const reader = await connection.runAndReadAll(
      `SELECT filename, file_row_number AS position, key, ${pick("url")} AS url, ${pick("sha256")} AS sha256, ${pick("md5")} AS md5, ${pick("sha1")} AS sha1, ${pick("status")} AS status
       FROM ${source} WHERE key IN (SELECT key FROM removal_keys) AND ${live} ORDER BY filename, file_row_number`,
    );
    const rows = reader.getRowObjects().map((row) => ({
      file: rootPaths.get(String(row.filename)) ?? String(row.filename),
      position: Number(row.position),
      key: String(row.key),
      url: row.url === null ? null : String(row.url),
      sha256: row.sha256 === null ? null : String(row.sha256).toLowerCase(),
      md5: row.md5 === null ? null : String(row.md5).toLowerCase(),
      sha1: row.sha1 === null ? null : String(row.sha1).toLowerCase(),
      status: row.status === null ? null : String(row.status),
    }));
    for (const row of rows) {
      if (row.url !== null) found.urls.add(row.url);
      if (row.sha256 !== null) found.sha256.add(row.sha256);
      if (row.md5 !== null) found.md5.add(row.md5);
      if (row.sha1 !== null) found.sha1.add(row.sha1);
    }
    return rows;
  };
  const byFile = <Row extends { file: string }>(rows: Row[]) => {
    const grouped = new Map<string, Row[]>();
    for (const row of rows) grouped.set(row.file, [...(grouped.get(row.file) ?? []), row]);
    return grouped;
  };

  const imageRows = byFile(await hits(files.imageParquets));
  const tars = new Set(files.imageTars);
  const folders = new Set(files.imageFolders);
  for (const [file, rows] of imageRows) {
    const shard = file.slice("images/".length, -".parquet".length);
    const keysHere = rows.map((row) => row.key);
    if (tars.has(layout.imageTar(shard))) {
      plan.rewrites.push({ path: layout.imageTar(shard), kind: "image-tar", keys: keysHere });
    }
    if (folders.has(layout.imageFilesFolder(shard))) {
      plan.rewrites.push({
        path: layout.imageFilesFolder(shard),
        kind: "image-folder",
        keys: keysHere,
      });
    }
    plan.rewrites.push({ path: file, kind: "image-parquet", keys: keysHere });
  }
  for (const [file, rows] of byFile(await hits(files.metadata))) {
    const shard = file.slice("embeddings/metadata/metadata_".length, -".parquet".length);
    const positions = rows.map((row) => row.position).sort((a, b) => a - b);
    const metadataRows = await parquetRows(connection, storage, file);
    for (const npy of [layout.imageEmbeddings(shard), layout.textEmbeddings(shard)]) {
      if (!(await storage.exists(npy))) continue;
      const rowsBefore = await npyRows(storage, npy);
      if (rowsBefore !== metadataRows) {
        throw new ClipcrawlError(
          "CC_REMOVAL_CONFLICT",
          `${storage.describe(npy)} has ${rowsBefore} rows, ${storage.describe(file)} ${metadataRows}: the embeddings are not aligned with their metadata, so their rows cannot be matched by key (re-run clipcrawl embed for shard ${shard})`,
        );
      }
      plan.rewrites.push({
        path: npy,
        kind: "npy-rows",
        keys: rows.map((row) => row.key),
        positions,
        rowsBefore,
      });
    }
    plan.rewrites.push({ path: file, kind: "parquet-rows", keys: rows.map((row) => row.key) });
  }
  for (const group of [files.failures, files.dataset]) {
    for (const [file, rows] of byFile(await hits(group))) {
      plan.rewrites.push({ path: file, kind: "parquet-rows", keys: rows.map((row) => row.key) });
    }
  }
  plan.indexAffected = (await hits(files.indexMetadata)).length > 0;
  plan.found = {
    urls: [...found.urls].sort(),
    sha256: [...found.sha256].sort(),
    md5: [...found.md5].sort(),
    sha1: [...found.sha1].sort(),
  };
  return plan;
}

/** The SQL condition a row of `source` matches the lists by, over the columns the files have. */
function matchPredicate(
  lists: RemovalLists,
  columns: ReadonlySet<string>,
  source: string,
): string | undefined {
  const terms: string[] = [];
  for (const kind of REMOVAL_KINDS) {
    const column = MATCHED_COLUMN[kind];
    if (lists[kind].entries.size === 0 || !columns.has(column)) continue;
    const value = `CAST(${column} AS VARCHAR)`;
    if (kind === "domains") {
      // One equality join over the URL's host and the domains above it (as filter matches).
      terms.push(
        `key IN (SELECT d.key FROM (SELECT key, unnest(${URL_DOMAINS_FUNCTION}(${value})) AS domain FROM ${source}) d JOIN ${listTable(kind)} b ON d.domain = b.v)`,
      );
    } else if (kind === "sha256" || kind === "md5" || kind === "sha1") {
      terms.push(`lower(${value}) IN (SELECT v FROM ${listTable(kind)})`);
    } else {
      terms.push(`${value} IN (SELECT v FROM ${listTable(kind)})`);
    }
  }
  return terms.length === 0 ? undefined : terms.join(" OR ");
}

async function rootFiles(storage: DatasetStorage): Promise<RootFiles> {
  const inFolder = async (folder: string, pattern: RegExp) =>
    (await storage.list(folder))
      .filter((name) => pattern.test(name))
      .map((name) => `${folder}/${name}`);
  const imageFolders = (await storage.listFolders(layout.imagesFolder()))
    .filter((name) => /^\d{5}$/.test(name))
    .map((name) => layout.imageFilesFolder(name));
  const manifest = await readManifest(storage);
  const indexMetadata: string[] = [];
  for (const segment of manifest?.segments ?? []) {
    const path = layout.indexSegmentMetadata(segment.name);
    if (await storage.exists(path)) indexMetadata.push(path);
  }
  return {
    imageParquets: await inFolder(layout.imagesFolder(), IMAGE_PARQUET),
    imageTars: await inFolder(layout.imagesFolder(), IMAGE_TAR),
    imageFolders,
    metadata: await inFolder(layout.embeddingMetadataFolder(), METADATA_SHARD),
    failures: await inFolder("embeddings/failures", FAILURES_SHARD),
    dataset: await inFolder(layout.datasetFolder(), DATASET_SHARD),
    indexMetadata,
  };
}

/**
 * The files as one DuckDB relation with `filename` and `file_row_number`; `rootPaths` learns which
 * root path each local file is (on object storage, a copy in the cache under another name).
 */
async function parquetSource(
  storage: DatasetStorage,
  files: readonly string[],
  rootPaths?: Map<string, string>,
): Promise<string> {
  const paths = await Promise.all(files.map((file) => storage.localPath(file)));
  paths.forEach((path, index) => {
    rootPaths?.set(path, files[index] as string);
  });
  return `read_parquet([${paths.map(quoteLiteral).join(", ")}], filename = true, file_row_number = true, union_by_name = true)`;
}

/** Lower-cased column names (DuckDB's identifiers are case-insensitive). */
async function columnsOf(connection: DuckDBConnection, source: string): Promise<Set<string>> {
  const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM ${source}`);
  return new Set(reader.getRowObjects().map((row) => String(row.column_name).toLowerCase()));
}

async function parquetRows(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  path: string,
): Promise<number> {
  const reader = await connection.runAndReadAll(
    `SELECT count(*) AS n FROM read_parquet(${quoteLiteral(await storage.localPath(path))})`,
  );
  return Number(reader.getRowObjects()[0]?.n ?? 0);
}
