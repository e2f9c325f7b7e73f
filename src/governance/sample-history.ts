/**
 * `clipcrawl show KEY`: one sample's record and its way through the stages — the candidate row
 * extract wrote (source WAT file, record offset, page URL, crawl date), download's row (status,
 * hashes, sizes), embed's metadata row or its failure, the dataset row or the rule filter dropped
 * it by, its place in the index, and the removals that took it out.
 *
 * Nothing here is recorded for show's sake: every answer is read from the stage outputs. A
 * pair filter dropped has no row anywhere, so its reason is asked of the filter stage (which
 * runs its own shard query on that one metadata row); the caller hands that function in, since
 * governance imports no stage (src/index.ts composes the two).
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { requireDatasetRoot } from "../config/dataset-root.js";
import { readManifest } from "../formats/index/index-manifest.js";
import { readTombstones } from "../formats/tombstones.js";
import { layout } from "../io/layout.js";
import { openRoot } from "../io/open-root.js";
import { type CellValue, duckdbConnection, quoteLiteral } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { readAuditLog } from "./audit-log.js";
import { REMOVED_STATUS } from "./file-rewrites.js";

export type JsonValue = string | number | boolean | null;

/** One row of a stage output. */
export interface StageRow {
  /** Root-relative path of the file. */
  file: string;
  /** The row's position in the file (0-based). */
  row: number;
  values: Record<string, JsonValue>;
}

export interface SampleRemoval {
  removal: string;
  finished: string;
  reason: string;
  /** The kinds of list the removal was asked with. */
  lists: string[];
}

export interface SampleHistory {
  key: string;
  /** Whether any stage output, or the audit log, knows the key. */
  found: boolean;
  /** Extract's row, found by the key's position (download cuts candidates in order). */
  candidate: StageRow | null;
  download: StageRow | null;
  /** Embed's metadata row (status embedded) or failures row (failed_to_embed). */
  embedding: StageRow | null;
  dataset: StageRow | null;
  /** Why the pair is not in the dataset, when embed kept it and filter did not. */
  dropReason: string | null;
  index: { id: number; segment: string; dupGroup: number | null } | null;
  removals: SampleRemoval[];
  /** What could not be told, one line each (a stage not run yet, a file that cannot be read). */
  notes: string[];
}

export interface ShowOptions {
  root: string | DatasetStorage;
  key: string;
  /** Relative blocklist paths of the filter config are resolved against it. */
  cwd?: string;
}

/**
 * The filter stage's verdict on the row of `key` in the metadata file `metadata` (root-relative):
 * its drop reason (null: kept, or not judged) and what could not be told.
 */
export type FilterVerdict = (
  storage: DatasetStorage,
  metadata: string,
  key: string,
  cwd: string,
) => Promise<{ reason: string | null; notes: string[] }>;

export async function sampleHistory(
  options: ShowOptions,
  filterVerdict: FilterVerdict,
): Promise<SampleHistory> {
  const storage = openRoot(options.root);
  await requireDatasetRoot(storage);
  const { key } = options;
  const history: SampleHistory = {
    key,
    found: false,
    candidate: null,
    download: null,
    embedding: null,
    dataset: null,
    dropReason: null,
    index: null,
    removals: [],
    notes: [],
  };
  const connection = await duckdbConnection();
  try {
    const find = (folder: string, pattern: RegExp) =>
      findRow(connection, storage, folder, pattern, key);
    history.download = await find(layout.imagesFolder(), /^(\d{5})\.parquet$/);
    history.embedding =
      (await find(layout.embeddingMetadataFolder(), /^metadata_(\d{5})\.parquet$/)) ??
      (await find("embeddings/failures", /^failures_(\d{5})\.parquet$/));
    history.dataset = await find(layout.datasetFolder(), /^(\d{5})\.parquet$/);
    history.candidate = await candidateRow(connection, storage, key, history);
    history.index = await indexPlace(connection, storage, key);
    if (
      history.dataset === null &&
      history.embedding !== null &&
      history.embedding.values.status !== "failed_to_embed"
    ) {
      const verdict = await filterVerdict(
        storage,
        history.embedding.file,
        String(history.embedding.values.key),
        options.cwd ?? process.cwd(),
      );
      history.dropReason = verdict.reason;
      history.notes.push(...verdict.notes);
    } else if (history.embedding?.values.status === "failed_to_embed") {
      history.dropReason = "failed_to_embed";
    }
  } finally {
    connection.closeSync();
  }
  for (const entry of await readAuditLog(storage)) {
    if (!entry.keys.includes(key)) continue;
    history.removals.push({
      removal: entry.removal,
      finished: entry.finished,
      reason: entry.reason,
      lists: Object.keys(entry.request),
    });
  }
  history.found =
    history.download !== null ||
    history.embedding !== null ||
    history.dataset !== null ||
    history.removals.length > 0;
  if ((await readTombstones(storage)).keys.has(key)) {
    history.notes.push(
      "tombstoned: every reader leaves it out; its bytes stay in the files until clipcrawl compact",
    );
  }
  if (history.download?.values.status === REMOVED_STATUS) {
    history.notes.push("download's row is a tombstone: the sample was removed (see removals)");
  }
  return history;
}

/**
 * The key's row in a folder of shards: first in the shard its first five digits name (download's
 * keys start with their shard), then in every shard.
 */
async function findRow(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  folder: string,
  pattern: RegExp,
  key: string,
): Promise<StageRow | null> {
  const files = (await storage.list(folder)).filter((name) => pattern.test(name));
  if (files.length === 0) return null;
  const own = files.filter((name) => pattern.exec(name)?.[1] === key.slice(0, 5));
  for (const group of own.length > 0 ? [own, files] : [files]) {
    const paths = await Promise.all(group.map((name) => storage.localPath(`${folder}/${name}`)));
    const reader = await connection.runAndReadAll(
      `SELECT * FROM read_parquet([${paths.map(quoteLiteral).join(", ")}], filename = true, file_row_number = true, union_by_name = true) WHERE key = ${quoteLiteral(key)} LIMIT 1`,
    );
    const row = reader.getRowObjectsJS()[0];
    if (row === undefined) continue;
    const { filename, file_row_number: position, ...values } = row as Record<string, CellValue>;
    return {
      file: `${folder}/${String(filename).split("/").pop()}`,
      row: Number(position),
      values: jsonValues(values),
    };
  }
  return null;
}

/**
 * Download cuts the candidate rows, in order, into shards of samplesPerShard: the key (shard id,
 * then the index in the shard) is a position in the concatenated candidate shards. The row is
 * shown only when its URL is the download row's (a download from URL lists has no candidates).
 */
async function candidateRow(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  key: string,
  history: SampleHistory,
): Promise<StageRow | null> {
  const download = history.download;
  if (download === null || !/^\d+$/.test(key)) return null;
  const shard = download.file.slice("images/".length, -".parquet".length);
  const statsPath = layout.imageStats(shard);
  if (!(await storage.exists(statsPath))) return null;
  const perShard = (
    JSON.parse(await storage.readText(statsPath)) as { config?: { samplesPerShard?: number } }
  ).config?.samplesPerShard;
  if (perShard === undefined) return null;
  const indexDigits = String(Math.max(0, perShard - 1)).length;
  const inShard = Number(key.slice(key.length - indexDigits));
  let position = Number(shard) * perShard + inShard;
  const files = (await storage.list(layout.candidatesFolder())).filter((name) =>
    /^\d{5}\.parquet$/.test(name),
  );
  for (const name of files) {
    const path = quoteLiteral(await storage.localPath(`${layout.candidatesFolder()}/${name}`));
    const rows = Number(
      (
        await connection.runAndReadAll(`SELECT count(*) AS n FROM read_parquet(${path})`)
      ).getRowObjects()[0]?.n ?? 0,
    );
    if (position >= rows) {
      position -= rows;
      continue;
    }
    const reader = await connection.runAndReadAll(
      `SELECT * EXCLUDE (file_row_number) FROM read_parquet(${path}, file_row_number = true) WHERE file_row_number = ${position}`,
    );
    const values = jsonValues((reader.getRowObjectsJS()[0] ?? {}) as Record<string, CellValue>);
    const downloadUrl = download.values.url;
    if (downloadUrl !== null && downloadUrl !== values.url) {
      history.notes.push("downloaded from a URL list, not from the candidate shards");
      return null;
    }
    return { file: `${layout.candidatesFolder()}/${name}`, row: position, values };
  }
  return null;
}

async function indexPlace(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  key: string,
): Promise<SampleHistory["index"]> {
  const manifest = await readManifest(storage);
  if (manifest === undefined) return null;
  for (const segment of manifest.segments) {
    const path = quoteLiteral(await storage.localPath(layout.indexSegmentMetadata(segment.name)));
    const reader = await connection.runAndReadAll(
      `SELECT file_row_number AS position FROM read_parquet(${path}, file_row_number = true) WHERE key = ${quoteLiteral(key)} LIMIT 1`,
    );
    const found = reader.getRowObjects()[0];
    if (found === undefined) continue;
    const id = segment.firstId + Number(found.position);
    const groups = quoteLiteral(await storage.localPath(manifest.files.duplicateGroups));
    const group = (
      await connection.runAndReadAll(
        `SELECT dup_group FROM read_parquet(${groups}, file_row_number = true) WHERE file_row_number = ${id}`,
      )
    ).getRowObjects()[0];
    return {
      id,
      segment: segment.name,
      dupGroup: group === undefined ? null : Number(group.dup_group),
    };
  }
  return null;
}

function jsonValues(values: Record<string, CellValue>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [name, value] of Object.entries(values)) {
    if (typeof value === "bigint") {
      out[name] = Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
    } else if (value instanceof Uint8Array) {
      out[name] = `<${value.length} bytes>`;
    } else if (value === null || typeof value !== "object") {
      out[name] = value as JsonValue;
    } else {
      out[name] = String(value);
    }
  }
  return out;
}
