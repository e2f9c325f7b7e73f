import type { Command } from "commander";
import { STAGE_NAMES } from "../../pipeline/pipeline.js";
import type { QueueOptions } from "../../runner/distributed/queue-names.js";

export interface QueueFlags {
  queue?: string;
  prefix: string;
}

interface WorkerFlags extends QueueFlags {
  queue: string;
  stages?: string;
  concurrency: string;
  lockSeconds: string;
  log?: string;
  name?: string;
}

export function queueOptionsFromFlags(flags: QueueFlags): QueueOptions {
  return { url: flags.queue ?? "redis://127.0.0.1:6379", prefix: flags.prefix };
}

export function registerWorker(program: Command): void {
  const command = program
    .command("worker")
    .description(
      "take shard jobs of distributed runs from a Redis queue and run them (any number of workers, on any machines that see the dataset roots)",
    )
    .requiredOption("--queue <url>", "the Redis of the queue (redis://host:6379)")
    .option("--prefix <name>", "key prefix of the queues in Redis", "clipcrawl")
    .option(
      "--stages <list>",
      `stages to take jobs of, comma-separated (default: all: ${STAGE_NAMES.join(",")})`,
    )
    .option("--concurrency <n>", "jobs of each stage at once", "1")
    .option(
      "--lock-seconds <s>",
      "a job's lock lifetime: a killed worker's job is retried elsewhere after about this long",
      "30",
    )
    .option("--log <file>", "append JSON logs to this file (default: stderr)")
    .option("--name <name>", "this worker's name in status and the dashboard (default: host:pid)");
  command.addHelpText(
    "after",
    "\nCtrl-C (or SIGTERM) stops taking jobs and waits for the running ones; a second one stops at once\n" +
      "(its jobs are retried by other workers once their locks run out).\n" +
      "\nExamples:\n  clipcrawl worker --queue redis://queue-host:6379\n" +
      "  clipcrawl worker --queue redis://queue-host:6379 --stages download --concurrency 4\n" +
      "  clipcrawl worker --queue redis://queue-host:6379 --stages embed,filter,index",
  );
  command.action(async (flags: WorkerFlags) => {
    const stages = parseStages(command, flags.stages);
    const concurrency = Number(flags.concurrency);
    const lockSeconds = Number(flags.lockSeconds);
    if (!(Number.isInteger(concurrency) && concurrency > 0)) {
      command.error(`error: --concurrency takes a positive whole number, got ${flags.concurrency}`);
    }
    if (!(lockSeconds > 0)) {
      command.error(`error: --lock-seconds takes a positive number, got ${flags.lockSeconds}`);
    }
    const { startShardWorker } = await import("../../runner/distributed/shard-worker.js");
    const { fileLogger, stderrLogger } = await import("../../runner/run-log.js");
    const logger = flags.log === undefined ? stderrLogger() : fileLogger(flags.log);
    const worker = await startShardWorker({
      queue: queueOptionsFromFlags(flags),
      stages,
      concurrency,
      lockSeconds,
      logger,
      ...(flags.name === undefined ? {} : { name: flags.name }),
    });
    process.stderr.write(
      `clipcrawl worker ${worker.name}: taking ${stages.join(", ")} jobs from ${flags.queue} (Ctrl-C to stop)\n`,
    );
    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = () => {
        if (stopping) {
          process.stderr.write("clipcrawl worker: stopped at once\n");
          process.exit(130);
        }
        stopping = true;
        process.stderr.write("clipcrawl worker: finishing the running jobs (again to stop now)\n");
        worker.close().then(resolve, resolve);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
  });
}

function parseStages(command: Command, list: string | undefined): string[] {
  if (list === undefined) return [...STAGE_NAMES];
  const stages = list
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  for (const stage of stages) {
    if (!(STAGE_NAMES as readonly string[]).includes(stage)) {
      command.error(
        `error: --stages: unknown stage "${stage}" (stages: ${STAGE_NAMES.join(", ")})`,
      );
    }
  }
  return stages;
}
