/**
 * `clipcrawl compact`: applies the root's tombstones (src/formats/tombstones.ts) to its files —
 * download's image tars and parquets, embed's `.npy` files and metadata (kept row-aligned), the
 * dataset shards, the version snapshots, the kNN index — and then deletes the tombstones it
 * applied. `remove` makes samples unreachable at once and writes only their keys; compact is when
 * the bytes that held them are rewritten, on demand or in the background (`--background`).
 *
 * In order, each step resumable:
 *   1. under the removal lock: complete pending removals, read the tombstones, plan (which files
 *      hold those keys: removal-plan.ts; which version snapshots: version-rewrites.ts), write the
 *      journal `_governance/compaction/ID.json`; the lock is let go;
 *   2. rewrites, one file at a time, each atomically and logged (apply-rewrites.ts); done markers
 *      get the new sizes;
 *   3. version snapshots: linked again to the rewritten shard, or rewritten; their records updated;
 *   4. the index: rebuilt from the rewritten shards (or deleted), when it held the samples;
 *   5. under the lock: the audit line, the applied tombstone files deleted, the journal deleted.
 * Readers honour the tombstones throughout, so a sample is never reachable while its files are
 * half-way; a removal made during a compaction gets its own tombstones, which stay for the next.
 * Killed at any point, the next `clipcrawl compact` finds the journal and completes it.
 */
import { randomBytes } from "node:crypto";
import { requireDatasetRoot } from "../config/dataset-root.js";
import { ClipcrawlError } from "../errors.js";
import { REMOVAL_KINDS, type RemovalLists } from "../formats/removal-lists.js";
import { deleteTombstones, readTombstones, registerTombstones } from "../formats/tombstones.js";
import { layout } from "../io/layout.js";
import { openRoot } from "../io/open-root.js";
import { duckdbConnection } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { type StageReporter, silentReporter } from "../shard/reporter.js";
import {
  applyRewrites,
  type IndexAction,
  type IndexRebuild,
  updateIndex,
} from "./apply-rewrites.js";
import { type AuditEntry, type AuditFileChange, appendAuditEntry } from "./audit-log.js";
import {
  acquireCompactionLock,
  acquireRemovalLock,
  compactionProgressPath,
  JOURNAL_VERSION,
  pendingJournals,
} from "./removal-journal.js";
import { planRemoval, type RemovalPlan, type RewriteKind } from "./removal-plan.js";
import { completePendingRemovals } from "./remove.js";
import {
  applyVersionRewrites,
  planVersionRewrites,
  type VersionRewrite,
} from "./version-rewrites.js";

export const COMPACT_STAGE = "compact";

export interface CompactOptions {
  /** The dataset root: a directory path, an `s3://` URL, or a storage. */
  root: string | DatasetStorage;
  /** An index holding removed samples is rebuilt without them (default) or deleted. */
  index?: IndexAction;
  reporter?: StageReporter;
}

export interface CompactSummary {
  /** False when the index could not be rebuilt (it was deleted instead). */
  ok: boolean;
  /** The compaction's id; null when there was nothing to compact. */
  compaction: string | null;
  /** True when this run completed a compaction an interrupted run had started. */
  resumed: boolean;
  /** The removals whose tombstones were applied (and deleted). */
  applied: string[];
  /** Tombstoned keys applied. */
  samples: number;
  files: AuditFileChange[];
  /** Version snapshot files linked again or rewritten. */
  versions: AuditFileChange[];
  /** Bytes of the files written anew (rewritten live files and version snapshots). */
  bytesRewritten: number;
  index: string;
  seconds: number;
  timings: {
    plan: number;
    rewrites: Partial<Record<RewriteKind, number>>;
    versions: number;
    index: number;
  };
}

interface CompactionJournal {
  version: number;
  compaction: string;
  started: string;
  /** The removals whose tombstone files this compaction applies. */
  applied: string[];
  keys: number;
  plan: RemovalPlan;
  versions: VersionRewrite[];
}

export async function compactRoot(
  options: CompactOptions,
  rebuildIndex: IndexRebuild,
): Promise<CompactSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  await requireDatasetRoot(storage);
  const releaseCompaction = await acquireCompactionLock(storage);
  try {
    return await compactUnderLock(storage, options, rebuildIndex, reporter, started);
  } finally {
    await releaseCompaction();
  }
}

async function compactUnderLock(
  storage: DatasetStorage,
  options: CompactOptions,
  rebuildIndex: IndexRebuild,
  reporter: StageReporter,
  started: number,
): Promise<CompactSummary> {
  let journal = await pendingCompaction(storage);
  const resumed = journal !== undefined;
  let planSeconds = 0;
  if (journal === undefined) {
    const release = await acquireRemovalLock(storage);
    try {
      await completePendingRemovals(storage, await pendingJournals(storage), reporter);
      const planStarted = performance.now();
      journal = await planCompaction(storage);
      planSeconds = (performance.now() - planStarted) / 1000;
      if (journal !== undefined) {
        await storage.writeAtomic(
          layout.compactionJournal(journal.compaction),
          JSON.stringify(journal),
        );
      }
    } finally {
      await release();
    }
  } else {
    reporter.warn(`completing compaction ${journal.compaction}, interrupted before it finished`);
  }
  if (journal === undefined) {
    return {
      ok: true,
      compaction: null,
      resumed: false,
      applied: [],
      samples: 0,
      files: [],
      versions: [],
      bytesRewritten: 0,
      index: "not affected",
      seconds: (performance.now() - started) / 1000,
      timings: { plan: planSeconds, rewrites: {}, versions: 0, index: 0 },
    };
  }

  const { compaction, applied, plan } = journal;
  const rewritten = await applyRewrites(
    storage,
    plan.rewrites,
    compactionProgressPath(compaction),
    { reason: tombstoneReason(applied, compaction), stage: COMPACT_STAGE, resumed, reporter },
  );
  const versionsStarted = performance.now();
  const connection = await duckdbConnection();
  let versions: AuditFileChange[];
  try {
    versions = await applyVersionRewrites(connection, storage, journal.versions);
  } finally {
    connection.closeSync();
  }
  const versionSeconds = (performance.now() - versionsStarted) / 1000;
  const indexStarted = performance.now();
  const index = plan.indexAffected
    ? await updateIndex(
        storage,
        { action: options.index ?? "rebuild", rebuild: rebuildIndex },
        reporter,
      )
    : "not affected";
  const indexSeconds = (performance.now() - indexStarted) / 1000;

  const release = await acquireRemovalLock(storage);
  try {
    const entry: AuditEntry = {
      removal: compaction,
      kind: "compaction",
      started: journal.started,
      finished: new Date().toISOString(),
      reason: `applied the tombstones of ${applied.length} ${applied.length === 1 ? "removal" : "removals"}`,
      request: {},
      samples: plan.keys.length,
      keys: [],
      files: [...rewritten.files, ...versions],
      applied,
      index,
    };
    await appendAuditEntry(storage, entry);
    await deleteTombstones(storage, applied);
    await storage.remove(layout.compactionJournal(compaction));
    await storage.remove(compactionProgressPath(compaction));
  } finally {
    await release();
  }
  const changed = [...rewritten.files, ...versions].filter((file) => file.removed > 0);
  return {
    ok: !index.startsWith("deleted: rebuild failed"),
    compaction,
    resumed,
    applied,
    samples: plan.keys.length,
    files: rewritten.files,
    versions,
    bytesRewritten: changed.reduce((sum, file) => sum + file.bytesAfter, 0),
    index,
    seconds: (performance.now() - started) / 1000,
    timings: {
      plan: planSeconds,
      rewrites: rewritten.seconds,
      versions: versionSeconds,
      index: indexSeconds,
    },
  };
}

/** Reads the tombstones and plans their application; undefined when there are none. */
async function planCompaction(storage: DatasetStorage): Promise<CompactionJournal | undefined> {
  const tombstones = await readTombstones(storage);
  if (tombstones.removals.length === 0) return undefined;
  const lists = Object.fromEntries(
    REMOVAL_KINDS.map((kind) => [
      kind,
      {
        kind,
        file: "",
        entries: kind === "keys" ? new Set(tombstones.keys) : new Set<string>(),
        badLines: [],
      },
    ]),
  ) as unknown as RemovalLists;
  const connection = await duckdbConnection();
  try {
    const plan = await planRemoval(connection, storage, lists);
    // planRemoval left its own tables; the versions are matched against the tombstones.
    await registerTombstones(connection, tombstones);
    const versions = await planVersionRewrites(connection, storage);
    const now = new Date();
    return {
      version: JOURNAL_VERSION,
      compaction: `compact-${now
        .toISOString()
        .replace(/[-:]/g, "")
        .replace(/\.\d+Z$/, "Z")}-${randomBytes(3).toString("hex")}`,
      started: now.toISOString(),
      applied: tombstones.removals,
      keys: tombstones.keys.size,
      plan,
      versions,
    };
  } finally {
    connection.closeSync();
  }
}

/** The compaction an interrupted run left, if any (at most one: they run under the lock's plan). */
async function pendingCompaction(storage: DatasetStorage): Promise<CompactionJournal | undefined> {
  const names = (await storage.list(layout.compactionJournalFolder())).filter(
    (name) => name.endsWith(".json") && !name.endsWith(".progress.jsonl"),
  );
  const name = names.sort()[0];
  if (name === undefined) return undefined;
  const path = layout.compactionJournal(name.slice(0, -".json".length));
  try {
    const journal = JSON.parse(await storage.readText(path)) as CompactionJournal;
    if (journal.version !== JOURNAL_VERSION) throw new Error(`version ${journal.version}`);
    return journal;
  } catch (error) {
    throw new ClipcrawlError(
      "CC_COMPACTION_JOURNAL",
      `${storage.describe(path)}: unreadable compaction journal (${String(error)}); it is written atomically, so it was edited by hand`,
    );
  }
}

/** What download's rows of the compacted samples say in error_message. */
function tombstoneReason(applied: readonly string[], compaction: string): string {
  if (applied.length === 1) return `removal ${applied[0]}`;
  if (applied.length <= 3) return `removals ${applied.join(", ")}`;
  return `removals ${applied[0]} … ${applied.at(-1)} (compaction ${compaction})`;
}
