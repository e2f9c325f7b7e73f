/**
 * What makes a removal complete even when it is interrupted:
 *
 * - the journal `_governance/pending/ID.json`, written (atomically) after the plan and before the
 *   first file is touched: the request, and every file to rewrite with what it loses. Its
 *   presence means "this removal is not finished"; it is deleted after the audit line is written.
 * - a progress log `ID.progress.jsonl` next to it: one line per file rewritten, with what the
 *   rewrite took out, so the audit line of a resumed removal still counts every file (a line cut
 *   short by a crash is ignored; that file's rewrite is checked again and is found done).
 * - a lock (src/io/root-lock.ts), so that two removals never rewrite the same root at once.
 */
import { ClipcrawlError } from "../errors.js";
import { appendToFile, readTextIfAny } from "../io/append-file.js";
import { layout } from "../io/layout.js";
import { acquireRootLock, type ReleaseLock } from "../io/root-lock.js";
import type { DatasetStorage } from "../io/storage.js";
import type { AuditEntry, AuditFileChange } from "./audit-log.js";
import type { RemovalPlan } from "./removal-plan.js";

export const JOURNAL_VERSION = 1;
const LOCK_WAIT_MS = 30_000;

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

export async function writeJournal(
  storage: DatasetStorage,
  journal: RemovalJournal,
): Promise<void> {
  await storage.writeAtomic(layout.removalJournal(journal.removal), JSON.stringify(journal));
}

/** The unfinished removals, oldest first. */
export async function pendingJournals(storage: DatasetStorage): Promise<RemovalJournal[]> {
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
  storage: DatasetStorage,
  logPath: string,
): Promise<Map<string, AuditFileChange>> {
  const done = new Map<string, AuditFileChange>();
  for (const line of (await readTextIfAny(storage, logPath)).split("\n")) {
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
  storage: DatasetStorage,
  logPath: string,
  change: AuditFileChange,
): Promise<void> {
  await appendToFile(storage, logPath, `${JSON.stringify(change)}\n`);
}

export async function finishJournal(storage: DatasetStorage, removal: string): Promise<void> {
  await storage.remove(layout.removalJournal(removal));
  await storage.remove(progressLogPath(removal));
}

/**
 * Takes the root's removal lock (src/io/root-lock.ts: a file locally, claims on object storage);
 * a lock left by a process that no longer runs is taken over. Held by `remove` and by `compact`
 * while it plans and while it commits (both short), so either waits up to `waitMs` for the other
 * rather than failing.
 */
export function acquireRemovalLock(
  storage: DatasetStorage,
  waitMs = LOCK_WAIT_MS,
): Promise<ReleaseLock> {
  return acquireRootLock(storage, layout.removalLock(), {
    waitMs,
    holderName: "remove or compact",
    code: "CC_REMOVE_RUNNING",
  });
}

/** Held by a compaction from start to end: two never rewrite the same files at once. */
export function acquireCompactionLock(storage: DatasetStorage): Promise<ReleaseLock> {
  return acquireRootLock(storage, layout.compactionLock(), {
    waitMs: 0,
    holderName: "compact",
    code: "CC_REMOVE_RUNNING",
  });
}
