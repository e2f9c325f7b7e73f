/**
 * `clipcrawl remove`: takes samples out of a dataset root at once, for every reader, by writing
 * what it removes — their keys, as tombstones (src/formats/tombstones.ts) that serve, subset,
 * stats, recheck and diff honour from the moment the removal returns — and keeps what was removed
 * in the root's governance lists, which download and filter honour, so removed content does not
 * come back on a re-run. The files that still hold the samples' bytes (image tars and parquets,
 * embeddings, metadata, dataset shards, the index, version snapshots) are rewritten later by
 * `clipcrawl compact` (compact.ts), or right after with `compact: true`.
 *
 * In order (see removal-journal.ts for why each step can be interrupted):
 *   1. plan: find the samples (not tombstoned already) and the files that hold them
 *      (removal-plan.ts); nothing is touched;
 *   2. lists: the entries asked for are added to `_governance/blocklists/` (stages running from
 *      now on honour them), then the journal: the plan, written atomically; from here on the
 *      removal will be completed;
 *   3. the removed samples' URLs and digests are added to the lists too;
 *   4. the tombstone file: the samples' keys, written atomically; every reader leaves them out;
 *   5. the audit line, then the journal is deleted.
 * A run first completes every pending removal, so re-running after a crash finishes the job.
 */
import { createHash, randomBytes } from "node:crypto";
import { requireDatasetRoot } from "../config/dataset-root.js";
import { ClipcrawlError } from "../errors.js";
import { describeBadLine } from "../formats/blocklists.js";
import {
  appendToGovernanceLists,
  countEntries,
  loadGovernanceLists,
  REMOVAL_KINDS,
  type RemovalKind,
  type RemovalLists,
  readRemovalRequest,
} from "../formats/removal-lists.js";
import { readTombstones, type Tombstones, writeTombstones } from "../formats/tombstones.js";
import { openRoot } from "../io/open-root.js";
import { duckdbConnection } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import type { StageReporter } from "../shard/reporter.js";
import { silentReporter } from "../shard/reporter.js";
import type { IndexAction } from "./apply-rewrites.js";
import { type AuditEntry, appendAuditEntry } from "./audit-log.js";
import type { CompactSummary } from "./compact.js";
import {
  acquireRemovalLock,
  finishJournal,
  JOURNAL_VERSION,
  pendingJournals,
  type RemovalJournal,
  writeJournal,
} from "./removal-journal.js";
import { planRemoval } from "./removal-plan.js";

export type { IndexAction, IndexRebuild } from "./apply-rewrites.js";

export const REMOVE_STAGE = "remove";

export interface RemoveOptions {
  /** The dataset root: a directory path, an `s3://` URL, or a storage. */
  root: string | DatasetStorage;
  /** Files of entries to remove, by kind (paths relative to `cwd`). */
  lists?: Partial<Record<RemovalKind, string>>;
  /** Why: kept in the audit log and the governance lists. */
  reason?: string;
  /**
   * Apply every entry of the root's governance lists again: takes out copies that came in since
   * (a new link to an image whose digest was removed, downloaded before filter dropped it).
   */
  reapply?: boolean;
  /**
   * Compact right after (`clipcrawl compact`): rewrite the files that hold the removed samples
   * now, rather than leaving them tombstoned for a later compaction.
   */
  compact?: boolean;
  /** With `compact`: an index holding removed samples is rebuilt without them (default) or deleted. */
  index?: IndexAction;
  reporter?: StageReporter;
  cwd?: string;
}

export interface CompletedRemoval extends AuditEntry {
  /** True when this run completed a removal an earlier, interrupted run had started. */
  resumed: boolean;
  /** The files that hold the removed samples' bytes until a compaction, and their size. */
  filesHolding: number;
  bytesHolding: number;
  /** Bytes this removal wrote: its tombstone file. */
  tombstoneBytes: number;
  /** Seconds: finding the samples (0 when resumed), writing the lists, tombstones and audit. */
  timings: { plan: number; record: number };
}

export interface RemoveSummary {
  /** True when every removal asked for (and every pending one) was completed. */
  ok: boolean;
  removals: CompletedRemoval[];
  /** Lines of the request files that were not valid entries (reported, the rest applied). */
  badLines: number;
  /** With `compact`: the compaction that followed. */
  compaction: CompactSummary | null;
  seconds: number;
}

/** The removal itself; `compact` is applied by the caller (src/pipeline/governance-commands.ts). */
export async function removeSamples(options: RemoveOptions): Promise<RemoveSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  await requireDatasetRoot(storage);
  const request = await readRemovalRequest(options.lists ?? {}, options.cwd ?? process.cwd());
  const badLines = REMOVAL_KINDS.flatMap((kind) => request[kind].badLines);
  for (const bad of badLines) reporter.warn(describeBadLine(bad));
  const asked = REMOVAL_KINDS.some((kind) => request[kind].file !== "");
  if (asked && countEntries(request) === 0) {
    throw new ClipcrawlError(
      "CC_REMOVAL_EMPTY",
      `the lists given hold no valid entry (${badLines.length} bad ${badLines.length === 1 ? "line" : "lines"}): nothing removed`,
    );
  }

  const release = await acquireRemovalLock(storage);
  const removals: CompletedRemoval[] = [];
  try {
    const pending = await pendingJournals(storage);
    removals.push(...(await completePendingRemovals(storage, pending, reporter)));
    const lists =
      options.reapply === true ? mergeLists(request, await reappliedLists(storage)) : request;
    if (!asked && options.reapply !== true) {
      if (pending.length === 0) {
        throw new ClipcrawlError(
          "CC_REMOVAL_EMPTY",
          "nothing to remove: give --urls, --domains, --sha256, --md5, --sha1 or --keys FILE (or --reapply)",
        );
      }
    } else {
      const digest = requestDigest(lists);
      // The same request again while it was pending: completing the journal completed it.
      if (!pending.some((journal) => journal.requestDigest === digest)) {
        const planStarted = performance.now();
        const journal = await planJournal(
          storage,
          lists,
          digest,
          options,
          await readTombstones(storage),
        );
        const planSeconds = (performance.now() - planStarted) / 1000;
        // The entries asked for go into the lists before the journal, which does not carry them
        // (a takedown list can hold millions): a pending removal's are in the lists already.
        await appendToGovernanceLists(storage, [
          { heading: listHeading(journal), entries: listEntries(lists) },
        ]);
        await writeJournal(storage, journal);
        const completed = await execute(storage, journal, false);
        removals.push({ ...completed, timings: { ...completed.timings, plan: planSeconds } });
      }
    }
  } finally {
    await release();
  }
  return {
    ok: true,
    removals,
    badLines: badLines.length,
    compaction: null,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Completes the removals an interrupted run left (`pending`, from pendingJournals), in order. */
export async function completePendingRemovals(
  storage: DatasetStorage,
  pending: readonly RemovalJournal[],
  reporter: StageReporter,
): Promise<CompletedRemoval[]> {
  const completed: CompletedRemoval[] = [];
  for (const journal of pending) {
    reporter.warn(`completing removal ${journal.removal}, interrupted before it finished`);
    completed.push(await execute(storage, journal, true));
  }
  return completed;
}

async function planJournal(
  storage: DatasetStorage,
  lists: RemovalLists,
  digest: string,
  options: RemoveOptions,
  tombstoned: Tombstones,
): Promise<RemovalJournal> {
  const connection = await duckdbConnection();
  try {
    const plan = await planRemoval(connection, storage, lists, tombstoned);
    const now = new Date();
    const request: AuditEntry["request"] = {};
    for (const kind of REMOVAL_KINDS) {
      const list = lists[kind];
      if (list.file === "" && list.entries.size === 0) continue;
      request[kind] = {
        file: list.file,
        entries: list.entries.size,
        badLines: list.badLines.length,
      };
    }
    return {
      version: JOURNAL_VERSION,
      removal: removalId(now),
      started: now.toISOString(),
      reason: options.reason ?? "",
      request,
      requestDigest: digest,
      plan,
    };
  } finally {
    connection.closeSync();
  }
}

async function execute(
  storage: DatasetStorage,
  journal: RemovalJournal,
  resumed: boolean,
): Promise<CompletedRemoval> {
  const started = performance.now();
  const { plan, removal } = journal;
  await appendToGovernanceLists(storage, [
    {
      heading: `# removal ${removal}: the URLs and image digests of the ${plan.keys.length} samples it removed`,
      entries: { ...plan.found, keys: plan.keys },
    },
  ]);
  // Written whole (and again, the same bytes, when a resumed removal finds it written).
  const tombstones =
    plan.keys.length === 0 ? undefined : await writeTombstones(storage, removal, plan.keys);
  let bytesHolding = 0;
  for (const rewrite of plan.rewrites) {
    bytesHolding += (await storage.stat(rewrite.path))?.bytes ?? 0;
  }
  const entry: AuditEntry = {
    removal,
    kind: "removal",
    started: journal.started,
    finished: new Date().toISOString(),
    reason: journal.reason,
    request: journal.request,
    samples: plan.keys.length,
    keys: plan.keys,
    files: [],
    ...(tombstones === undefined
      ? {}
      : { tombstones: { ...tombstones, filesHolding: plan.rewrites.length } }),
    index: plan.indexAffected
      ? "holds the samples until clipcrawl compact rebuilds it; readers leave them out"
      : "not affected",
  };
  await appendAuditEntry(storage, entry);
  await finishJournal(storage, removal);
  return {
    ...entry,
    resumed,
    filesHolding: plan.rewrites.length,
    bytesHolding,
    tombstoneBytes: tombstones?.bytes ?? 0,
    timings: { plan: 0, record: (performance.now() - started) / 1000 },
  };
}

/**
 * The root's governance lists, keys left out: a key names a position in the image shards, which
 * a re-download with another shard size gives to another sample; a removed sample's URL and
 * digests are in the other lists.
 */
async function reappliedLists(storage: DatasetStorage): Promise<RemovalLists> {
  const lists = await loadGovernanceLists(storage);
  return { ...lists, keys: { kind: "keys", file: "", entries: new Set(), badLines: [] } };
}

function mergeLists(a: RemovalLists, b: RemovalLists): RemovalLists {
  const merged = { ...a };
  for (const kind of REMOVAL_KINDS) {
    merged[kind] = {
      kind,
      file: a[kind].file === "" ? b[kind].file : a[kind].file,
      entries: new Set([...a[kind].entries, ...b[kind].entries]),
      badLines: [...a[kind].badLines, ...b[kind].badLines],
    };
  }
  return merged;
}

function listEntries(lists: RemovalLists): Partial<Record<RemovalKind, Iterable<string>>> {
  return Object.fromEntries(REMOVAL_KINDS.map((kind) => [kind, lists[kind].entries]));
}

function requestDigest(lists: RemovalLists): string {
  const hash = createHash("sha256");
  for (const kind of REMOVAL_KINDS) {
    hash.update(`${kind}\n`);
    for (const entry of [...lists[kind].entries].sort()) hash.update(`${entry}\n`);
  }
  return hash.digest("hex");
}

/** Sortable by time, unique: `20250102T030405Z-1a2b3c`. */
function removalId(now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${stamp}-${randomBytes(3).toString("hex")}`;
}

/** The comment line above a removal's entries in the governance lists. */
function listHeading(journal: RemovalJournal): string {
  const reason = journal.reason.replace(/\s+/g, " ").trim();
  return `# removal ${journal.removal} · ${journal.started}${reason === "" ? "" : ` · ${reason}`}`;
}
