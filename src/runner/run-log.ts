/**
 * Structured logs of runs and workers: one JSON object a line (pino), appended to a file under
 * `<root>/_logs/`, with a record for every batch a stage starts and finishes (shards, counts,
 * seconds, errors). Lines are written synchronously, so a `kill -9` loses none that were logged.
 */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { pino } from "pino";
import type { LocalStorage } from "../io/local-storage.js";

export type RunLogger = pino.Logger;

export const LOGS_FOLDER = "_logs";

/** A logger appending to `<root>/_logs/<name>.log`; its path is `logPath`. */
export async function openRunLog(
  storage: LocalStorage,
  name: string,
): Promise<{ logger: RunLogger; logPath: string }> {
  const logPath = await storage.localPath(`${LOGS_FOLDER}/${name}.log`);
  mkdirSync(dirname(logPath), { recursive: true });
  return { logger: fileLogger(logPath), logPath };
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
