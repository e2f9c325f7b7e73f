import { type Command, Option } from "commander";
import { PIPELINE } from "../../pipeline/pipeline.js";
import type { DistributedRunSummary } from "../../runner/distributed/coordinator.js";
import type { RunSummary } from "../../runner/local-runner.js";
import { type ConfigSections, DEDUP_MODES, type DedupMode } from "../../shard/stage-definition.js";
import { formatDuration, type ProgressDisplay, progressDisplay } from "../progress-display.js";
import { formatCount } from "../terminal-reporter.js";
import { type QueueFlags, queueOptionsFromFlags } from "./worker.js";

interface RunFlags extends QueueFlags {
  root: string;
  crawl?: string;
  limit?: string;
  workers?: string;
  attempts?: string;
  allowPrivateNetwork?: boolean;
  dedupRedis?: string;
  dedupMode?: string;
  json?: boolean;
}

export function registerRun(program: Command): void {
  const command = program
    .command("run")
    .description(
      "every stage (extract → download → embed → filter → index), resumable: on this machine, or over a Redis job queue with --queue",
    )
    .argument(
      "[inputs...]",
      "WAT files, globs, http(s) or s3:// URLs, or listings; default: the previous run's",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--crawl <id>", "a Common Crawl id, e.g. CC-MAIN-2024-10: reads its wat.paths.gz")
    .option("--limit <n>", "only the first n WAT files")
    .option("--workers <n>", "download shards at once on this machine (default: download.workers)")
    .option("--queue <url>", "distribute the shards as jobs on this Redis (redis://host:6379)")
    .option("--prefix <name>", "key prefix of the queues in Redis", "clipcrawl")
    .option("--attempts <n>", "tries of a job before it fails (with --queue)", "3")
    .option(
      "--dedup-redis <a,b,…>",
      "with --queue: split extract's dedup filter over these Redis instances by pair hash (default: extract.dedupRedis, else the queue's Redis)",
    )
    .addOption(
      new Option(
        "--dedup-mode <mode>",
        "with --queue: deterministic (shards take turns in input order, the output equals a local run's) or parallel (no turns; which copy of a duplicate survives depends on timing) (default: extract.dedupMode, else deterministic)",
      ).choices(DEDUP_MODES),
    )
    .option(
      "--allow-private-network",
      "let WAT, path-listing and image URLs reach private, loopback, link-local and other special-use addresses (a local mirror); default: extract.allowPrivateNetwork and download.allowPrivateNetwork",
    )
    .option("--json", "print the summary as JSON");
  command.addHelpText(
    "after",
    "\nThe root's clipcrawl.json configures every stage (embed.model must name a CLIP model).\n" +
      "Ctrl-C stops starting shards and waits for the running ones; a second Ctrl-C stops at once.\n" +
      "A re-run (after Ctrl-C, a crash or kill -9) redoes only unfinished shards.\n" +
      "\nExamples:\n  clipcrawl run 'crawl/*.warc.wat.gz' --root ./data\n" +
      "  clipcrawl run --root ./data                          # resume the last run\n" +
      "  clipcrawl run crawl/ --root /shared/data --queue redis://queue-host:6379\n" +
      "  clipcrawl worker --queue redis://queue-host:6379     # on every machine\n" +
      "  clipcrawl run crawl/ --root /shared/data --queue redis://queue-host:6379 \\\n" +
      "      --dedup-redis redis://dedup-a:6379,redis://dedup-b:6379 --dedup-mode parallel",
  );
  command.action(async (inputs: string[], flags: RunFlags) => {
    const limit = positiveInteger(command, "--limit", flags.limit);
    const workers = positiveInteger(command, "--workers", flags.workers);
    const attempts = positiveInteger(command, "--attempts", flags.attempts);
    const display = progressDisplay({ quiet: flags.json === true });
    const stop = stopOnInterrupt(display);
    if (flags.queue === undefined && (flags.dedupRedis ?? flags.dedupMode) !== undefined) {
      command.error(
        "error: --dedup-redis and --dedup-mode go with --queue (a local run dedups in memory)",
      );
    }
    try {
      if (flags.queue !== undefined) {
        // BullMQ loads only for distributed runs.
        const { runDistributed } = await import("../../runner/distributed/coordinator.js");
        const summary = await runDistributed({
          root: flags.root,
          inputs,
          crawl: flags.crawl,
          limit,
          ...runConfig(flags),
          queue: queueOptionsFromFlags(flags),
          attempts: attempts ?? 3,
          observer: display,
          signal: stop.signal,
        });
        display.stop();
        print(flags.json, summary, describeDistributedSummary);
        if (!summary.ok) process.exitCode = 1;
      } else {
        const { runPipeline } = await import("../../runner/local-runner.js");
        const summary = await runPipeline({
          root: flags.root,
          inputs,
          crawl: flags.crawl,
          limit,
          ...runConfig(flags),
          ...(workers === undefined ? {} : { workers }),
          observer: display,
          signal: stop.signal,
        });
        display.stop();
        print(flags.json, summary, describeRunSummary);
        if (summary.interrupted) process.exitCode = 130;
        else if (!summary.ok) process.exitCode = 1;
      }
    } finally {
      display.stop();
      stop.dispose();
    }
  });
}

function print<T>(json: boolean | undefined, summary: T, describe: (summary: T) => string): void {
  process.stdout.write(json === true ? `${JSON.stringify(summary, null, 2)}\n` : describe(summary));
}

/** First Ctrl-C (or SIGTERM): stop starting work; the second: leave now (a re-run resumes). */
function stopOnInterrupt(display: ProgressDisplay): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = () => {
    if (controller.signal.aborted) {
      display.stop();
      process.stderr.write("clipcrawl: stopped; `clipcrawl run` again resumes\n");
      process.exit(130);
    }
    display.warn(
      "clipcrawl: stopping: no new shards start, running ones finish (Ctrl-C again to stop now)",
    );
    controller.abort();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

function positiveInteger(command: Command, flag: string, value: string | undefined) {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!(Number.isInteger(number) && number > 0)) {
    command.error(`error: ${flag} takes a positive whole number, got ${JSON.stringify(value)}`);
  }
  return number;
}

/**
 * The run's overrides of clipcrawl.json: `--allow-private-network` for the stages that fetch,
 * and where extract's dedup filter lives.
 */
function runConfig(flags: RunFlags): { config?: ConfigSections } {
  const extract: ConfigSections["extract"] = {
    ...(flags.allowPrivateNetwork === true ? { allowPrivateNetwork: true } : {}),
    ...(flags.dedupRedis === undefined
      ? {}
      : {
          dedupRedis: flags.dedupRedis
            .split(",")
            .map((url) => url.trim())
            .filter((url) => url !== ""),
        }),
    ...(flags.dedupMode === undefined ? {} : { dedupMode: flags.dedupMode as DedupMode }),
  };
  const config: ConfigSections = {
    ...(Object.keys(extract).length === 0 ? {} : { extract }),
    ...(flags.allowPrivateNetwork === true ? { download: { allowPrivateNetwork: true } } : {}),
  };
  return Object.keys(config).length === 0 ? {} : { config };
}

export function describeRunSummary(summary: RunSummary): string {
  const verdict = summary.interrupted
    ? "interrupted (run again to resume)"
    : summary.ok
      ? "complete"
      : "finished with failures (run again to retry them)";
  const lines = [`run: ${verdict} in ${formatDuration(summary.seconds)}, root ${summary.root}`];
  for (const { name, counts } of PIPELINE) {
    const totals = summary.stages[name];
    if (totals.shards === null && totals.done === 0 && totals.failed === 0) continue;
    const rate = totals.seconds > 0 ? totals.samples / totals.seconds : 0;
    const ok =
      totals.samples > 0 && counts.outputs !== counts.samples
        ? `, ${formatCount(totals.successes)} ${counts.outputs} (${((100 * totals.successes) / totals.samples).toFixed(1)}%)`
        : "";
    const samples =
      totals.samples > 0
        ? `, ${formatCount(totals.samples)} ${counts.samples}, ${formatCount(rate)}/s${ok}`
        : "";
    lines.push(
      `  ${name.padEnd(8)} ${totals.done}/${totals.shards ?? "?"} shards${totals.failed > 0 ? ` (${totals.failed} failed)` : ""}${samples}`,
    );
  }
  for (const failed of summary.failed) {
    lines.push(`  ${failed.stage} ${failed.shard} failed: ${failed.error}`);
  }
  if (summary.logPath !== null) lines.push(`  log: ${summary.logPath}`);
  return `${lines.join("\n")}\n`;
}

export function describeDistributedSummary(summary: DistributedRunSummary): string {
  const verdict = summary.interrupted
    ? "coordinator stopped (jobs stay queued; run again to watch and finish)"
    : summary.ok
      ? "complete"
      : "finished with failed jobs (run again to retry them)";
  const lines = [
    `run on ${summary.queue}: ${verdict} in ${formatDuration(summary.seconds)}, root ${summary.root}`,
  ];
  for (const { name } of PIPELINE) {
    const totals = summary.stages[name];
    if (totals.jobs === 0) continue;
    lines.push(
      `  ${name.padEnd(8)} ${totals.completed}/${totals.jobs} jobs completed${totals.failed > 0 ? `, ${totals.failed} failed` : ""}`,
    );
  }
  for (const failed of summary.failed) {
    lines.push(`  ${failed.stage} ${failed.shard} failed: ${failed.error}`);
  }
  return `${lines.join("\n")}\n`;
}
