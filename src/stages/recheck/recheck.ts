/**
 * `clipcrawl recheck`: how much of a dataset is still online, measured. Every dataset shard's
 * URLs (all, or a deterministic `--sample` fraction) are fetched again with download's fetcher,
 * politeness and safety (its `download` config: per-host limits, User-Agent token, opt-out
 * headers, the private-network guard), and each row's status is recorded (recheck-shard.ts).
 *
 * A recheck is named by its date (`--date`, default today, UTC) and is resumable: each dataset
 * shard's part is written atomically with a done marker under `_state/recheck/<date>/`, so an
 * interrupted recheck fetches only what it had not. When every shard is done, the parts become
 * one file, `_recheck/<date>.parquet` (a recheck a file: the URLs' history is the series), with
 * `_recheck/<date>.json` (the summary, per domain), `_recheck/<date>.available.parquet` (the rows
 * still online and unchanged, ready for `clipcrawl download`) and `_recheck/<date>.opted-out.txt`
 * (the URLs that opted out since, ready for `clipcrawl remove --urls`).
 */
import { loadConfig } from "../../config/config-file.js";
import { requireDatasetRoot } from "../../config/dataset-root.js";
import type { ClipcrawlConfig } from "../../config/schema.js";
import { ClipcrawlError } from "../../errors.js";
import { describeDamagedShard, readableDatasetShards } from "../../formats/dataset-shards.js";
import { type LinkRotSummary, summariseLinkRot } from "../../formats/link-rot.js";
import {
  liveRows,
  readTombstones,
  registerTombstones,
  type Tombstones,
} from "../../formats/tombstones.js";
import type { HostLimits } from "../../io/fetch/host-limits.js";
import { ImageFetcher } from "../../io/fetch/image-fetcher.js";
import { outputInfo } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import { duckdbConnection, quoteLiteral, writeParquetQuery } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import { type FailedShard, runShardLoop } from "../../shard/shard-loop.js";
import { ShardSelection } from "../../shard/shard-selection.js";
import { digestOf, ShardState } from "../../shard/shard-state.js";
import { type RecheckRow, recheckShard } from "./recheck-shard.js";

export const RECHECK_STAGE = "recheck";
const DATE = /^\d{4}-\d{2}-\d{2}[\w-]*$/;

export interface RecheckOptions {
  root: string | DatasetStorage;
  /** The fraction of each shard's rows fetched again (0 < f ≤ 1; default 1: every row). */
  sample?: number;
  /** Picks which rows a fraction samples, the same rows for the same seed. */
  seed?: number;
  /** The recheck's name: YYYY-MM-DD (default: today, UTC), optionally with a suffix. */
  date?: string;
  /** Values that override the root's `download` section (limits, timeouts, the network guard). */
  config?: Partial<ClipcrawlConfig["download"]>;
  reporter?: StageReporter;
}

export interface RecheckSummary extends LinkRotSummary {
  ok: boolean;
  date: string;
  shards: number;
  shardsWritten: number;
  shardsSkipped: number;
  failedShards: FailedShard[];
  /** The files the recheck wrote, root-relative. */
  files: { rows: string; summary: string; available: string; optedOut: string } | null;
  seconds: number;
}

export async function recheck(options: RecheckOptions): Promise<RecheckSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  await requireDatasetRoot(storage);
  const fraction = options.sample ?? 1;
  if (!(fraction > 0 && fraction <= 1)) {
    throw new ClipcrawlError(
      "CC_RECHECK_SAMPLE",
      `--sample: expected a fraction above 0 and at most 1, got ${fraction}`,
    );
  }
  const date = options.date ?? new Date().toISOString().slice(0, 10);
  if (!DATE.test(date)) {
    throw new ClipcrawlError(
      "CC_RECHECK_DATE",
      `--date: expected YYYY-MM-DD (optionally with a suffix, e.g. 2026-12-06-b), got "${date}"`,
    );
  }
  const seed = options.seed ?? 0;
  const config = (await loadConfig(storage, { download: options.config ?? {} })).download;
  // Each shard is read on its own later: decoding it first names a damaged page up front.
  const { readable, damaged } = await readableDatasetShards(
    storage,
    "no dataset shards (NNNNN.parquet); run clipcrawl filter first",
    { readRows: true },
  );
  for (const shard of damaged) {
    reporter.warn(`recheck: ${describeDamagedShard(shard, storage.root)}`);
  }

  const tombstones = await readTombstones(storage);
  const stage = `${RECHECK_STAGE}/${date}`;
  const state = new ShardState(storage, stage);
  const plan = readable.map((shard) => ({
    name: shard.shard,
    digest: digestOf({ dataset: shard.bytes, shard: shard.shard, fraction, seed }),
  }));
  const limits: HostLimits = {
    concurrency: config.concurrency,
    perHost: config.perHostConcurrency,
  };
  const counts = { rows: 0 };
  const loop = await runShardLoop({
    stage,
    shards: plan,
    planned: plan.length,
    selection: ShardSelection.of(undefined),
    state,
    overwrite: false,
    reporter,
    progress: () => ({ samples: counts.rows, counters: { urls: counts.rows } }),
    open: async () => {
      const fetcher = new ImageFetcher({ ...config, connectionsPerHost: limits.perHost });
      return {
        run: async (shard) => {
          const rows = await recheckShard(storage, {
            shard: shard.name,
            tombstoned: tombstones.keys,
            date,
            fraction,
            seed,
            fetcher,
            limits,
          });
          const alive = rows.filter((row) => row.status === "alive").length;
          return {
            outputs: await outputInfo(storage, [layout.recheckPart(date, shard.name)]),
            counts: statusCounts(rows),
            samples: rows.length,
            passedOn: alive,
            result: rows.length,
          };
        },
        close: () => fetcher.close(),
      };
    },
    written: (rows) => {
      counts.rows += rows;
    },
  });

  const complete = loop.failedShards.length === 0;
  const files = complete
    ? await combine(
        storage,
        date,
        plan.map((shard) => shard.name),
        tombstones,
      )
    : null;
  const summary = files === null ? emptySummary() : await summariseLinkRot(storage, files.rows);
  if (files !== null) {
    await storage.writeAtomic(
      files.summary,
      `${JSON.stringify({ date, fraction, seed, ...summary }, null, 2)}\n`,
    );
  }
  return {
    ok: complete && damaged.length === 0,
    date,
    shards: loop.shardsTotal,
    shardsWritten: loop.shardsWritten,
    shardsSkipped: loop.shardsSkipped,
    failedShards: loop.failedShards,
    ...summary,
    files,
    seconds: (performance.now() - started) / 1000,
  };
}

function statusCounts(rows: readonly RecheckRow[]): Record<string, number> {
  const counts: Record<string, number> = { urls: rows.length };
  for (const row of rows) counts[row.status] = (counts[row.status] ?? 0) + 1;
  return counts;
}

/** The parts as one file, the rows still available, and the URLs that opted out since. */
async function combine(
  storage: DatasetStorage,
  date: string,
  shards: readonly string[],
  tombstones: Tombstones,
): Promise<NonNullable<RecheckSummary["files"]>> {
  const files = {
    rows: layout.recheck(date),
    summary: layout.recheckSummary(date),
    available: layout.recheckAvailable(date),
    optedOut: layout.recheckOptedOut(date),
  };
  const parts = await Promise.all(
    shards.map(async (shard) =>
      quoteLiteral(await storage.localPath(layout.recheckPart(date, shard))),
    ),
  );
  const connection = await duckdbConnection();
  try {
    await registerTombstones(connection, tombstones);
    const all =
      parts.length === 0
        ? "(SELECT NULL::VARCHAR AS key, NULL::VARCHAR AS url, NULL::VARCHAR AS caption, NULL::VARCHAR AS domain, NULL::VARCHAR AS status, NULL::INTEGER AS http_status, NULL::VARCHAR AS error_message, NULL::VARCHAR AS sha256_before, NULL::VARCHAR AS sha256_now, NULL::VARCHAR AS checked_at WHERE false)"
        : // A part written before a removal still holds its samples' rows.
          liveRows(`read_parquet([${parts.join(", ")}])`, tombstones);
    await writeParquetQuery(connection, storage, files.rows, `SELECT * FROM ${all} ORDER BY key`);
    const rows = `read_parquet(${quoteLiteral(await storage.localPath(files.rows))})`;
    await writeParquetQuery(
      connection,
      storage,
      files.available,
      `SELECT url, caption, key FROM ${rows} WHERE status = 'alive' ORDER BY key`,
    );
    const reader = await connection.runAndReadAll(
      `SELECT url FROM ${rows} WHERE status = 'opted_out' ORDER BY url`,
    );
    const urls = reader.getRowObjects().map((row) => String(row.url));
    await storage.writeAtomic(files.optedOut, urls.map((url) => `${url}\n`).join(""));
  } finally {
    connection.closeSync();
  }
  return files;
}

function emptySummary(): LinkRotSummary {
  return { overall: null, domains: [] };
}
