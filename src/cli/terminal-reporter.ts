/**
 * The CLI's StageReporter: a progress bar on an interactive terminal (stderr), plain warning
 * lines otherwise, so logs and pipes stay readable.
 */
import { createRequire } from "node:module";
import type cliProgress from "cli-progress";
import type { StageProgress, StageReporter } from "../shard/reporter.js";

/** cli-progress and its dependencies load only for a bar, on a terminal (a few tens of ms). */
const loadBars = () => createRequire(import.meta.url)("cli-progress") as typeof cliProgress;

export interface TerminalReporter extends StageReporter {
  stop(): void;
}

export function terminalReporter(options: { quiet?: boolean } = {}): TerminalReporter {
  const interactive = process.stderr.isTTY === true && options.quiet !== true;
  let bar: cliProgress.SingleBar | undefined;
  // Rates count from a stage's first update (stages report 0 shards done when they start).
  let started = performance.now();
  let currentStage = "";

  const render = (update: StageProgress) => {
    const seconds = Math.max(0.001, (performance.now() - started) / 1000);
    const rates = [
      ...Object.entries(update.counters).map(
        ([name, value]) => `${formatCount(value)} ${name} (${formatCount(value / seconds)}/s)`,
      ),
      ...Object.entries(update.notes ?? {}).map(([name, value]) => `${name} ${value}`),
    ].join(" · ");
    return { stage: update.stage, rates };
  };

  return {
    warn(line) {
      if (bar !== undefined) bar.stop();
      process.stderr.write(`${line}\n`);
      if (bar !== undefined) {
        const last = bar as unknown as { value: number; total: number };
        bar.start(last.total, last.value);
      }
    },
    progress(update) {
      if (!interactive) return;
      if (update.stage !== currentStage) {
        currentStage = update.stage;
        started = performance.now();
      }
      if (bar === undefined) {
        const bars = loadBars();
        bar = new bars.SingleBar(
          {
            format: "{stage} [{bar}] {value}/{total} shards · {rates} · ETA {eta_formatted}",
            hideCursor: true,
            clearOnComplete: false,
            stream: process.stderr,
          },
          bars.Presets.shades_classic,
        );
        bar.start(update.shardsTotal, 0, render(update));
      }
      bar.setTotal(update.shardsTotal);
      bar.update(update.shardsDone, render(update));
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

export function formatCount(value: number): string {
  if (value >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e4) return `${(value / 1e3).toFixed(1)}k`;
  return value >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
}
