/**
 * One call of a stage over some of its shards, as every runner makes it: always through the
 * stage's own function (its registry declaration's `run`), so a shard's output is the same
 * whichever runner ran it and wherever; then the call's outcome for each shard it was given.
 */
import { errorMessage } from "../errors.js";
import type { AnyStageDefinition, StageCall, StageSummary } from "../shard/stage-definition.js";

export interface ShardOutcome {
  shard: string;
  ok: boolean;
  error?: string;
}

/** What one call of a stage did to the shards it was given. */
export interface StageCallResult {
  stage: string;
  outcomes: ShardOutcome[];
  /** Shards that were already done (their marker matched). */
  skipped: number;
  /** Samples the call processed, and how many it passed on (the stage's `counts`). */
  samples: number;
  outputs: number;
  seconds: number;
}

/** Runs `stage` on `call.shards`. Per-shard failures are outcomes; a throw fails them all. */
export async function callStage(
  stage: AnyStageDefinition,
  call: StageCall & { shards: readonly string[] },
): Promise<StageCallResult> {
  const started = performance.now();
  let summary: StageSummary;
  try {
    summary = await stage.run(call);
  } catch (error) {
    const message = errorMessage(error);
    return {
      stage: stage.name,
      outcomes: call.shards.map((shard) => ({ shard, ok: false, error: message })),
      skipped: 0,
      samples: 0,
      outputs: 0,
      seconds: (performance.now() - started) / 1000,
    };
  }
  return {
    stage: stage.name,
    outcomes: shardOutcomes(call.shards, summary),
    skipped: summary.shardsSkipped,
    samples: summary.samples,
    outputs: summary.outputs,
    seconds: (performance.now() - started) / 1000,
  };
}

/**
 * Each given shard's outcome from the summary. A stage that runs as one shard over the whole
 * dataset (index) names its own inner shards when they fail: a summary that is not ok and names
 * none of the given shards fails them all, with its errors.
 */
export function shardOutcomes(shards: readonly string[], summary: StageSummary): ShardOutcome[] {
  const errors = new Map(summary.failedShards.map((item) => [item.shard, item.error]));
  const named = shards.some((shard) => errors.has(shard));
  const overall =
    summary.ok || named
      ? undefined
      : summary.failedShards.map((item) => `${item.shard}: ${item.error}`).join("; ") || "failed";
  return shards.map((shard) => {
    const error = errors.get(shard) ?? overall;
    return error === undefined ? { shard, ok: true } : { shard, ok: false, error };
  });
}
