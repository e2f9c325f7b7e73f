/**
 * One dataset shard of a recheck: its sampled rows' URLs fetched again, with download's fetcher
 * (timeouts, retries, size limit, the network guard, X-Robots-Tag opt-outs honoured anew) under
 * its per-host limits, and each row's status now: `alive` (the same bytes), `changed` (other
 * bytes: the image a training set would get is not the one the dataset was filtered on), `gone`
 * (HTTP 4xx), `opted_out` (the site says noai/noimageai now) or `error` (timeouts, 5xx, refused
 * connections: not known to be gone).
 */
import { createHash } from "node:crypto";
import { type HostLimits, hostOfUrl, runWithHostLimits } from "../../io/fetch/host-limits.js";
import type { ImageFetcher } from "../../io/fetch/image-fetcher.js";
import { layout } from "../../io/layout.js";
import { type ParquetColumn, readParquet, writeParquet } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";

export const RECHECK_STATUSES = ["alive", "changed", "gone", "opted_out", "error"] as const;
export type RecheckStatus = (typeof RECHECK_STATUSES)[number];

export interface RecheckRow {
  key: string;
  url: string;
  caption: string;
  domain: string;
  status: RecheckStatus;
  /** The HTTP status of a `gone` row. */
  http_status: number | null;
  /** Why a row is not alive, as download words it. */
  error_message: string | null;
  sha256_before: string | null;
  sha256_now: string | null;
  checked_at: string;
}

export const RECHECK_COLUMNS: readonly ParquetColumn<RecheckRow>[] = [
  { name: "key", type: "VARCHAR", value: (row) => row.key },
  { name: "url", type: "VARCHAR", value: (row) => row.url },
  { name: "caption", type: "VARCHAR", value: (row) => row.caption },
  { name: "domain", type: "VARCHAR", value: (row) => row.domain },
  { name: "status", type: "VARCHAR", value: (row) => row.status },
  { name: "http_status", type: "INTEGER", value: (row) => row.http_status },
  { name: "error_message", type: "VARCHAR", value: (row) => row.error_message },
  { name: "sha256_before", type: "VARCHAR", value: (row) => row.sha256_before },
  { name: "sha256_now", type: "VARCHAR", value: (row) => row.sha256_now },
  { name: "checked_at", type: "VARCHAR", value: (row) => row.checked_at },
];

/** Whether a row is in a recheck's sample: a hash of its key and the seed, below the fraction. */
export function inSample(key: string, fraction: number, seed: number): boolean {
  if (fraction >= 1) return true;
  const hash = createHash("sha256").update(`${seed}:${key}`).digest();
  return hash.readUInt32BE(0) / 2 ** 32 < fraction;
}

export interface RecheckShardTask {
  shard: string;
  /** Keys of removed samples (tombstones, src/formats/tombstones.ts): not fetched, not listed. */
  tombstoned: ReadonlySet<string>;
  date: string;
  fraction: number;
  seed: number;
  fetcher: ImageFetcher;
  limits: HostLimits;
}

/** Rechecks one dataset shard and writes its part; returns its rows' statuses. */
export async function recheckShard(
  storage: DatasetStorage,
  task: RecheckShardTask,
): Promise<RecheckRow[]> {
  const rows = await readParquet(storage, layout.datasetShard(task.shard), [
    "key",
    "URL",
    "TEXT",
    "sha256",
  ]);
  const sampled = rows.filter(
    (row) =>
      !task.tombstoned.has(String(row.key)) && inSample(String(row.key), task.fraction, task.seed),
  );
  const checked: RecheckRow[] = new Array(sampled.length);
  await runWithHostLimits(
    sampled.map((row, index) => ({ row, index })),
    ({ row }) => hostOfUrl(String(row.URL)),
    task.limits,
    async ({ row, index }, releaseHost) => {
      const url = String(row.URL);
      const before = typeof row.sha256 === "string" ? row.sha256 : null;
      const fetched = await task.fetcher.fetch(url);
      releaseHost();
      const base = {
        key: String(row.key),
        url,
        caption: typeof row.TEXT === "string" ? row.TEXT : "",
        domain: hostOfUrl(url),
        sha256_before: before,
        checked_at: new Date().toISOString(),
      };
      if (fetched.status === "ok") {
        const now = fetched.hashes.sha256;
        checked[index] = {
          ...base,
          status: before === null || now === before ? "alive" : "changed",
          http_status: null,
          error_message: now === before ? null : "the image bytes differ from the dataset's",
          sha256_now: now,
        };
      } else if (fetched.status === "opted_out") {
        checked[index] = {
          ...base,
          status: "opted_out",
          http_status: null,
          error_message: fetched.reason,
          sha256_now: null,
        };
      } else {
        const http = /^HTTP (4\d\d)\b/.exec(fetched.error);
        checked[index] = {
          ...base,
          status: http === null ? "error" : "gone",
          http_status: http === null ? null : Number(http[1]),
          error_message: fetched.error,
          sha256_now: null,
        };
      }
    },
  );
  await writeParquet(storage, layout.recheckPart(task.date, task.shard), RECHECK_COLUMNS, checked);
  return checked;
}
