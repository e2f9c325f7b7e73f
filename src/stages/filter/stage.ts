/**
 * The filter stage as the pipeline registry lists it (src/shard/stage-definition.ts). Its code
 * loads when a call needs it, so reading the registry (the CLI's help) loads nothing heavy.
 */
import { layout } from "../../io/layout.js";
import type { StageDefinition } from "../../shard/stage-definition.js";
import type { FilterSummary } from "./filter.js";

export const filterStage: StageDefinition<"filter", FilterSummary> = {
  name: "filter",
  reads: "embeddings/metadata/metadata_NNNNN.parquet",
  writes: "dataset/NNNNN.parquet in the LAION schema",
  link: "each shard",
  counts: { samples: "pairs", outputs: "pairs kept" },
  configSection: "filter",
  redoOption: true,
  run: async (call) =>
    (await import("./filter.js")).filter({
      root: call.storage,
      ...(call.shards === undefined ? {} : { shards: call.shards }),
      reporter: call.reporter,
      ...(call.config?.filter === undefined ? {} : { config: call.config.filter }),
      ...(call.cwd === undefined ? {} : { cwd: call.cwd }),
    }),
  statsFiles: {
    folder: layout.datasetFolder(),
    inputs: "samples",
    outputs: "kept",
    drops: ["dropped_by_reason"],
    errors: [],
    seconds: "duration",
  },
};
