/**
 * `clipcrawl remove`: takes samples out of a dataset root everywhere they live — download's image
 * tars and parquets, embed's `.npy` files and metadata (kept row-aligned), the dataset shards,
 * the kNN index — and keeps what was removed in the root's governance lists, which download and
 * filter honour, so removed content does not come back on a re-run.
 *
 * In order (see removal-journal.ts for why each step can be interrupted):
 *   1. plan: find the samples and the files that hold them (removal-plan.ts); nothing is touched;
 *   2. lists: the entries asked for are added to `_governance/blocklists/` (stages running from
 *      now on honour them), then the journal: the plan, written atomically; from here on the
 *      removal will be completed;
 *   3. the removed samples' URLs and digests are added to the lists too;
 *   4. rewrites: one file at a time, each atomically (file-rewrites.ts), each logged;
 *   5. done markers: the sizes of the rewritten outputs, so a finished download shard is not
 *      fetched again (embed, filter and index see their inputs changed and redo those shards);
 *   6. index: rebuilt without the removed rows (it offers no row removal), or deleted; the
 *      rebuild is the index stage's, handed in by the caller (governance imports no stage);
 *   7. the audit line, then the journal is deleted.
 * A run first completes every pending removal, so re-running after a crash finishes the job;
 * a file is then either untouched or fully rewritten, never a mix.
 */
import { createHash, randomBytes } from "node:crypto";
import type { DuckDBConnection } from "@duckdb/node-api";
import { requireDatasetRoot } from "../config/dataset-root.js";
import { ClipcrawlError, errorMessage } from "../errors.js";
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
import { layout } from "../io/layout.js";
import type { LocalStorage } from "../io/local-storage.js";
import { localRootOf, openRoot } from "../io/open-root.js";
import { duckdbConnection } from "../io/parquet.js";
import type { StageReporter } from "../shard/reporter.js";
import { silentReporter } from "../shard/reporter.js";
import { ShardState } from "../shard/shard-state.js";
import { type AuditEntry, type AuditFileChange, appendAuditEntry } from "./audit-log.js";
import {
  dropFolderSamples,
  dropNpyRows,
  dropParquetRows,
  dropTarSamples,
  type RewriteOutcome,
  tombstoneImageRows,
} from "./file-rewrites.js";
import {
  acquireRemovalLock,
  appendProgress,
  finishJournal,
  JOURNAL_VERSION,
  pendingJournals,
  type RemovalJournal,
  readProgress,
  writeJournal,
} from "./removal-journal.js";
import { type PlannedRewrite, planRemoval, type RewriteKind } from "./removal-plan.js";

export const REMOVE_STAGE = "remove";

/** What to do with a kNN index that holds removed samples. */
export type IndexAction = "rebuild" | "delete";

export interface RemoveOptions {
  /** The dataset root: a directory path, or a LocalStorage. */
  root: string | LocalStorage;
  /** Files of entries to remove, by kind (paths relative to `cwd`). */
  lists?: Partial<Record<RemovalKind, string>>;
  /** Why: kept in the audit log and the governance lists. */
  reason?: string;
  /**
   * Apply every entry of the root's governance lists again: takes out copies that came in since
   * (a new link to an image whose digest was removed, downloaded before filter dropped it).
   */
  reapply?: boolean;
  /** An index holding removed samples is rebuilt without them (default) or deleted. */
  index?: IndexAction;
  reporter?: StageReporter;
  cwd?: string;
}

/** Builds the root's index from its shards as they are now (the index stage's buildIndex). */
export type IndexRebuild = (
  storage: LocalStorage,
  reporter: StageReporter,
) => Promise<{
  ok: boolean;
  rows: number;
  failedShards: readonly { shard: string; error: string }[];
}>;

interface IndexUpdate {
  action: IndexAction;
  rebuild: IndexRebuild;
}

export interface CompletedRemoval extends AuditEntry {
  /** True when this run completed a removal an earlier, interrupted run had started. */
  resumed: boolean;
  bytesRewritten: number;
  /** Seconds: finding the samples (0 when resumed), rewriting files (by kind), the index. */
  timings: { plan: number; rewrites: Partial<Record<RewriteKind, number>>; index: number };
}

export interface RemoveSummary {
  /** True when every removal asked for (and every pending one) was completed. */
  ok: boolean;
  removals: CompletedRemoval[];
  /** Lines of the request files that were not valid entries (reported, the rest applied). */
  badLines: number;
  seconds: number;
}

const KIND_STAGES = ["download", "embed", "filter"] as const;

export async function removeSamples(
  options: RemoveOptions,
  rebuildIndex: IndexRebuild,
): Promise<RemoveSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = localRootOf(openRoot(options.root), "clipcrawl remove");
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

  const indexUpdate: IndexUpdate = { action: options.index ?? "rebuild", rebuild: rebuildIndex };
  const release = await acquireRemovalLock(storage);
  const removals: CompletedRemoval[] = [];
  try {
    const pending = await pendingJournals(storage);
    for (const journal of pending) {
      reporter.warn(`completing removal ${journal.removal}, interrupted before it finished`);
      removals.push(await execute(storage, journal, true, indexUpdate, reporter));
    }
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
        const journal = await planJournal(storage, lists, digest, options);
        const planSeconds = (performance.now() - planStarted) / 1000;
        // The entries asked for go into the lists before the journal, which does not carry them
        // (a takedown list can hold millions): a pending removal's are in the lists already.
        await appendToGovernanceLists(storage, [
          { heading: listHeading(journal), entries: listEntries(lists) },
        ]);
        await writeJournal(storage, journal);
        const completed = await execute(storage, journal, false, indexUpdate, reporter);
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
    seconds: (performance.now() - started) / 1000,
  };
}

async function planJournal(
  storage: LocalStorage,
  lists: RemovalLists,
  digest: string,
  options: RemoveOptions,
): Promise<RemovalJournal> {
  const connection = await duckdbConnection();
  try {
    const plan = await planRemoval(connection, storage, lists);
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
  storage: LocalStorage,
  journal: RemovalJournal,
  resumed: boolean,
  indexUpdate: IndexUpdate,
  reporter: StageReporter,
): Promise<CompletedRemoval> {
  const { plan, removal } = journal;
  await appendToGovernanceLists(storage, [
    {
      heading: `# removal ${removal}: the URLs and image digests of the ${plan.keys.length} samples it removed`,
      entries: { ...plan.found, keys: plan.keys },
    },
  ]);

  const done = await readProgress(storage, removal);
  const rewriteSeconds: Partial<Record<RewriteKind, number>> = {};
  const files: AuditFileChange[] = [];
  let filesDone = 0;
  const report = () =>
    reporter.progress({
      stage: REMOVE_STAGE,
      shardsDone: filesDone,
      shardsTotal: plan.rewrites.length,
      counters: { files: filesDone },
    });
  report();
  const connection = await duckdbConnection();
  try {
    for (const rewrite of plan.rewrites) {
      let change = done.get(rewrite.path);
      if (change === undefined) {
        const rewriteStarted = performance.now();
        const outcome = await applyRewrite(connection, storage, rewrite, removal);
        rewriteSeconds[rewrite.kind] =
          (rewriteSeconds[rewrite.kind] ?? 0) + (performance.now() - rewriteStarted) / 1000;
        if (outcome.damaged > 0) {
          reporter.warn(
            `${storage.describe(rewrite.path)}: ${outcome.damaged} damaged tar members could not be read and were left out of the rewritten tar`,
          );
        }
        change = {
          path: rewrite.path,
          // A file found already rewritten (a crash between its rename and its progress line)
          // lost what the plan said.
          removed: outcome.removed > 0 || !resumed ? outcome.removed : rewrite.keys.length,
          bytesBefore: outcome.bytesBefore,
          bytesAfter: outcome.bytesAfter,
        };
        await appendProgress(storage, removal, change);
      }
      files.push(change);
      filesDone++;
      report();
    }
  } finally {
    connection.closeSync();
  }
  await refreshDoneMarkers(storage, new Set(plan.rewrites.map((rewrite) => rewrite.path)));
  const indexStarted = performance.now();
  const index = plan.indexAffected
    ? await updateIndex(storage, indexUpdate, reporter)
    : "not affected";
  const indexSeconds = (performance.now() - indexStarted) / 1000;

  const entry: AuditEntry = {
    removal,
    started: journal.started,
    finished: new Date().toISOString(),
    reason: journal.reason,
    request: journal.request,
    samples: plan.keys.length,
    keys: plan.keys,
    files,
    index,
  };
  await appendAuditEntry(storage, entry);
  await finishJournal(storage, removal);
  return {
    ...entry,
    resumed,
    bytesRewritten: files.reduce((sum, file) => sum + file.bytesAfter, 0),
    timings: { plan: 0, rewrites: rewriteSeconds, index: indexSeconds },
  };
}

function applyRewrite(
  connection: DuckDBConnection,
  storage: LocalStorage,
  rewrite: PlannedRewrite,
  removal: string,
): Promise<RewriteOutcome> {
  switch (rewrite.kind) {
    case "image-parquet":
      return tombstoneImageRows(connection, storage, rewrite.path, rewrite.keys, removal);
    case "image-tar":
      return dropTarSamples(storage, rewrite.path, rewrite.keys);
    case "image-folder":
      return dropFolderSamples(storage, rewrite.path, rewrite.keys);
    case "parquet-rows":
      return dropParquetRows(connection, storage, rewrite.path, rewrite.keys);
    case "npy-rows":
      return dropNpyRows(storage, rewrite.path, rewrite.positions ?? [], rewrite.rowsBefore ?? 0);
  }
}

/**
 * The done markers that name a rewritten file get its new size, so the stage does not take its
 * own output for damaged. Their input digests stay: download's inputs (the candidates) did not
 * change, so its finished shards stay finished and are not fetched again; embed, filter and the
 * index digest their inputs' sizes and times, so they redo the shards whose inputs were rewritten.
 */
async function refreshDoneMarkers(
  storage: LocalStorage,
  rewritten: ReadonlySet<string>,
): Promise<void> {
  for (const stage of KIND_STAGES) {
    const state = new ShardState(storage, stage);
    for (const marker of await state.list()) {
      if (!marker.outputs.some((output) => rewritten.has(output.path))) continue;
      const outputs = await Promise.all(
        marker.outputs.map(async (output) =>
          rewritten.has(output.path)
            ? { path: output.path, bytes: (await storage.stat(output.path))?.bytes ?? output.bytes }
            : output,
        ),
      );
      const { stage: _stage, ...rest } = marker;
      await state.markDone({ ...rest, outputs });
    }
  }
}

/** The index offers no row removal: it is rebuilt from the rewritten shards, or deleted. */
async function updateIndex(
  storage: LocalStorage,
  update: IndexUpdate,
  reporter: StageReporter,
): Promise<string> {
  const deleteIndex = async () => {
    await storage.remove(layout.indexFolder());
    await storage.remove(layout.stateFolder("index"));
  };
  if (update.action === "delete") {
    await deleteIndex();
    return "deleted (run clipcrawl index to build it again)";
  }
  try {
    const summary = await update.rebuild(storage, reporter);
    if (summary.ok) return `rebuilt (${summary.rows} rows)`;
    throw new Error(
      summary.failedShards.map((failed) => `${failed.shard}: ${failed.error}`).join("; "),
    );
  } catch (error) {
    // What must not happen is an index still serving removed samples.
    await deleteIndex();
    reporter.warn(`index rebuild failed (${errorMessage(error)}); the index was deleted instead`);
    return `deleted: rebuild failed (${errorMessage(error)})`;
  }
}

/**
 * The root's governance lists, keys left out: a key names a position in the image shards, which
 * a re-download with another shard size gives to another sample; a removed sample's URL and
 * digests are in the other lists.
 */
async function reappliedLists(storage: LocalStorage): Promise<RemovalLists> {
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
