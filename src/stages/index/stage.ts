/**
 * The index stage as the pipeline registry lists it (src/shard/stage-definition.ts). Its code
 * loads when a call needs it, so reading the registry (the CLI's help) loads nothing heavy.
 */
import type { StageDefinition } from "../../shard/stage-definition.js";
import type { IndexSummary } from "./build-index.js";

export const indexStage: StageDefinition<"index", IndexSummary> = {
  name: "index",
  reads: "dataset/*.parquet and the embeddings they kept",
  writes: "index/ (graphs, metadata columns, manifest.json last)",
  link: "all shards done",
  // Its shards are the dataset shards (each gets its own done marker), all added in one call:
  // one build holds the graphs in memory.
  runsAs: "one job",
  counts: { samples: "rows indexed", outputs: "rows indexed" },
  configSection: "index",
  plan: async ({ storage }) => {
    const { planIndexShards } = await import("./index-plan.js");
    return (await planIndexShards(storage)).shards.map((shard) => ({ shard: shard.name }));
  },
  run: async (call) =>
    (await import("./build-index.js")).buildIndex({
      root: call.storage,
      reporter: call.reporter,
      ...(call.config?.index === undefined ? {} : { config: call.config.index }),
    }),
};
