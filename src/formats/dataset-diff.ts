/**
 * What changed between two dataset versions (`clipcrawl diff A B`): the rows added and removed
 * (by key: keys are stable, shard id and row), and how the caption languages and the score
 * histograms of the kept rows moved. Tombstoned samples are left out of both sides, as every
 * reader leaves them out.
 */
import { duckdbConnection, quoteLiteral } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { type Histogram, histogram, languages, parquetRows } from "./dataset-stats.js";
import { type DatasetVersion, readVersion } from "./dataset-versions.js";
import { liveRows, readTombstones, registerTombstones } from "./tombstones.js";

/** The score columns whose distributions are compared, with their range. */
const SCORES: [column: string, lower: number, upper: number][] = [
  ["similarity", -1, 1],
  ["punsafe", 0, 1],
  ["pwatermark", 0, 1],
  ["AESTHETIC_SCORE", 0, 10],
];
const BINS = 20;
/** Keys listed of each side; the counts are whole. */
const LISTED_KEYS = 20;

export interface DatasetDiff {
  from: { id: string; rows: number };
  to: { id: string; rows: number };
  added: { rows: number; keys: string[] };
  removed: { rows: number; keys: string[] };
  /** [language ("" none), rows in A, rows in B], largest change first. */
  languages: [string, number, number][];
  /** Per score: both histograms over the same bins. */
  scores: Record<string, { from: Histogram; to: Histogram }>;
}

export async function diffVersions(
  storage: DatasetStorage,
  fromId: string,
  toId: string,
): Promise<DatasetDiff> {
  const from = await readVersion(storage, fromId);
  const to = await readVersion(storage, toId);
  const files = async (version: DatasetVersion) =>
    `[${(await Promise.all(version.shards.map((shard) => storage.localPath(shard.path))))
      .map(quoteLiteral)
      .join(", ")}]`;
  const a = await files(from);
  const b = await files(to);
  const tombstones = await readTombstones(storage);
  const connection = await duckdbConnection();
  try {
    await registerTombstones(connection, tombstones);
    const keysOnly = async (left: string, right: string) => {
      const query = `SELECT key FROM ${liveRows(`read_parquet(${left})`, tombstones)} EXCEPT SELECT key FROM ${liveRows(`read_parquet(${right})`, tombstones)}`;
      const count = (
        await connection.runAndReadAll(`SELECT count(*)::BIGINT AS n FROM (${query})`)
      ).getRowObjects()[0]?.n;
      const keys = (await connection.runAndReadAll(`${query} ORDER BY key LIMIT ${LISTED_KEYS}`))
        .getRowObjects()
        .map((row) => String(row.key));
      return { rows: Number(count ?? 0), keys };
    };
    const fromLanguages = new Map(await languages(connection, parquetRows(a, tombstones)));
    const toLanguages = new Map(await languages(connection, parquetRows(b, tombstones)));
    const codes = [...new Set([...fromLanguages.keys(), ...toLanguages.keys()])];
    const scores: DatasetDiff["scores"] = {};
    for (const [column, lower, upper] of SCORES) {
      scores[column] = {
        from: await histogram(connection, parquetRows(a, tombstones), column, lower, upper, BINS),
        to: await histogram(connection, parquetRows(b, tombstones), column, lower, upper, BINS),
      };
    }
    return {
      from: { id: from.id, rows: from.rows },
      to: { id: to.id, rows: to.rows },
      added: await keysOnly(b, a),
      removed: await keysOnly(a, b),
      languages: codes
        .map((code): [string, number, number] => [
          code,
          fromLanguages.get(code) ?? 0,
          toLanguages.get(code) ?? 0,
        ])
        .sort((x, y) => Math.abs(y[2] - y[1]) - Math.abs(x[2] - x[1]) || x[0].localeCompare(y[0])),
      scores,
    };
  } finally {
    connection.closeSync();
  }
}
