/**
 * `clipcrawl stats`: the report of a dataset root a paper's data section needs, as JSON and as one
 * self-contained HTML page with the web statistics page's plots.
 *
 * The numbers are the statistics page's (src/formats/dataset-stats.ts, with the dataset shards as
 * the kept rows), plus what only a whole-root report has: each stage's totals from its stats files
 * (src/pipeline/run-report.ts), the top domains of the kept pairs, and each stage's throughput:
 * from the latest run report when there is one, else from the shards' own timings.
 *
 * A dataset shard that is not readable Parquet is left out of the numbers and named in
 * `damagedShards` with the command that redoes it; the summary is then not `ok`.
 */
import { mkdir } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { requireDatasetRoot } from "../../config/dataset-root.js";
import {
  againNamingDamage,
  type DamagedDatasetShard,
  describeDamagedShard,
  readableDatasetShards,
} from "../../formats/dataset-shards.js";
import { type DatasetStats, fileList, readDatasetStats } from "../../formats/dataset-stats.js";
import {
  liveRows,
  readTombstones,
  registerTombstones,
  type Tombstones,
} from "../../formats/tombstones.js";
import { LocalStorage } from "../../io/local-storage.js";
import { openRoot } from "../../io/open-root.js";
import { duckdbConnection } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { type PerStage, STAGE_NAMES } from "../../pipeline/pipeline.js";
import {
  readLatestRunReport,
  readStageTotals,
  type StageTotals,
} from "../../pipeline/run-report.js";
import { reportScriptPath, statsHtml } from "./stats-html.js";

export const STATS_STAGE = "stats";
/** Where the HTML report goes unless told: next to the run reports. */
export const STATS_HTML = "_reports/stats.html";
const TOP_DOMAINS = 20;

export interface StatsOptions {
  /** The dataset root: a directory path, an s3:// URL, or a storage. */
  root: string | DatasetStorage;
  /** The HTML report to write (relative to `cwd`); default `<root>/_reports/stats.html`. */
  html?: string;
  /** The JSON file to write; default: none. */
  json?: string;
  /** The built chart script to inline; default: the package's web/dist/report/stats-report.js. */
  script?: string;
  cwd?: string;
}

export interface StageThroughput {
  stage: string;
  samples: number | null;
  seconds: number | null;
  samplesPerSecond: number | null;
  /** "run report": the latest run's own figure; "shard stats": the stats files' timings. */
  source: "run report" | "shard stats" | null;
}

export interface StatsReport extends DatasetStats {
  root: string;
  generatedAt: string;
  /** Per stage, over the whole root: inputs, outputs, drops by reason, errors (null: not run). */
  stages: PerStage<StageTotals | null>;
  topDomains: [string, number][];
  throughput: StageThroughput[];
  /** The run report the throughput came from, when there was one. */
  runReport: { command: string; finishedAt: string } | null;
  /** Dataset shards left out of the numbers: not readable Parquet. */
  damagedShards: DamagedDatasetShard[];
}

export interface StatsSummary {
  /** False when damaged dataset shards were left out. */
  ok: boolean;
  /** One line for each damaged shard: what is wrong and the command that redoes it. */
  warnings: string[];
  html: string;
  json: string | null;
  report: StatsReport;
}

export async function stats(options: StatsOptions): Promise<StatsSummary> {
  const cwd = options.cwd ?? process.cwd();
  const storage = openRoot(options.root);
  await requireDatasetRoot(storage);
  const report = await statsReport(storage);
  const page = await statsHtml(report, options.script ?? reportScriptPath());
  let html: string;
  if (options.html === undefined) {
    await storage.writeAtomic(STATS_HTML, page);
    html = storage.describe(STATS_HTML);
  } else {
    html = resolve(cwd, options.html);
    await writeFileAtomic(html, page);
  }
  let json: string | null = null;
  if (options.json !== undefined) {
    json = resolve(cwd, options.json);
    await writeFileAtomic(json, `${JSON.stringify(report, null, 2)}\n`);
  }
  const warnings = report.damagedShards.map((shard) => describeDamagedShard(shard, storage.root));
  return { ok: warnings.length === 0, warnings, html, json, report };
}

/** The report's numbers (what `--json` writes). */
export async function statsReport(storage: DatasetStorage): Promise<StatsReport> {
  return againNamingDamage((readRows) => statsReportOnce(storage, readRows));
}

async function statsReportOnce(storage: DatasetStorage, readRows: boolean): Promise<StatsReport> {
  const { kept, damaged } = await keptShards(storage, readRows);
  const tombstones = await readTombstones(storage);
  const rows = await keptRows(kept, tombstones);
  const stages = await readStageTotals(storage);
  const latest = await readLatestRunReport(storage);
  return {
    root: storage.root,
    generatedAt: new Date().toISOString(),
    ...(await readDatasetStats(storage, { paths: kept, rows, tombstones })),
    stages,
    topDomains: await topDomains(kept, tombstones),
    throughput: STAGE_NAMES.map((stage) =>
      throughput(
        stage,
        latest?.stages.find((item) => item.stage === stage)?.run ?? null,
        stages[stage] ?? null,
      ),
    ),
    runReport:
      latest === undefined ? null : { command: latest.command, finishedAt: latest.finishedAt },
    damagedShards: damaged,
  };
}

/** The readable dataset shards' local paths, and the damaged ones: the report needs filter to have run. */
async function keptShards(
  storage: DatasetStorage,
  readRows: boolean,
): Promise<{ kept: string[]; damaged: DamagedDatasetShard[] }> {
  const { readable, damaged } = await readableDatasetShards(
    storage,
    "no dataset shards (NNNNN.parquet) to report on: run clipcrawl run (or download, embed and filter) on this root first",
    { readRows },
  );
  const kept = await Promise.all(readable.map((shard) => storage.localPath(shard.path)));
  return { kept, damaged };
}

/** The dataset's rows, the tombstoned ones (removed, not yet compacted) left out. */
async function keptRows(paths: readonly string[], tombstones: Tombstones): Promise<number> {
  const connection = await duckdbConnection();
  try {
    await registerTombstones(connection, tombstones);
    const reader = await connection.runAndReadAll(
      `SELECT count(*)::BIGINT AS n FROM ${liveRows(`read_parquet(${fileList(paths)})`, tombstones)}`,
    );
    return Number(reader.getRowObjects()[0]?.n ?? 0);
  } finally {
    connection.closeSync();
  }
}

/** The hosts of the kept pairs' image URLs, most frequent first. */
async function topDomains(
  paths: readonly string[],
  tombstones: Tombstones,
): Promise<[string, number][]> {
  const connection = await duckdbConnection();
  try {
    await registerTombstones(connection, tombstones);
    const reader = await connection.runAndReadAll(
      `SELECT domain, count(*)::INTEGER AS n FROM (
         SELECT lower(regexp_extract(URL, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/:?#]+)', 1)) AS domain
         FROM ${liveRows(`read_parquet(${fileList(paths)})`, tombstones)})
       WHERE domain <> '' GROUP BY domain ORDER BY n DESC, domain LIMIT ${TOP_DOMAINS}`,
    );
    return reader.getRows() as [string, number][];
  } finally {
    connection.closeSync();
  }
}

/**
 * A stage's samples/s: the run report's when its run processed samples (a stage command, or the
 * local runner), else the stats files' inputs over their wall time (first start to last end).
 */
function throughput(
  stage: string,
  run: { samples: number; seconds: number; samplesPerSecond: number } | null,
  totals: StageTotals | null,
): StageThroughput {
  if (run !== null && run.samples > 0 && run.seconds > 0) {
    return {
      stage,
      samples: run.samples,
      seconds: run.seconds,
      samplesPerSecond: run.samplesPerSecond,
      source: "run report",
    };
  }
  const seconds = totals?.wallSeconds ?? totals?.busySeconds ?? null;
  if (totals === null || seconds === null || seconds <= 0) {
    return {
      stage,
      samples: totals?.inputs ?? null,
      seconds,
      samplesPerSecond: null,
      source: null,
    };
  }
  return {
    stage,
    samples: totals.inputs,
    seconds,
    samplesPerSecond: totals.inputs / seconds,
    source: "shard stats",
  };
}

async function writeFileAtomic(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await new LocalStorage(dirname(path)).writeAtomic(basename(path), text);
}
