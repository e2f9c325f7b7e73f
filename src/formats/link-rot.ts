/**
 * Link rot, as `clipcrawl recheck` measured it: of a recheck's rows (`_recheck/<date>.parquet`),
 * the share alive (same bytes), changed, gone (HTTP 4xx), opted out since and unreachable
 * (errors), overall and per domain. `clipcrawl stats` and the web statistics page show the
 * latest recheck's.
 */
import { layout } from "../io/layout.js";
import { duckdbConnection, quoteLiteral } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";

export interface LinkRotCounts {
  urls: number;
  alive: number;
  changed: number;
  gone: number;
  opted_out: number;
  error: number;
}

export interface LinkRotSummary {
  /** Over every URL checked; null when none was. */
  overall: LinkRotCounts | null;
  /** The domains with the most URLs checked, most first. */
  domains: ({ domain: string } & LinkRotCounts)[];
}

export interface LinkRotStats extends LinkRotSummary {
  /** The recheck these come from (its date). */
  date: string;
}

const TOP_DOMAINS = 50;
const RECHECK_FILE = /^(\d{4}-\d{2}-\d{2}[\w-]*)\.parquet$/;

/** The counts of one recheck's rows file (root-relative path). */
export async function summariseLinkRot(
  storage: DatasetStorage,
  rowsPath: string,
): Promise<LinkRotSummary> {
  const rows = `read_parquet(${quoteLiteral(await storage.localPath(rowsPath))})`;
  const counts = `count(*)::BIGINT AS urls,
    count(*) FILTER (WHERE status = 'alive')::BIGINT AS alive,
    count(*) FILTER (WHERE status = 'changed')::BIGINT AS changed,
    count(*) FILTER (WHERE status = 'gone')::BIGINT AS gone,
    count(*) FILTER (WHERE status = 'opted_out')::BIGINT AS opted_out,
    count(*) FILTER (WHERE status = 'error')::BIGINT AS error`;
  const connection = await duckdbConnection();
  try {
    const overall = (await connection.runAndReadAll(`SELECT ${counts} FROM ${rows}`))
      .getRowObjects()
      .map(asCounts)[0];
    const domains = (
      await connection.runAndReadAll(
        `SELECT domain, ${counts} FROM ${rows} GROUP BY domain ORDER BY urls DESC, domain LIMIT ${TOP_DOMAINS}`,
      )
    )
      .getRowObjects()
      .map((row) => ({ domain: String(row.domain), ...asCounts(row) }));
    return { overall: overall === undefined || overall.urls === 0 ? null : overall, domains };
  } finally {
    connection.closeSync();
  }
}

/** The latest finished recheck of the root (by date), or null when it has none. */
export async function readLatestLinkRot(storage: DatasetStorage): Promise<LinkRotStats | null> {
  const dates = (await storage.list(layout.recheckFolder()))
    .map((name) => RECHECK_FILE.exec(name)?.[1])
    .filter((date): date is string => date !== undefined)
    .sort();
  const date = dates.at(-1);
  if (date === undefined) return null;
  return { date, ...(await summariseLinkRot(storage, layout.recheck(date))) };
}

function asCounts(row: Record<string, unknown>): LinkRotCounts {
  const number = (value: unknown) => Number(value ?? 0);
  return {
    urls: number(row.urls),
    alive: number(row.alive),
    changed: number(row.changed),
    gone: number(row.gone),
    opted_out: number(row.opted_out),
    error: number(row.error),
  };
}
