/** The filter stage as the pipeline registry lists it (src/shard/stage-definition.ts). */
import { layout } from "../../io/layout.js";
import type { StageDefinition } from "../../shard/stage-definition.js";
import { FILTER_STAGE, type FilterSummary, filter } from "./filter.js";

export const filterStage: StageDefinition<typeof FILTER_STAGE, FilterSummary> = {
  name: FILTER_STAGE,
  reads: "embeddings/metadata/metadata_NNNNN.parquet",
  writes: "dataset/NNNNN.parquet in the LAION schema",
  link: "each shard",
  counts: { samples: "pairs", outputs: "pairs kept" },
  configSection: "filter",
  run: (call) =>
    filter({
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
