/**
 * The pipeline as runners see it: which stages there are, in what order, and how one batch of a
 * stage's shards is run — always through the stage's own library function, so a shard's output is
 * the same whichever runner ran it and wherever.
 *
 * extract is a phase of its own (a download shard is cut from the candidate rows of every WAT
 * file, so none can start before extract is over); download → embed → filter then run per image
 * shard (shard NNNNN of each comes from NNNNN of the one before), and index once at the end.
 *
 * The stage functions load when a batch first runs them: the CLI reads this registry to build its
 * commands, and `clipcrawl --help` must not load onnxruntime, sharp or DuckDB.
 */
import { loadConfig } from "../config/config-file.js";
import { errorMessage } from "../errors.js";
import type { LocalStorage } from "../io/local-storage.js";
import type { StageReporter } from "../shard/reporter.js";
import { planCandidateShards } from "../stages/download/shard-plan.js";

export const PIPELINE_STAGES = ["extract", "download", "embed", "filter", "index"] as const;
export type PipelineStage = (typeof PIPELINE_STAGES)[number];

/** The stages that run per image shard, in order. */
export const SHARD_STAGES = ["download", "embed", "filter"] as const;
export type ShardStage = (typeof SHARD_STAGES)[number];

/** The one "shard" of a stage that runs over the whole dataset at once (index). */
export const WHOLE_DATASET = "all";

export interface ShardOutcome {
  shard: string;
  ok: boolean;
  error?: string;
}

/** What one call of a stage function did to the shards it was given. */
export interface StageBatchResult {
  stage: PipelineStage;
  outcomes: ShardOutcome[];
  /** Shards that were already done (their marker matched). */
  skipped: number;
  /** Samples the batch accounted for, and how many of them came through (see SUCCESS_MEANING). */
  samples: number;
  successes: number;
  seconds: number;
}

/** What counts as a success in each stage's success rate. */
export const SUCCESS_MEANING: Record<PipelineStage, string> = {
  extract: "pairs kept",
  download: "images downloaded",
  embed: "samples embedded",
  filter: "pairs kept",
  index: "rows indexed",
};

/** The counter of a stage's progress updates that counts its samples. */
export const SAMPLE_COUNTER: Record<PipelineStage, string> = {
  extract: "pairs",
  download: "samples",
  embed: "samples",
  filter: "pairs",
  index: "rows",
};

/** The counts of a stage's done marker that hold its samples and its successes. */
export const SHARD_COUNTS: Record<PipelineStage, readonly [string, string]> = {
  extract: ["kept", "kept"],
  download: ["count", "successes"],
  embed: ["samples", "embedded"],
  filter: ["samples", "kept"],
  index: ["rows", "rows"],
};

export interface BatchOptions {
  storage: LocalStorage;
  shards: readonly string[];
  reporter: StageReporter;
  /** Stops download starting further shards. */
  signal?: AbortSignal;
  /** download's worker threads for this call (default 1). */
  downloadWorkers?: number;
  /**
   * Calls of download this runner makes at once: each gets that share of download's global and
   * per-host concurrency (which download shares out among its own threads in turn).
   */
  downloadsInParallel?: number;
}

/** Runs a shard stage on the named shards. Per-shard failures are outcomes; a throw fails them all. */
export async function runShardBatch(
  stage: ShardStage | "index",
  options: BatchOptions,
): Promise<StageBatchResult> {
  const started = performance.now();
  const { storage, shards, reporter } = options;
  const finish = (
    failed: readonly { shard: string; error: string }[],
    skipped: number,
    samples: number,
    successes: number,
  ): StageBatchResult => {
    const errors = new Map(failed.map((item) => [item.shard, item.error]));
    return {
      stage,
      outcomes: shards.map((shard) => {
        const error = errors.get(shard);
        return error === undefined ? { shard, ok: true } : { shard, ok: false, error };
      }),
      skipped,
      samples,
      successes,
      seconds: (performance.now() - started) / 1000,
    };
  };
  try {
    if (stage === "download") {
      const config = (await loadConfig(storage)).download;
      const parallel = Math.max(1, options.downloadsInParallel ?? 1);
      const { download } = await import("../stages/download/download.js");
      const summary = await download({
        root: storage,
        shards,
        reporter,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
        config: {
          workers: Math.max(1, options.downloadWorkers ?? 1),
          concurrency: Math.max(1, Math.ceil(config.concurrency / parallel)),
          perHostConcurrency: Math.max(1, Math.ceil(config.perHostConcurrency / parallel)),
        },
      });
      return finish(
        summary.failedShards,
        summary.shardsSkipped,
        summary.totals.count,
        summary.totals.successes,
      );
    }
    if (stage === "embed") {
      const { embed } = await import("../stages/embed/embed.js");
      const summary = await embed({ root: storage, shards, reporter });
      return finish(
        summary.failedShards,
        summary.shardsSkipped,
        summary.totals.samples,
        summary.totals.embedded,
      );
    }
    if (stage === "filter") {
      const { filter } = await import("../stages/filter/filter.js");
      const summary = await filter({ root: storage, shards, reporter });
      return finish(
        summary.failedShards,
        summary.shardsSkipped,
        summary.totals.samples,
        summary.totals.kept,
      );
    }
    // The index stage plugs in here: one call over every dataset shard, once filter is over.
    const { buildIndex } = await import("../stages/index/build-index.js");
    const summary = await buildIndex({ root: storage, reporter });
    const failed = summary.failedShards.map((item) => `${item.shard}: ${item.error}`);
    return finish(
      summary.ok ? [] : [{ shard: WHOLE_DATASET, error: failed.join("; ") || "index failed" }],
      summary.shardsSkipped > 0 && summary.shardsAdded === 0 ? 1 : 0,
      summary.rowsAdded,
      summary.rowsAdded,
    );
  } catch (error) {
    const message = errorMessage(error);
    return finish(
      shards.map((shard) => ({ shard, error: message })),
      0,
      0,
      0,
    );
  }
}

/** The image shards download will cut from the root's candidate shards, in order. */
export async function plannedImageShards(storage: LocalStorage): Promise<string[]> {
  const config = (await loadConfig(storage)).download;
  // Only the count matters here: the blocklist's identity changes digests, not shard names.
  const plan = await planCandidateShards(storage, config, null);
  const names: string[] = [];
  for await (const shard of plan.shards) names.push(shard.name);
  return names;
}
