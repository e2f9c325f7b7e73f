/**
 * The index stage as the pipeline registry lists it (src/shard/stage-definition.ts). Its code
 * loads when a call needs it, so reading the registry (the CLI's help) loads nothing heavy.
 */
import type { StageDefinition } from "../../shard/stage-definition.js";
import type { IndexSummary } from "./build-index.js";
import type { IndexShardJob } from "./index-job-plan.js";

export const indexStage: StageDefinition<"index", IndexSummary> = {
  name: "index",
  reads: "dataset/*.parquet and the embeddings they kept",
  writes: "index/ (graphs, metadata columns, manifest.json last)",
  link: "all shards done",
  counts: { samples: "rows indexed", outputs: "rows indexed" },
  configSection: "index",
  // Its shards are the input shards (each gets its own done marker); a local call adds them all
  // (build-index.ts). A distributed run builds one index shard a job (index-job-plan.ts) and
  // commits them once all are over.
  plan: async ({ storage }) => {
    const { planIndexShards } = await import("./index-plan.js");
    return (await planIndexShards(storage)).shards.map((shard) => ({ shard: shard.name }));
  },
  planJobs: async ({ storage, config }) =>
    (await import("./index-job-plan.js")).planIndexJobs(storage, config?.index),
  aroundSharedRun: {
    before: async (run) => (await import("./index-job-training.js")).trainSharedCodes(run),
    after: async (run) => (await import("./index-job-commit.js")).commitIndexJobs(run),
  },
  run: async (call) => {
    const { isIndexShardJob } = await import("./index-job-plan.js");
    const job = call.shardPlans?.[0];
    if (call.shardPlans?.length === 1 && isIndexShardJob(job)) {
      return (await import("./index-shard-job.js")).runIndexShardJob(call, job as IndexShardJob);
    }
    return (await import("./build-index.js")).buildIndex({
      root: call.storage,
      reporter: call.reporter,
      ...(call.config?.index === undefined ? {} : { config: call.config.index }),
    });
  },
};
