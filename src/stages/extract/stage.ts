/**
 * The extract stage as the pipeline registry lists it (src/shard/stage-definition.ts). Its code
 * loads when a call needs it, so reading the registry (the CLI's help) loads nothing heavy.
 */

import { loadConfig } from "../../config/config-file.js";
import { layout } from "../../io/layout.js";
import type { StageDefinition } from "../../shard/stage-definition.js";
import type { ExtractShardPlan, ExtractSummary } from "./extract.js";

export const extractStage: StageDefinition<"extract", ExtractSummary> = {
  name: "extract",
  reads: "WAT files (the run's inputs)",
  writes: "candidates/NNNNN.parquet, one shard per input",
  link: "all shards",
  counts: { samples: "image links", outputs: "pairs kept" },
  configSection: "extract",
  expandInputs: async (specs, config) => {
    const { resolveWatInputs } = await import("./wat-inputs.js");
    const resolved = await resolveWatInputs(specs.inputs ?? [], {
      crawl: specs.crawl,
      baseUrl: config.extract.baseUrl,
      allowPrivateNetwork: config.extract.allowPrivateNetwork,
      retries: config.extract.retries,
      limit: specs.limit,
      cwd: specs.cwd,
    });
    return {
      inputs: resolved.inputs.map((input) => (input.kind === "file" ? input.path : input.url)),
      errors: resolved.errors.map((error) => error.message),
    };
  },
  plan: async ({ storage, inputs, config: overrides, cwd }) => {
    const { resolveWatInputs, rootInputs } = await import("./wat-inputs.js");
    const { planExtractShards } = await import("./extract.js");
    const config = (await loadConfig(storage, { extract: overrides?.extract ?? {} })).extract;
    // The run's inputs are expanded already: each is one file or URL, one shard.
    const resolved = await resolveWatInputs(inputs ?? [], {
      baseUrl: config.baseUrl,
      allowPrivateNetwork: config.allowPrivateNetwork,
      ...(cwd === undefined ? {} : { cwd }),
    });
    const [unexpected] = resolved.errors;
    if (unexpected !== undefined) throw unexpected;
    return (await planExtractShards(await rootInputs(storage, resolved.inputs), config)).map(
      (plan) => ({
        shard: plan.name,
        plan,
      }),
    );
  },
  reportDetails: (summary) => ({
    dedupState: summary.dedupState,
    bloomFilter: summary.bloomFilter,
  }),
  // The dedup filter saved in the root seeds a distributed run's shared one, and is saved back;
  // without turns, the finished shards replay before any new one runs.
  aroundSharedRun: {
    before: async (run) => {
      const state = await import("./pair-filter-state.js");
      await state.restoreSharedPairFilter(run);
      await state.replayFinishedShards(run);
    },
    after: async (run) => (await import("./pair-filter-state.js")).saveSharedPairFilter(run),
  },
  run: async (call) =>
    (await import("./extract.js")).extract({
      root: call.storage,
      inputs: call.inputs ?? [],
      ...(call.shards === undefined ? {} : { shards: call.shards }),
      ...(call.shardPlans === undefined
        ? {}
        : { shardPlans: call.shardPlans as ExtractShardPlan[] }),
      ...(call.sharedPairFilter === undefined ? {} : { sharedPairFilter: call.sharedPairFilter }),
      config: {
        ...call.config?.extract,
        ...(call.parallel === undefined ? {} : { workers: call.parallel }),
      },
      reporter: call.reporter,
      ...(call.cwd === undefined ? {} : { cwd: call.cwd }),
    }),
  statsFiles: {
    folder: layout.candidatesFolder(),
    inputs: "imageLinks",
    outputs: "kept",
    drops: ["dropped", "badRecords"],
    errors: [],
    seconds: "seconds",
  },
};
