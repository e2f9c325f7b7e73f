/**
 * The embed stage as the pipeline registry lists it (src/shard/stage-definition.ts). Its code
 * loads when a call needs it, so reading the registry (the CLI's help) loads nothing heavy.
 */
import { ConfigError } from "../../errors.js";
import { layout } from "../../io/layout.js";
import type { StageDefinition } from "../../shard/stage-definition.js";
import type { EmbedSummary } from "./embed.js";

export const embedStage: StageDefinition<"embed", EmbedSummary> = {
  name: "embed",
  reads: "images/NNNNN.tar and .parquet",
  writes: "embeddings/{img_emb,text_emb,metadata}/…_NNNNN",
  link: "each shard",
  counts: { samples: "samples", outputs: "samples embedded" },
  configSection: "embed",
  redoOption: true,
  checkConfig: (config) => {
    if (config.embed.model.trim() === "") {
      throw new ConfigError(
        "run needs a CLIP model folder: set embed.model in clipcrawl.json (clipcrawl model fetch downloads one)",
      );
    }
  },
  run: async (call) =>
    (await import("./embed.js")).embed({
      root: call.storage,
      ...(call.shards === undefined ? {} : { shards: call.shards }),
      reporter: call.reporter,
      ...(call.config?.embed === undefined ? {} : { config: call.config.embed }),
      ...(call.cwd === undefined ? {} : { cwd: call.cwd }),
    }),
  statsFiles: {
    folder: layout.embeddingsFolder(),
    inputs: "samples",
    outputs: "embedded",
    drops: ["failed_to_embed"],
    errors: ["status_dict"],
    seconds: "timings",
  },
};
