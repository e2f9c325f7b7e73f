import type { Command } from "commander";
import { queueOptionsFromFlags } from "./worker.js";

interface DashboardFlags {
  queue: string;
  prefix: string;
  host: string;
  port: string;
}

export function registerDashboard(program: Command): void {
  program
    .command("dashboard")
    .description(
      "a web dashboard of the distributed runs' queues (bull-board): jobs, workers, failures, retries",
    )
    .requiredOption("--queue <url>", "the Redis of the queue (redis://host:6379)")
    .option("--prefix <name>", "key prefix of the queues in Redis", "clipcrawl")
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--port <n>", "port to listen on (0: any free one)", "3000")
    .addHelpText(
      "after",
      "\nExample:\n  clipcrawl dashboard --queue redis://queue-host:6379 --port 3000",
    )
    .action(async (flags: DashboardFlags) => {
      const { startDashboard } = await import("../../runner/distributed/dashboard.js");
      const dashboard = await startDashboard({
        queue: queueOptionsFromFlags(flags),
        host: flags.host,
        port: Number(flags.port),
      });
      process.stdout.write(`clipcrawl dashboard: ${dashboard.url} (Ctrl-C to stop)\n`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          dashboard.close().then(resolve, resolve);
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      });
    });
}
