/**
 * Progress of a whole pipeline run, per stage: shards done of the total, samples per second,
 * success rate, an ETA. Finished batches add their counts; batches still running add what their
 * stage last reported, so the rates move between shards too. Runners feed it; a display (the
 * CLI's bars, a status line) reads `snapshot()`.
 */

import type { Stages } from "../pipeline/pipeline.js";
import type { ShardEvent, StageProgress, StageReporter } from "../shard/reporter.js";
import type { StageCallResult } from "./stage-call.js";

export interface StageSnapshot {
  stage: string;
  /** Unknown (null) until the stage is planned. */
  shardsTotal: number | null;
  shardsDone: number;
  shardsFailed: number;
  shardsRunning: number;
  samples: number;
  successes: number;
  samplesPerSecond: number;
  /** successes / samples of the finished batches; null before the first. */
  successRate: number | null;
  etaSeconds: number | null;
  seconds: number;
}

export interface PipelineObserver {
  /** Called whenever a stage's numbers change. */
  update(snapshot: readonly StageSnapshot[]): void;
  /** One line: a bad input, a failed shard. */
  warn(line: string): void;
}

export const silentObserver: PipelineObserver = { update: () => {}, warn: () => {} };

interface RunningBatch {
  shards: number;
  /** Shards of the batch that run at once. */
  parallel: number;
  finished: Set<string>;
  /** The stage's own running sample count for this call, and the part of it shard events credited. */
  reported: number;
  credited: number;
}

interface StageTally {
  total: number | null;
  done: number;
  failed: number;
  samples: number;
  successes: number;
  batches: Map<number, RunningBatch>;
  firstStart: number | null;
  lastEnd: number | null;
}

export class PipelineProgress {
  private readonly tallies = new Map<string, StageTally>();
  private nextBatch = 0;

  constructor(
    stages: Stages,
    private readonly observer: PipelineObserver = silentObserver,
  ) {
    for (const { name } of stages) {
      this.tallies.set(name, {
        total: null,
        done: 0,
        failed: 0,
        samples: 0,
        successes: 0,
        batches: new Map(),
        firstStart: null,
        lastEnd: null,
      });
    }
  }

  setTotal(stage: string, total: number): void {
    this.tally(stage).total = total;
    this.changed();
  }

  /**
   * A call of a stage function starts on `shards` shards, `parallel` of them at once: the reporter
   * to hand it (its shard events count shards as they finish), and the id to finish it with.
   */
  startBatch(
    stage: string,
    warn: (line: string) => void,
    shards = 1,
    parallel = 1,
  ): { id: number; reporter: StageReporter } {
    const id = this.nextBatch++;
    const tally = this.tally(stage);
    tally.firstStart ??= performance.now();
    const batch: RunningBatch = { shards, parallel, finished: new Set(), reported: 0, credited: 0 };
    tally.batches.set(id, batch);
    this.changed();
    const reporter: StageReporter = {
      warn,
      progress: (update: StageProgress) => {
        batch.reported = update.samples ?? 0;
        this.changed();
      },
      shardFinished: (event: ShardEvent) => {
        if (batch.finished.has(event.shard)) return;
        batch.finished.add(event.shard);
        if (event.outcome === "failed") tally.failed++;
        else tally.done++;
        const counted = event.samples ?? 0;
        tally.samples += counted;
        tally.successes += event.outputs ?? 0;
        batch.credited += counted;
        tally.lastEnd = performance.now();
        this.changed();
      },
    };
    return { id, reporter };
  }

  /** The call is over: its shards that sent no event count by the call's result. */
  finishBatch(id: number, result: StageCallResult): void {
    const tally = this.tally(result.stage);
    const batch = tally.batches.get(id);
    tally.batches.delete(id);
    tally.lastEnd = performance.now();
    for (const outcome of result.outcomes) {
      if (batch?.finished.has(outcome.shard)) continue;
      if (outcome.ok) tally.done++;
      else tally.failed++;
    }
    if (batch === undefined || batch.finished.size === 0) {
      tally.samples += result.samples;
      tally.successes += result.outputs;
    }
    this.changed();
  }

  snapshot(): StageSnapshot[] {
    const now = performance.now();
    return [...this.tallies].map(([stage, tally]) => {
      let running = 0;
      let inFlight = 0;
      for (const batch of tally.batches.values()) {
        running += Math.min(batch.parallel, batch.shards - batch.finished.size);
        inFlight += Math.max(0, batch.reported - batch.credited);
      }
      const samples = tally.samples + inFlight;
      const end = tally.batches.size > 0 ? now : (tally.lastEnd ?? now);
      const seconds = tally.firstStart === null ? 0 : (end - tally.firstStart) / 1000;
      const finished = tally.done + tally.failed;
      const remaining = tally.total === null ? null : Math.max(0, tally.total - finished);
      return {
        stage,
        shardsTotal: tally.total,
        shardsDone: tally.done,
        shardsFailed: tally.failed,
        shardsRunning: running,
        samples,
        successes: tally.successes,
        samplesPerSecond: seconds > 0 ? samples / seconds : 0,
        successRate: tally.samples > 0 ? tally.successes / tally.samples : null,
        etaSeconds:
          remaining === null || finished === 0 || seconds === 0
            ? null
            : (remaining * seconds) / finished,
        seconds,
      };
    });
  }

  private tally(stage: string): StageTally {
    return this.tallies.get(stage) as StageTally;
  }

  private changed(): void {
    this.observer.update(this.snapshot());
  }
}
