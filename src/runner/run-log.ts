/**
 * Structured logs of runs and workers: one JSON object a line (pino), appended to a file under
 * `<root>/_logs/`, with a record for every batch a stage starts and finishes (shards, counts,
 * seconds, errors). Lines are written synchronously, so a `kill -9` loses none that were logged.
 *
 * Object storage cannot append: there the log is written to a local file (the object's earlier
 * lines first) and uploaded whole when the run closes it, so a `kill -9` loses that run's lines.
 */
import { mkdirSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pino } from "pino";
import { LocalStorage } from "../io/local-storage.js";
import type { DatasetStorage } from "../io/storage.js";

export type RunLogger = pino.Logger;

export const LOGS_FOLDER = "_logs";

export interface RunLog {
  logger: RunLogger;
  /** Where the log is: a local path, or the object's URL. */
  logPath: string;
  /** Puts the log in the root where the root cannot append (see the top). */
  close(): Promise<void>;
}

/** A logger appending to `<root>/_logs/<name>.log`. */
export async function openRunLog(storage: DatasetStorage, name: string): Promise<RunLog> {
  const path = `${LOGS_FOLDER}/${name}.log`;
  if (storage instanceof LocalStorage) {
    const logPath = await storage.localPath(path);
    return { logger: fileLogger(logPath), logPath, close: async () => {} };
  }
  const staging = await mkdtemp(join(tmpdir(), "clipcrawl-log-"));
  const local = join(staging, `${name}.log`);
  if (await storage.exists(path)) await writeFile(local, await storage.read(path));
  return {
    logger: fileLogger(local),
    logPath: storage.describe(path),
    close: async () => {
      await storage.writeAtomic(path, await readFile(local));
      await rm(staging, { recursive: true, force: true });
    },
  };
}

export function fileLogger(path: string): RunLogger {
  mkdirSync(dirname(path), { recursive: true });
  return pino(
    { base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: path, append: true, sync: true }),
  );
}

/** Logs to stderr (a worker without a log file). */
export function stderrLogger(): RunLogger {
  return pino(
    { base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 2, sync: true }),
  );
}

export const silentLogger: RunLogger = pino({ level: "silent" });
