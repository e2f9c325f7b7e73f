import type { Command } from "commander";
import { requireDatasetRoot } from "../../config/dataset-root.js";
import { errorMessage } from "../../errors.js";
import { openRoot } from "../../io/open-root.js";
import type { QueueStatus } from "../../runner/distributed/queue-status.js";
import { describeStatus, runStatus } from "../../runner/run-status.js";

interface StatusFlags {
  root?: string;
  queue?: string;
  prefix?: string;
  json?: boolean;
}

export function registerStatus(program: Command): void {
  program
    .command("status")
    .description(
      "what is done, running and failed in a dataset root (and its distributed run's queue), with reasons",
    )
    .argument("[root]", "the dataset root (or --root)")
    .option("--root <dir>", "the dataset root", ".")
    .option("--queue <url>", "the Redis of a distributed run (default: the one the last run used)")
    .option("--prefix <name>", "key prefix of the queues in Redis (default: the last run's)")
    .option("--json", "print the status as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  clipcrawl status ./data\n  clipcrawl status --root ./data --queue redis://queue-host:6379",
    )
    .action(async (positional: string | undefined, flags: StatusFlags) => {
      const storage = openRoot(positional ?? flags.root ?? ".");
      await requireDatasetRoot(storage);
      const root = storage.root;
      const report = await runStatus(root);
      const recorded = report.run?.queue ?? null;
      const url = flags.queue ?? (recorded === null ? undefined : recorded.url);
      let queue: QueueStatus | undefined;
      let queueError: string | undefined;
      if (url !== undefined && !url.includes("***")) {
        // BullMQ loads only for a distributed run.
        const { queueStatus } = await import("../../runner/distributed/queue-status.js");
        const prefix = flags.prefix ?? recorded?.prefix ?? "clipcrawl";
        queue = await queueStatus(root, { url, prefix }).catch((error: unknown) => {
          queueError = `cannot read the queue at ${url}: ${errorMessage(error)}`;
          return undefined;
        });
      }
      if (flags.json === true) {
        const json = { ...report, queue: queue ?? null, queueError: queueError ?? null };
        process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
        return;
      }
      process.stdout.write(describeStatus(report));
      if (queue !== undefined) {
        const { describeQueueStatus } = await import("../../runner/distributed/queue-status.js");
        process.stdout.write(describeQueueStatus(queue));
      } else if (queueError !== undefined) process.stdout.write(`  ${queueError}\n`);
      else if (url !== undefined) {
        process.stdout.write("  (the run's queue has a password: pass --queue to read it)\n");
      }
    });
}
