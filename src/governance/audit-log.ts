/**
 * `_governance/audit.jsonl`: one JSON line per completed removal — what was asked (the lists and
 * their sizes), when, why, the keys it tombstoned — and one per compaction: which removals'
 * tombstones it applied and how many rows or samples left each file. Lines are only ever added,
 * appended and synced, so a removal costs its own line, not a copy of the log (on object storage,
 * which cannot append, the object is rewritten whole: src/io/append-file.ts). A crash can leave
 * at most a cut-off last line, which readers skip and the next line starts after; a removal
 * resumed after a crash adds its line once (it looks for its id among the whole lines first).
 */
import type { RemovalKind } from "../formats/removal-lists.js";
import { appendToFile } from "../io/append-file.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";

export interface AuditFileChange {
  path: string;
  /** Rows (parquet, npy) or samples (tar, image folder) taken out of the file. */
  removed: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface AuditEntry {
  /** The removal's id, or the compaction's. */
  removal: string;
  /** Absent in lines written before compaction existed: a removal that rewrote its files. */
  kind?: "removal" | "compaction";
  started: string;
  finished: string;
  reason: string;
  /** The lists asked for: file, entries applied, bad lines ignored. */
  request: Partial<Record<RemovalKind, { file: string; entries: number; badLines: number }>>;
  /** Distinct sample keys removed. */
  samples: number;
  /** The keys themselves, so `clipcrawl show KEY` can tell a sample's removal (removals only). */
  keys: string[];
  /** Files rewritten (a compaction; a removal rewrites none, its samples are tombstoned). */
  files: AuditFileChange[];
  /** A removal: its tombstone file, and how many files hold its samples until compaction. */
  tombstones?: { path: string; bytes: number; filesHolding: number };
  /** A compaction: the removals whose tombstones it applied (then deleted). */
  applied?: string[];
  /** What happened to the kNN index (see remove.ts). */
  index: string;
}

export async function readAuditLog(storage: DatasetStorage): Promise<AuditEntry[]> {
  const path = layout.auditLog();
  if (!(await storage.exists(path))) return [];
  const entries: AuditEntry[] = [];
  for (const line of (await storage.readText(path)).split("\n")) {
    if (line.trim() === "") continue;
    try {
      entries.push(JSON.parse(line) as AuditEntry);
    } catch {
      // A line edited by hand, or cut off by a crash: the others still count.
    }
  }
  return entries;
}

/** Adds the entry's line, once; called under the removal lock (on object storage, see append-file.ts). */
export async function appendAuditEntry(storage: DatasetStorage, entry: AuditEntry): Promise<void> {
  const path = layout.auditLog();
  const existing = (await storage.exists(path)) ? await storage.readText(path) : "";
  if ((await readAuditLog(storage)).some((line) => line.removal === entry.removal)) return;
  const separator = existing === "" || existing.endsWith("\n") ? "" : "\n";
  await appendToFile(storage, path, `${separator}${JSON.stringify(entry)}\n`);
}
