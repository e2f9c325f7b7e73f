/** The index stage as the pipeline registry lists it (src/shard/stage-definition.ts). */
import type { StageDefinition } from "../../shard/stage-definition.js";
import { buildIndex, INDEX_STAGE, type IndexSummary } from "./build-index.js";
import { planIndexShards } from "./index-plan.js";

export const indexStage: StageDefinition<typeof INDEX_STAGE, IndexSummary> = {
  name: INDEX_STAGE,
  reads: "dataset/*.parquet and the embeddings they kept",
  writes: "index/ (graphs, metadata columns, manifest.json last)",
  link: "all shards done",
  // Its shards are the dataset shards (each gets its own done marker), all added in one call:
  // one build holds the graphs in memory.
  runsAs: "one job",
  counts: { samples: "rows indexed", outputs: "rows indexed" },
  configSection: "index",
  plan: async ({ storage }) => (await planIndexShards(storage)).shards.map((shard) => shard.name),
  run: (call) =>
    buildIndex({
      root: call.storage,
      reporter: call.reporter,
      ...(call.config?.index === undefined ? {} : { config: call.config.index }),
    }),
};
