/**
 * The loop every sharded stage (download, embed, filter) runs over its plan: skip the shards
 * whose done marker matches, run the others (one at a time, or a window of them), write each
 * one's marker once its outputs are written, report every shard as it is over, and collect the
 * shards that failed, each with its one-line reason, without stopping the rest.
 *
 * What a shard's work needs (a model, a worker pool, a DuckDB connection) is opened only when a
 * first shard has to run, so a re-run of a finished stage loads nothing.
 */
import { errorMessage } from "../errors.js";
import type { FileInfo } from "../io/storage.js";
import type { StageProgress, StageReporter } from "./reporter.js";
import { type ShardSelection, unplannedShardError } from "./shard-selection.js";
import type { ShardState } from "./shard-state.js";

export interface LoopShard {
  name: string;
  digest: string;
}

/** One shard's outputs (for its done marker), marker counts, and the stage's own result. */
export interface WrittenShard<R> {
  outputs: FileInfo[];
  counts: Record<string, number>;
  /** Samples the shard processed and passed on, as the stage's summary counts them. */
  samples: number;
  passedOn: number;
  result: R;
}

/** Runs shards once opened; `close` releases what `open` took, after the last shard. */
export interface ShardRunner<S, R> {
  run(shard: S): Promise<WrittenShard<R>>;
  close(): Promise<void>;
}

export interface ShardLoopOptions<S extends LoopShard, R> {
  stage: string;
  shards: Iterable<S> | AsyncIterable<S>;
  /** How many shards the plan holds (for `shardsTotal` and the unplanned shards' error). */
  planned: number;
  selection: ShardSelection;
  state: ShardState;
  overwrite: boolean;
  reporter: StageReporter;
  /** The samples so far and the counters (and notes) shown next to the progress bar, read at each report. */
  progress: () => Pick<StageProgress, "samples" | "counters" | "notes">;
  open: () => Promise<ShardRunner<S, R>>;
  /** Called with each written shard's result, once its marker is written. */
  written: (result: R, shard: S) => void;
  /** Shards running at once (default 1: one after another). */
  concurrency?: number;
  /** Once aborted, no further shard starts; the running ones finish. */
  signal?: AbortSignal;
  /** How a failed shard is named in its warning (default: its name). */
  describe?: (shard: S) => string;
}

export interface FailedShard {
  shard: string;
  error: string;
}

export interface ShardLoopOutcome {
  shardsTotal: number;
  shardsWritten: number;
  shardsSkipped: number;
  /** Sorted by shard name; named shards the plan did not hold are among them. */
  failedShards: FailedShard[];
}

export async function runShardLoop<S extends LoopShard, R>(
  options: ShardLoopOptions<S, R>,
): Promise<ShardLoopOutcome> {
  const { stage, reporter, state, selection } = options;
  const shardsTotal = selection.count(options.planned);
  const failedShards: FailedShard[] = [];
  let shardsWritten = 0;
  let shardsSkipped = 0;
  let shardsDone = 0;
  const report = () => reporter.progress({ stage, shardsDone, shardsTotal, ...options.progress() });

  let runner: Promise<ShardRunner<S, R>> | undefined;
  const runShard = async (shard: S, opened: ShardRunner<S, R>) => {
    try {
      const { outputs, counts, samples, passedOn, result } = await opened.run(shard);
      await state.markDone({ shard: shard.name, inputDigest: shard.digest, outputs, counts });
      shardsWritten++;
      reporter.shardFinished?.({
        stage,
        shard: shard.name,
        outcome: "written",
        samples,
        outputs: passedOn,
        counts: { ...counts },
      });
      options.written(result, shard);
    } catch (error) {
      const message = errorMessage(error);
      failedShards.push({ shard: shard.name, error: message });
      reporter.warn(`${stage} shard ${options.describe?.(shard) ?? shard.name} failed: ${message}`);
      reporter.shardFinished?.({ stage, shard: shard.name, outcome: "failed", error: message });
    }
    shardsDone++;
    report();
  };

  // At once, so the bar's clock (and so samples/s and the ETA) starts with the run.
  report();
  const window = Math.max(1, options.concurrency ?? 1);
  const running = new Set<Promise<void>>();
  const planned = new Set<string>();
  try {
    for await (const shard of options.shards) {
      planned.add(shard.name);
      if (options.signal?.aborted === true) break;
      if (!selection.includes(shard.name)) continue;
      if (!options.overwrite && (await state.findDone(shard.name, shard.digest))) {
        shardsSkipped++;
        shardsDone++;
        reporter.shardFinished?.({ stage, shard: shard.name, outcome: "skipped" });
        report();
        continue;
      }
      runner ??= options.open();
      const opened = await runner;
      while (running.size >= window) await Promise.race(running);
      const job: Promise<void> = runShard(shard, opened).finally(() => running.delete(job));
      running.add(job);
    }
    await Promise.all(running);
  } finally {
    await Promise.allSettled(running);
    if (runner !== undefined) await (await runner.catch(() => undefined))?.close();
  }

  for (const shard of selection.missingFrom(planned)) {
    failedShards.push({ shard, error: unplannedShardError(stage, options.planned) });
  }
  failedShards.sort((a, b) => (a.shard < b.shard ? -1 : a.shard > b.shard ? 1 : 0));
  return { shardsTotal, shardsWritten, shardsSkipped, failedShards };
}
