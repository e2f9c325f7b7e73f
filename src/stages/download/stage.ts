/**
 * The download stage as the pipeline registry lists it (src/shard/stage-definition.ts). Its code
 * loads when a call needs it, so reading the registry (the CLI's help) loads nothing heavy.
 */
import { loadConfig } from "../../config/config-file.js";
import { layout } from "../../io/layout.js";
import type { StageDefinition } from "../../shard/stage-definition.js";
import { defaultParallelism } from "../../shard/worker-pool.js";
import type { DownloadSummary } from "./download.js";
import type { CandidateShardPlan } from "./shard-plan.js";

export const downloadStage: StageDefinition<"download", DownloadSummary> = {
  name: "download",
  reads: "candidates/*.parquet, re-cut into shards of download.samplesPerShard",
  writes: "images/NNNNN.tar, .parquet and _stats.json",
  link: "all shards",
  counts: { samples: "samples", outputs: "images downloaded" },
  configSection: "download",
  redoOption: true,
  plan: async ({ storage, config: overrides }) => {
    const config = (await loadConfig(storage, { download: overrides?.download ?? {} })).download;
    const { cutCandidateShards } = await import("./shard-plan.js");
    return (await cutCandidateShards(storage, config)).map((plan) => ({ shard: plan.name, plan }));
  },
  parallelism: async (storage) => defaultParallelism((await loadConfig(storage)).download.workers),
  run: async (call) => {
    const overrides = call.config?.download ?? {};
    const config = (await loadConfig(call.storage, { download: overrides })).download;
    const share = Math.max(1, call.share ?? 1);
    const { download } = await import("./download.js");
    return download({
      root: call.storage,
      ...(call.shards === undefined ? {} : { shards: call.shards }),
      ...(call.shardPlans === undefined
        ? {}
        : { shardPlans: call.shardPlans as CandidateShardPlan[] }),
      reporter: call.reporter,
      ...(call.signal === undefined ? {} : { signal: call.signal }),
      ...(call.cwd === undefined ? {} : { cwd: call.cwd }),
      config: {
        ...overrides,
        ...(call.parallel === undefined ? {} : { workers: Math.max(1, call.parallel) }),
        concurrency: Math.max(1, Math.ceil(config.concurrency / share)),
        perHostConcurrency: Math.max(1, Math.ceil(config.perHostConcurrency / share)),
      },
    });
  },
  statsFiles: {
    folder: layout.imagesFolder(),
    inputs: "count",
    outputs: "successes",
    drops: ["failed_to_download", "failed_to_resize", "opted_out"],
    errors: ["status_dict"],
    seconds: "duration",
  },
};
