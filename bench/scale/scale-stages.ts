/**
 * Two tiny stages for the coordinator's scale bench (`npm run bench -- scale`): real shard
 * jobs that do everything a stage's job does around its work (plan entry, done marker through
 * the shard kit, outputs written atomically, the next stage's job) on inputs of a few bytes, so
 * what is timed is the runner's cost per job, not a stage's.
 *
 * - `scale-a`, the first stage: input file NNNNN → `scale-a/NNNNN.txt`, one shard per input;
 * - `scale-b`, shard by shard after it: `scale-a/NNNNN.txt` → `scale-b/NNNNN.txt`.
 */

import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { shardName } from "../../src/io/layout.js";
import type { DatasetStorage } from "../../src/io/storage.js";
import type { Stages } from "../../src/pipeline/pipeline.js";
import { runShardLoop } from "../../src/shard/shard-loop.js";
import { ShardSelection } from "../../src/shard/shard-selection.js";
import { digestOf, ShardState } from "../../src/shard/shard-state.js";
import type { StageCall, StageDefinition, StageSummary } from "../../src/shard/stage-definition.js";

interface ScaleShard {
  name: string;
  digest: string;
  /** Where its one input is: a file path (scale-a) or a path in the root (scale-b). */
  input: string;
}

/** A's plan entry: the shard's input file. */
interface ScalePlan {
  name: string;
  input: string;
}

async function copyShards(
  stage: string,
  call: StageCall,
  shards: readonly ScaleShard[],
  read: (storage: DatasetStorage, input: string) => Promise<string>,
): Promise<StageSummary> {
  const started = performance.now();
  let copied = 0;
  const loop = await runShardLoop({
    stage,
    shards,
    planned: shards.length,
    selection: ShardSelection.of(call.shards),
    state: new ShardState(call.storage, stage),
    overwrite: false,
    reporter: call.reporter,
    progress: () => ({ samples: copied, counters: { shards: copied } }),
    open: async () => ({
      run: async (shard) => {
        const text = await read(call.storage, shard.input);
        const path = `${stage}/${shard.name}.txt`;
        await call.storage.writeAtomic(path, text);
        return {
          outputs: [{ path, bytes: Buffer.byteLength(text) }],
          counts: { samples: 1 },
          samples: 1,
          passedOn: 1,
          result: 1,
        };
      },
      close: async () => {},
    }),
    written: () => {
      copied++;
    },
  });
  return {
    ok: loop.failedShards.length === 0,
    shards: loop.shardsTotal,
    shardsWritten: loop.shardsWritten,
    shardsSkipped: loop.shardsSkipped,
    failedShards: loop.failedShards,
    samples: copied,
    outputs: copied,
    seconds: (performance.now() - started) / 1000,
  };
}

const scaleA: StageDefinition<"scale-a", StageSummary> = {
  name: "scale-a",
  reads: "the run's input files",
  writes: "scale-a/NNNNN.txt",
  link: "all shards",
  counts: { samples: "shards", outputs: "shards" },
  expandInputs: async (specs) => ({ inputs: [...(specs.inputs ?? [])], errors: [] }),
  plan: async ({ inputs }) =>
    (inputs ?? []).map((input, index) => ({
      shard: shardName(index),
      plan: { name: shardName(index), input } satisfies ScalePlan,
    })),
  run: (call) => {
    const plans =
      (call.shardPlans as ScalePlan[] | undefined) ??
      (call.inputs ?? []).map((input, index) => ({ name: shardName(index), input }));
    const shards = plans.map((plan) => ({
      ...plan,
      digest: digestOf({ input: basename(plan.input) }),
    }));
    return copyShards("scale-a", call, shards, (_, input) => readFile(input, "utf8"));
  },
};

const scaleB: StageDefinition<"scale-b", StageSummary> = {
  name: "scale-b",
  reads: "scale-a/NNNNN.txt",
  writes: "scale-b/NNNNN.txt",
  link: "each shard",
  counts: { samples: "shards", outputs: "shards" },
  run: (call) => {
    const shards = (call.shards ?? []).map((name) => ({
      name,
      input: `scale-a/${name}.txt`,
      digest: digestOf({ from: name }),
    }));
    return copyShards("scale-b", call, shards, (storage, input) => storage.readText(input));
  },
};

export const SCALE_PIPELINE: Stages = [scaleA, scaleB];
