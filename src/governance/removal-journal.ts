/**
 * What makes a removal complete even when it is interrupted:
 *
 * - the journal `_governance/pending/ID.json`, written (atomically) after the plan and before the
 *   first file is touched: the request, and every file to rewrite with what it loses. Its
 *   presence means "this removal is not finished"; it is deleted after the audit line is written.
 * - a progress log `ID.progress.jsonl` next to it: one line per file rewritten, with what the
 *   rewrite took out, so the audit line of a resumed removal still counts every file (a line cut
 *   short by a crash is ignored; that file's rewrite is checked again and is found done).
 * - a lock file, so that two removals never rewrite the same root at once.
 */
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { ClipcrawlError } from "../errors.js";
import { layout } from "../io/layout.js";
import type { LocalStorage } from "../io/local-storage.js";
import type { AuditEntry, AuditFileChange } from "./audit-log.js";
import type { RemovalPlan } from "./removal-plan.js";

export const JOURNAL_VERSION = 1;
const LOCK_WAIT_MS = 30_000;
const LOCK_POLL_MS = 100;

export interface RemovalJournal {
  version: number;
  removal: string;
  started: string;
  reason: string;
  request: AuditEntry["request"];
  /** Digest of the request's entries: the same request given again while it is pending is it. */
  requestDigest: string;
  plan: RemovalPlan;
}

const JOURNAL_NAME = /^(.+)\.json$/;

export function progressLogPath(removal: string): string {
  return `${layout.removalJournalFolder()}/${removal}.progress.jsonl`;
}

/** The progress log of a compaction (see compaction-journal.ts). */
export function compactionProgressPath(compaction: string): string {
  return `${layout.compactionJournalFolder()}/${compaction}.progress.jsonl`;
}

export async function writeJournal(storage: LocalStorage, journal: RemovalJournal): Promise<void> {
  await storage.writeAtomic(layout.removalJournal(journal.removal), JSON.stringify(journal));
}

/** The unfinished removals, oldest first. */
export async function pendingJournals(storage: LocalStorage): Promise<RemovalJournal[]> {
  const journals: RemovalJournal[] = [];
  for (const name of await storage.list(layout.removalJournalFolder())) {
    const id = JOURNAL_NAME.exec(name)?.[1];
    if (id === undefined || name.endsWith(".progress.jsonl")) continue;
    const path = layout.removalJournal(id);
    let journal: RemovalJournal;
    try {
      journal = JSON.parse(await storage.readText(path)) as RemovalJournal;
    } catch (error) {
      throw new ClipcrawlError(
        "CC_REMOVAL_JOURNAL",
        `${storage.describe(path)}: unreadable removal journal (${String(error)}); it is written atomically, so it was edited by hand`,
      );
    }
    if (journal.version !== JOURNAL_VERSION) {
      throw new ClipcrawlError(
        "CC_REMOVAL_JOURNAL",
        `${storage.describe(path)}: journal version ${journal.version}, this clipcrawl reads ${JOURNAL_VERSION}`,
      );
    }
    journals.push(journal);
  }
  return journals.sort((a, b) => (a.removal < b.removal ? -1 : 1));
}

/** Files already rewritten, from a progress log, with what each rewrite took out. */
export async function readProgress(
  storage: LocalStorage,
  logPath: string,
): Promise<Map<string, AuditFileChange>> {
  const done = new Map<string, AuditFileChange>();
  let text = "";
  try {
    text = await readFile(await storage.localPath(logPath), "utf8");
  } catch {
    return done;
  }
  for (const line of text.split("\n")) {
    try {
      const change = JSON.parse(line) as AuditFileChange;
      done.set(change.path, change);
    } catch {
      // Empty, or cut short by a crash.
    }
  }
  return done;
}

export async function appendProgress(
  storage: LocalStorage,
  logPath: string,
  change: AuditFileChange,
): Promise<void> {
  const path = await storage.localPath(logPath);
  await mkdir(dirname(path), { recursive: true });
  const handle = await open(path, "a");
  try {
    await handle.write(`${JSON.stringify(change)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function finishJournal(storage: LocalStorage, removal: string): Promise<void> {
  await storage.remove(layout.removalJournal(removal));
  await storage.remove(progressLogPath(removal));
}

/**
 * Takes the root's removal lock; a lock left by a process that no longer runs is taken over.
 * Held by `remove` and by `compact` while it plans and while it commits (both short), so either
 * waits up to `waitMs` for the other rather than failing.
 */
export function acquireRemovalLock(
  storage: LocalStorage,
  waitMs = LOCK_WAIT_MS,
): Promise<() => Promise<void>> {
  return acquireLock(storage, layout.removalLock(), waitMs, "remove or compact");
}

/** Held by a compaction from start to end: two never rewrite the same files at once. */
export function acquireCompactionLock(storage: LocalStorage): Promise<() => Promise<void>> {
  return acquireLock(storage, layout.compactionLock(), 0, "compact");
}

async function acquireLock(
  storage: LocalStorage,
  lockPath: string,
  waitMs: number,
  holderName: string,
): Promise<() => Promise<void>> {
  const path = await storage.localPath(lockPath);
  await mkdir(dirname(path), { recursive: true });
  const deadline = Date.now() + waitMs;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx");
      await handle.write(JSON.stringify({ pid: process.pid, since: new Date().toISOString() }));
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const holder = await lockHolder(path);
      // No pid yet: the holder is between creating the file and writing it.
      if ((holder === undefined || processRuns(holder)) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
        attempt--;
        continue;
      }
      if (holder !== undefined && processRuns(holder)) {
        throw new ClipcrawlError(
          "CC_REMOVE_RUNNING",
          `another clipcrawl ${holderName} (process ${holder}) holds this root's lock (${path}); wait for it to finish`,
        );
      }
      await rm(path, { force: true });
    }
  }
  throw new ClipcrawlError("CC_REMOVE_RUNNING", `cannot take the lock ${path}`);
}

async function lockHolder(path: string): Promise<number | undefined> {
  try {
    const pid = (JSON.parse(await readFile(path, "utf8")) as { pid?: unknown }).pid;
    return typeof pid === "number" ? pid : undefined;
  } catch {
    return undefined;
  }
}

function processRuns(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
