/**
 * `clipcrawl status`: what is done, running and failed in a dataset root, and why.
 *
 * Done comes from the done markers (the truth: a marker is written after its outputs); running
 * and failed come from the run state file of the last `clipcrawl run` (local), and, for a
 * distributed run, from the job queue, where every failed job keeps its reason.
 */
import type { LocalStorage } from "../io/local-storage.js";
import { openRoot } from "../io/open-root.js";
import { PIPELINE_STAGES, type PipelineStage, WHOLE_DATASET } from "../pipeline/pipeline-stages.js";
import { ShardState } from "../shard/shard-state.js";
import { type RunState, readRunState, runIsAlive } from "./run-state.js";

export interface StageStatus {
  stage: PipelineStage;
  /** Shards the last run planned; null when it never got there. */
  shards: number | null;
  /** Shards with a done marker. */
  done: number;
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

export async function runStatus(root: string | LocalStorage): Promise<RunStatusReport> {
  const storage = openRoot(root);
  const state = await readRunState(storage);
  const alive = state !== undefined && runIsAlive(state);
  const stages: StageStatus[] = [];
  for (const stage of PIPELINE_STAGES) {
    const markers = await new ShardState(storage, stage).list();
    const done = new Set(markers.map((marker) => marker.shard));
    const planned = stage === "extract" ? state?.inputs.length : state?.shards[stage];
    stages.push({
      stage,
      shards: planned ?? null,
      done: done.size,
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
    lines.push(
      `  ${stage.stage.padEnd(8)} ${done}${running}${stage.failed.length > 0 ? `, ${stage.failed.length} failed` : ""}`,
    );
    for (const failed of stage.failed) lines.push(`      ${failed.shard}: ${failed.error}`);
  }
  return `${lines.join("\n")}\n`;
}
