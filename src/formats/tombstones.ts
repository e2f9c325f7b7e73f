/**
 * Tombstones: the sample keys `clipcrawl remove` took out, which every reader of the root leaves
 * out from the moment the removal returns — serve (search, `/metadata`, thumbnails, exports),
 * subset (every format, `--webdataset`, `--version`), stats, recheck, diff — while the files that
 * still hold the samples' bytes wait for `clipcrawl compact` to rewrite them. So a takedown writes
 * what it removes (a few bytes a key), not the tars and parquets that hold it.
 *
 * One file a removal, `_governance/tombstones/<removal>.txt`, written whole (temporary name, then
 * rename) and never changed; compact deletes the files it applied. The format (docs/formats.md):
 *
 *     clipcrawl tombstones v1
 *     removal 20250102T030405Z-1a2b3c
 *     000010004
 *     000010017
 *     end 2
 *
 * A file that does not read as that (cut short, edited) is an error naming it: a reader that
 * cannot tell which samples were removed must not guess, so it serves nothing rather than them.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError } from "../errors.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";

const HEADER = "clipcrawl tombstones v1";
const FILE_NAME = /^(.+)\.txt$/;
/** What a sample key may be: download's keys are digits; URL lists' keys are short names. */
const KEY = /^[\x21-\x7e\u00a0-\uffff]{1,256}$/;

/** The DuckDB table `registerTombstones` fills, which `liveRows` reads. */
export const TOMBSTONED_KEYS_TABLE = "clipcrawl_tombstoned_keys";

export interface Tombstones {
  /** Every key some removal took out and no compaction has applied yet. */
  keys: ReadonlySet<string>;
  /** The removals whose tombstone files were read, oldest first. */
  removals: string[];
}

export const NO_TOMBSTONES: Tombstones = { keys: new Set(), removals: [] };

export function tombstonesText(removal: string, keys: Iterable<string>): string {
  const lines = [HEADER, `removal ${removal}`];
  let count = 0;
  for (const key of keys) {
    if (!KEY.test(key)) throw new Error(`not a sample key: ${JSON.stringify(key)}`);
    lines.push(key);
    count++;
  }
  lines.push(`end ${count}`, "");
  return lines.join("\n");
}

/** Writes a removal's tombstones (atomically); returns the file and its size. */
export async function writeTombstones(
  storage: DatasetStorage,
  removal: string,
  keys: Iterable<string>,
): Promise<{ path: string; bytes: number }> {
  const path = layout.tombstones(removal);
  const text = tombstonesText(removal, keys);
  await storage.writeAtomic(path, text);
  return { path, bytes: Buffer.byteLength(text) };
}

/** Every tombstone file of the root, read and checked; a damaged one is a CC_TOMBSTONES error. */
export async function readTombstones(storage: DatasetStorage): Promise<Tombstones> {
  const keys = new Set<string>();
  const removals: string[] = [];
  for (const name of (await storage.list(layout.tombstonesFolder())).sort()) {
    const removal = FILE_NAME.exec(name)?.[1];
    if (removal === undefined) continue;
    const path = layout.tombstones(removal);
    let text: string;
    try {
      text = await storage.readText(path);
    } catch (error) {
      // Deleted between the listing and the read: a compaction applied it.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw error;
    }
    for (const key of parseTombstones(storage.describe(path), removal, text)) keys.add(key);
    removals.push(removal);
  }
  return { keys, removals };
}

/** The keys of one tombstone file's text; `where` names it in the error. */
export function parseTombstones(where: string, removal: string, text: string): string[] {
  const fail = (line: number, what: string): never => {
    throw new ClipcrawlError(
      "CC_TOMBSTONES",
      `${where}:${line}: damaged tombstone file (${what}); it is written whole and never edited, so readers cannot tell which samples removal ${removal} took out: restore it from that removal's keys in _governance/audit.jsonl`,
    );
  };
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  if (lines[0] !== HEADER) fail(1, `expected "${HEADER}"`);
  if (lines[1] !== `removal ${removal}`) fail(2, `expected "removal ${removal}"`);
  const end = /^end (\d+)$/.exec(lines.at(-1) ?? "");
  if (lines.length < 3 || end === null) fail(lines.length, 'no "end N" line: cut short');
  const keys = lines.slice(2, -1);
  if (Number(end?.[1]) !== keys.length) {
    fail(lines.length, `it says ${end?.[1]} keys and holds ${keys.length}`);
  }
  keys.forEach((key, index) => {
    if (!KEY.test(key)) fail(index + 3, `not a sample key: ${JSON.stringify(key.slice(0, 80))}`);
  });
  return keys;
}

/**
 * What identifies the root's tombstones as they are now, for a server that checks before each
 * request: the files' names (each is written once and deleted, never changed). "" when none.
 */
export async function tombstonesStamp(storage: DatasetStorage): Promise<string> {
  try {
    return (await storage.list(layout.tombstonesFolder()))
      .filter((name) => FILE_NAME.test(name))
      .join("\n");
  } catch {
    return "";
  }
}

/** Deletes the tombstone files of the removals a compaction applied. */
export async function deleteTombstones(
  storage: DatasetStorage,
  removals: readonly string[],
): Promise<void> {
  for (const removal of removals) await storage.remove(layout.tombstones(removal));
}

/** Loads the keys into TOMBSTONED_KEYS_TABLE on the connection (replacing what it held). */
export async function registerTombstones(
  connection: DuckDBConnection,
  tombstones: Tombstones,
): Promise<void> {
  await connection.run(`CREATE OR REPLACE TEMP TABLE ${TOMBSTONED_KEYS_TABLE} (key VARCHAR)`);
  if (tombstones.keys.size === 0) return;
  const appender = await connection.createAppender(TOMBSTONED_KEYS_TABLE);
  for (const key of tombstones.keys) {
    appender.appendVarchar(key);
    appender.endRow();
  }
  appender.closeSync();
}

/**
 * A relation of `relation`'s rows less the tombstoned ones (by its `key` column), over a
 * connection `registerTombstones` prepared; `relation` itself when nothing is tombstoned.
 */
export function liveRows(relation: string, tombstones: Tombstones): string {
  if (tombstones.keys.size === 0) return relation;
  return `(SELECT * FROM ${relation} WHERE key IS NULL OR key NOT IN (SELECT key FROM ${TOMBSTONED_KEYS_TABLE}))`;
}
