/**
 * `clipcrawl download`: candidate shards (or URL lists) → image shards in img2dataset's format
 * under `<root>/images/`.
 *
 * Shards run on the worker pool, each with its share of the concurrency; inside a shard the
 * fetches are asynchronous. A shard's outputs are written atomically by the worker, and its
 * done marker is written here, last, once the worker reports success. A re-run skips shards
 * whose marker matches their digest (img2dataset's incremental mode); `overwrite` starts over.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { loadConfig } from "../../config/config-file.js";
import { startOrOpenRoot } from "../../config/dataset-root.js";
import { ConfigError } from "../../errors.js";
import { describeBadLine } from "../../formats/blocklists.js";
import { DownloadBlocklist } from "../../formats/download-blocklist.js";
import { downloadBlocklistFile } from "../../formats/governance-blocklists.js";
import type { HostLimits } from "../../io/fetch/host-limits.js";
import { localFileIdentity } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import type { DatasetStorage } from "../../io/storage.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import { type FailedShard, runShardLoop } from "../../shard/shard-loop.js";
import { ShardSelection, unplannedShardError } from "../../shard/shard-selection.js";
import { ShardState } from "../../shard/shard-state.js";
import type { StageSummary } from "../../shard/stage-definition.js";
import { defaultParallelism, siblingModule, WorkerPool } from "../../shard/worker-pool.js";
import type { DownloadConfig } from "./config.js";
import type { DownloadShardResult } from "./download-shard.js";
import type { DownloadWorkerTask } from "./download-worker.js";
import {
  type CandidateShardPlan,
  type PlannedShard,
  planCandidateShards,
  planUrlListShards,
} from "./shard-plan.js";
import { addStatusCounts, emptyStatusCounts, type StatusCounts } from "./shard-stats.js";
import { resolveUrlListFiles } from "./url-lists.js";

export const DOWNLOAD_STAGE = "download";

export interface DownloadOptions {
  /** The dataset root: a directory path, an s3:// URL, or a storage. */
  root: string | DatasetStorage;
  /** URL lists (files or folders) to download instead of the root's candidate shards. */
  inputs?: readonly string[];
  /** Values that override the root's clipcrawl.json for this run. */
  config?: Partial<DownloadConfig>;
  /** Delete `images/` and the download markers first and redo every shard. */
  overwrite?: boolean;
  /**
   * Only these shards run (names like "00003", of the plan every run makes); the others are
   * neither run nor counted. A runner's job is one shard.
   */
  shards?: readonly string[];
  /**
   * The candidate plans of `shards`, made by `cutCandidateShards` once for a whole run (a job
   * carries its shard's): the shards are run from them, without planning every other shard.
   */
  shardPlans?: readonly CandidateShardPlan[];
  /** Redo these shards (names like "00002") even when their done markers match. */
  redo?: readonly string[];
  /** Once aborted, no further shard starts; the running ones finish (a runner's Ctrl-C). */
  signal?: AbortSignal;
  reporter?: StageReporter;
  cwd?: string;
}

export type { FailedShard };

/** `samples` counts the samples tried, `outputs` the images downloaded. */
export interface DownloadSummary extends StageSummary {
  /** True when every shard was written (failed samples are data, not a failure of the run). */
  ok: boolean;
  source: "candidates" | "url lists";
  /** Over the shards written in this run. */
  totals: StatusCounts;
  /** The most frequent outcomes ("success" and error messages) over the shards written. */
  topStatuses: Record<string, number>;
  bytesDownloaded: number;
  seconds: number;
  samplesPerSecond: number;
}

const TOP_STATUSES = 30;

export async function download(options: DownloadOptions): Promise<DownloadSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  const inputs = options.inputs ?? [];
  await startOrOpenRoot(storage, inputs.length > 0, "give URL lists to download into a new root");
  const cwd = options.cwd ?? process.cwd();
  const loaded = (await loadConfig(storage, { download: options.config ?? {} })).download;
  const config = { ...loaded, caCertificates: await checkedCaCertificates(loaded, cwd) };
  const blocklistPath = config.blocklist === "" ? "" : resolve(cwd, config.blocklist);
  if (blocklistPath !== "") {
    // Read here too so that a missing list stops the stage at once and bad lines are told once.
    const blocklist = await DownloadBlocklist.load(blocklistPath);
    for (const bad of blocklist.badLines) reporter.warn(describeBadLine(bad));
  }
  // Editing the list redoes the shards.
  const blocklistIdentity =
    blocklistPath === ""
      ? null
      : { path: blocklistPath, ...(await localFileIdentity(blocklistPath)) };

  const state = new ShardState(storage, DOWNLOAD_STAGE, { redo: options.redo });
  if (options.overwrite === true) {
    await storage.remove(layout.imagesFolder());
    await storage.remove(layout.stateFolder(DOWNLOAD_STAGE));
  }
  const plan =
    inputs.length === 0
      ? await planCandidateShards(storage, config, blocklistIdentity, options.shardPlans)
      : await planUrlListShards(
          await resolveUrlListFiles(inputs, config.inputFormat, cwd),
          config,
          blocklistIdentity,
        );

  const selection = ShardSelection.of(options.shards);
  const poolSize = Math.max(
    1,
    Math.min(defaultParallelism(config.workers), selection.count(plan.totalShards)),
  );
  const limits: HostLimits = {
    concurrency: Math.max(1, Math.ceil(config.concurrency / poolSize)),
    perHost: Math.max(1, Math.ceil(config.perHostConcurrency / poolSize)),
  };

  const totals = emptyStatusCounts();
  const statuses = new Map<string, number>();
  let bytesDownloaded = 0;
  const loop = await runShardLoop({
    stage: DOWNLOAD_STAGE,
    shards: plan.shards,
    planned: plan.totalShards,
    selection,
    state,
    overwrite: options.overwrite === true,
    reporter,
    signal: options.signal,
    concurrency: poolSize * 2,
    progress: () => ({
      samples: totals.count,
      counters: { samples: totals.count },
      notes: {
        success:
          totals.count === 0 ? "–" : `${((100 * totals.successes) / totals.count).toFixed(1)}%`,
      },
    }),
    open: async () => {
      // The workers also skip what `clipcrawl remove` took out (not part of the digests: a
      // removal rewrites the finished shards it touches itself).
      const workerBlocklist = await downloadBlocklistFile(storage, blocklistPath);
      const pool = new WorkerPool<DownloadWorkerTask, DownloadShardResult>(
        siblingModule(import.meta.url, "download-worker"),
        poolSize,
      );
      return {
        run: async (shard: PlannedShard) => {
          const samples = await shard.load();
          const result = await pool.run({
            root: storage.root,
            task: {
              shardIndex: shard.index,
              shard: shard.name,
              samples,
              extraColumns: plan.extraColumns,
              hasCaptions: plan.hasCaptions,
              config,
            },
            limits,
            blocklistPath: workerBlocklist.path,
          });
          return {
            outputs: result.outputs,
            counts: { ...result.counts },
            samples: result.counts.count,
            passedOn: result.counts.successes,
            result,
          };
        },
        close: async () => {
          await pool.close();
          await workerBlocklist.dispose();
        },
      };
    },
    written: (result) => {
      addStatusCounts(totals, result.counts);
      bytesDownloaded += result.bytesDownloaded;
      for (const [label, count] of Object.entries(result.statusDict)) {
        statuses.set(label, (statuses.get(label) ?? 0) + count);
      }
    },
  });

  // A --redo name the plan never offered: a typo, or a shard whose input is gone.
  const redoUnplanned = options.overwrite === true ? [] : state.redoNotPlanned();
  const failedShards = [
    ...loop.failedShards,
    ...redoUnplanned.map((shard) => ({
      shard,
      error: unplannedShardError(DOWNLOAD_STAGE, plan.totalShards),
    })),
  ];
  const seconds = (performance.now() - started) / 1000;
  return {
    ok: failedShards.length === 0,
    source: plan.source,
    shards: loop.shardsTotal,
    shardsWritten: loop.shardsWritten,
    shardsSkipped: loop.shardsSkipped,
    failedShards,
    samples: totals.count,
    outputs: totals.successes,
    totals,
    topStatuses: Object.fromEntries(
      [...statuses.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_STATUSES),
    ),
    bytesDownloaded,
    seconds,
    samplesPerSecond: totals.count / Math.max(seconds, 0.001),
  };
}

/** The absolute path of `caCertificates` once it is known to hold a PEM certificate; "" for none. */
async function checkedCaCertificates(config: DownloadConfig, cwd: string): Promise<string> {
  if (config.caCertificates === "") return "";
  const path = resolve(cwd, config.caCertificates);
  const text = await readFile(path, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(
      `download.caCertificates: cannot read ${path} (${error.code ?? error.message})`,
    );
  });
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(`download.caCertificates: ${path} holds no PEM certificate`);
  }
  return path;
}
