/** `clipcrawl worker` processes for the distributed tests, with their JSON logs. */
import { type ChildProcess, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MAIN = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

export interface WorkerProcess {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<void>;
}

/** A worker on `url`/`prefix` logging to `<logDir>/<prefix>-<name>.log`. */
export function startWorker(
  logDir: string,
  url: string,
  prefix: string,
  name: string,
  args: string[] = [],
): WorkerProcess {
  const log = join(logDir, `${prefix}-${name}.log`);
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      MAIN,
      "worker",
      "--queue",
      url,
      "--prefix",
      prefix,
      "--name",
      name,
      // Short, so a killed worker's job is retried soon; long enough for a loaded machine.
      "--lock-seconds",
      "5",
      "--log",
      log,
      ...args,
    ],
    { stdio: "ignore" },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { name, child, log, exited };
}

export async function stopWorkers(workers: readonly WorkerProcess[]): Promise<void> {
  for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill("SIGKILL");
  await Promise.all(workers.map((worker) => worker.exited));
}

export async function logEvents(
  worker: WorkerProcess,
): Promise<{ event: string; job?: string; [field: string]: unknown }[]> {
  const text = await readFile(worker.log, "utf8").catch(() => "");
  return text
    .trim()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as { event: string; job?: string });
}
