/**
 * `clipcrawl status`: what is done, running and failed in a dataset root, and why.
 *
 * Done comes from the done markers (the truth: a marker is written after its outputs), checked
 * against the outputs they name: a shard whose output no longer matches its marker (missing,
 * another size, another checksum) is damaged, with the command that redoes it; running
 * and failed come from the run state file of the last `clipcrawl run` (local), and, for a
 * distributed run, from the job queue, where every failed job keeps its reason.
 */

import { openRoot } from "../io/open-root.js";
import type { DatasetStorage } from "../io/storage.js";
import { PIPELINE, type Stages } from "../pipeline/pipeline.js";
import { ShardState } from "../shard/shard-state.js";
import { WHOLE_DATASET } from "../shard/stage-definition.js";
import { type RunState, readRunState, runIsAlive } from "./run-state.js";

export interface StageStatus {
  stage: string;
  /** Shards the last run planned; null when it never got there. */
  shards: number | null;
  /** Shards with a done marker whose outputs still match it. */
  done: number;
  /** Shards with a done marker whose outputs no longer match it, and why (one line each). */
  damaged: { shard: string; reason: string }[];
  running: string[];
  failed: { shard: string; error: string }[];
}

export interface RunStatusReport {
  root: string;
  /** The last run, if any; `status` is "interrupted" for a run whose process is gone. */
  run:
    | (Pick<RunState, "mode" | "host" | "pid" | "startedAt" | "updatedAt" | "finishedAt"> & {
        status: RunState["status"];
        queue: RunState["queue"];
      })
    | null;
  stages: StageStatus[];
}

export async function runStatus(
  root: string | DatasetStorage,
  pipeline: Stages = PIPELINE,
): Promise<RunStatusReport> {
  const storage = openRoot(root);
  const state = await readRunState(storage);
  const alive = state !== undefined && runIsAlive(state);
  const stages: StageStatus[] = [];
  for (const [index, { name: stage }] of pipeline.entries()) {
    const shardState = new ShardState(storage, stage);
    const markers = await shardState.list();
    const done = new Set(markers.map((marker) => marker.shard));
    const damaged: StageStatus["damaged"] = [];
    for (const marker of markers) {
      const reasons = await shardState.damagedOutputs(marker);
      if (reasons.length > 0) damaged.push({ shard: marker.shard, reason: reasons.join("; ") });
    }
    // The first stage's shards are the run's inputs, known before it plans anything.
    const planned = state?.shards[stage] ?? (index === 0 ? state?.inputs.length : undefined);
    stages.push({
      stage,
      shards: planned ?? null,
      done: done.size - damaged.length,
      damaged,
      running:
        alive && state !== undefined
          ? state.running.filter((item) => item.stage === stage).map((item) => item.shard)
          : [],
      failed: (state?.failed ?? [])
        .filter((item) => item.stage === stage && !done.has(item.shard))
        .map(({ shard, error }) => ({ shard, error })),
    });
  }
  return {
    root: storage.root,
    run:
      state === undefined
        ? null
        : {
            mode: state.mode,
            status: state.status === "running" && !alive ? "interrupted" : state.status,
            host: state.host,
            pid: state.pid,
            startedAt: state.startedAt,
            updatedAt: state.updatedAt,
            finishedAt: state.finishedAt,
            queue: state.queue,
          },
    stages,
  };
}

/** The command that redoes damaged shards (a plain re-run does too: their markers no longer match). */
function redoCommand(stage: string, root: string, damaged: readonly { shard: string }[]): string {
  const shards = damaged.map((item) => item.shard).join(",");
  return PIPELINE.find((item) => item.name === stage)?.redoOption === true
    ? `clipcrawl ${stage} --root ${root} --redo ${shards}`
    : `clipcrawl run --root ${root}`;
}

export function describeStatus(report: RunStatusReport): string {
  const lines = [`dataset root ${report.root}`];
  const { run } = report;
  if (run === null) {
    lines.push("  no clipcrawl run recorded here (stages run one by one show as done below)");
  } else {
    const where = run.mode === "distributed" && run.queue !== null ? ` on ${run.queue.url}` : "";
    const ended =
      run.finishedAt === null ? `last update ${run.updatedAt}` : `ended ${run.finishedAt}`;
    lines.push(
      `  last run: ${run.mode}${where}, ${run.status} (started ${run.startedAt}, ${ended}, pid ${run.pid} on ${run.host})`,
    );
    if (run.status === "interrupted") {
      lines.push(
        "  it stopped before the end: `clipcrawl run` again redoes only unfinished shards",
      );
    }
  }
  for (const stage of report.stages) {
    const total = stage.shards === null ? "?" : String(stage.shards);
    const done = `${stage.done}/${total} done`;
    const running =
      stage.running.length === 0
        ? ""
        : `, running ${stage.running.filter((shard) => shard !== WHOLE_DATASET).join(" ") || "now"}`;
    const damaged = stage.damaged.length > 0 ? `, ${stage.damaged.length} damaged` : "";
    lines.push(
      `  ${stage.stage.padEnd(8)} ${done}${running}${stage.failed.length > 0 ? `, ${stage.failed.length} failed` : ""}${damaged}`,
    );
    for (const failed of stage.failed) lines.push(`      ${failed.shard}: ${failed.error}`);
    for (const shard of stage.damaged) {
      lines.push(`      ${shard.shard}: ${shard.reason}`);
    }
    if (stage.damaged.length > 0) {
      lines.push(`      redo: ${redoCommand(stage.stage, report.root, stage.damaged)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}
