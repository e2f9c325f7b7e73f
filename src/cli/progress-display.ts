/**
 * The terminal view of a pipeline run: one bar per stage (shards done/total, samples/s, success
 * rate, ETA) on an interactive stderr, redrawn a few times a second; warnings as lines above the
 * bars. Off a terminal it prints only the warnings, so logs and pipes stay readable.
 */
import cliProgress from "cli-progress";
import type { PipelineObserver, StageSnapshot } from "../runner/pipeline-progress.js";
import { formatCount } from "./terminal-reporter.js";

export interface ProgressDisplay extends PipelineObserver {
  stop(): void;
}

export function progressDisplay(options: { quiet?: boolean } = {}): ProgressDisplay {
  const interactive = process.stderr.isTTY === true && options.quiet !== true;
  let bars: cliProgress.MultiBar | undefined;
  const stageBars = new Map<string, cliProgress.SingleBar>();
  let latest: readonly StageSnapshot[] = [];
  let lastDraw = 0;

  const draw = () => {
    if (!interactive) return;
    bars ??= new cliProgress.MultiBar(
      {
        format: "{stage} [{bar}] {value}/{total} shards{details}",
        hideCursor: true,
        clearOnComplete: false,
        stream: process.stderr,
        barsize: 24,
      },
      cliProgress.Presets.shades_classic,
    );
    for (const stage of latest) {
      if (stage.shardsTotal === null && stage.shardsRunning === 0) continue;
      const total = stage.shardsTotal ?? 0;
      const payload = { stage: stage.stage.padEnd(8), details: describeStage(stage) };
      const bar = stageBars.get(stage.stage);
      if (bar === undefined) {
        stageBars.set(stage.stage, bars.create(total, stage.shardsDone, payload));
      } else {
        bar.setTotal(total);
        bar.update(stage.shardsDone, payload);
      }
    }
  };

  return {
    update(snapshot) {
      latest = snapshot;
      const now = performance.now();
      if (now - lastDraw < 250) return;
      lastDraw = now;
      draw();
    },
    warn(line) {
      if (bars !== undefined) bars.log(`${line}\n`);
      else process.stderr.write(`${line}\n`);
    },
    stop() {
      draw();
      bars?.stop();
      bars = undefined;
    },
  };
}

/** "· 1.2k samples/s · 93.1% ok · 2 failed · ETA 4m10s" */
export function describeStage(stage: StageSnapshot): string {
  const parts: string[] = [];
  if (stage.shardsRunning > 0) parts.push(`${stage.shardsRunning} running`);
  if (stage.samples > 0) {
    parts.push(`${formatCount(stage.samples)} samples (${formatCount(stage.samplesPerSecond)}/s)`);
  }
  if (stage.successRate !== null) parts.push(`${(100 * stage.successRate).toFixed(1)}% ok`);
  if (stage.shardsFailed > 0) parts.push(`${stage.shardsFailed} failed`);
  if (stage.etaSeconds !== null && stage.shardsDone < (stage.shardsTotal ?? 0)) {
    parts.push(`ETA ${formatDuration(stage.etaSeconds)}`);
  }
  return parts.length === 0 ? "" : ` · ${parts.join(" · ")}`;
}

export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${Math.round(seconds)}s`;
  if (seconds < 3600)
    return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, "0")}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.floor((seconds % 3600) / 60)).padStart(2, "0")}m`;
}
