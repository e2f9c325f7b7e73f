/**
 * Applying a plan's rewrites (removal-plan.ts) to the root's files, as `clipcrawl compact` does:
 * one file at a time, each atomically (file-rewrites.ts) and logged in a progress log, so a run
 * that is killed resumes with the files not yet done; then the done markers of the rewritten
 * outputs get their new sizes, and an index that held the samples is rebuilt or deleted.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { errorMessage } from "../errors.js";
import { layout } from "../io/layout.js";
import { duckdbConnection } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import type { StageReporter } from "../shard/reporter.js";
import { ShardState } from "../shard/shard-state.js";
import type { AuditFileChange } from "./audit-log.js";
import {
  dropFolderSamples,
  dropNpyRows,
  dropParquetRows,
  dropTarSamples,
  type RewriteOutcome,
  tombstoneImageRows,
} from "./file-rewrites.js";
import { appendProgress, readProgress } from "./removal-journal.js";
import type { PlannedRewrite, RewriteKind } from "./removal-plan.js";

/** What to do with a kNN index that holds removed samples. */
export type IndexAction = "rebuild" | "delete";

/** Builds the root's index from its shards as they are now (the index stage's buildIndex). */
export type IndexRebuild = (
  storage: DatasetStorage,
  reporter: StageReporter,
) => Promise<{
  ok: boolean;
  rows: number;
  failedShards: readonly { shard: string; error: string }[];
}>;

export interface IndexUpdate {
  action: IndexAction;
  rebuild: IndexRebuild;
}

export interface AppliedRewrites {
  files: AuditFileChange[];
  /** Seconds spent rewriting, by kind of file. */
  seconds: Partial<Record<RewriteKind, number>>;
}

const KIND_STAGES = ["download", "embed", "filter"] as const;

/**
 * Rewrites each planned file not yet in the progress log `logPath`. `reason` goes in the image
 * parquet's tombstone rows (`removal ID`); `stage` names the work in progress reports.
 */
export async function applyRewrites(
  storage: DatasetStorage,
  rewrites: readonly PlannedRewrite[],
  logPath: string,
  options: { reason: string; stage: string; resumed: boolean; reporter: StageReporter },
): Promise<AppliedRewrites> {
  const { reporter } = options;
  const done = await readProgress(storage, logPath);
  const seconds: Partial<Record<RewriteKind, number>> = {};
  const files: AuditFileChange[] = [];
  const report = () =>
    reporter.progress({
      stage: options.stage,
      shardsDone: files.length,
      shardsTotal: rewrites.length,
      counters: { files: files.length },
    });
  report();
  const connection = await duckdbConnection();
  try {
    for (const rewrite of rewrites) {
      let change = done.get(rewrite.path);
      if (change === undefined) {
        const started = performance.now();
        const outcome = await applyRewrite(connection, storage, rewrite, options.reason);
        seconds[rewrite.kind] = (seconds[rewrite.kind] ?? 0) + (performance.now() - started) / 1000;
        if (outcome.damaged > 0) {
          reporter.warn(
            `${storage.describe(rewrite.path)}: ${outcome.damaged} damaged tar members could not be read and were left out of the rewritten tar`,
          );
        }
        change = {
          path: rewrite.path,
          // A file found already rewritten (a crash between its rename and its progress line)
          // lost what the plan said.
          removed: outcome.removed > 0 || !options.resumed ? outcome.removed : rewrite.keys.length,
          bytesBefore: outcome.bytesBefore,
          bytesAfter: outcome.bytesAfter,
        };
        await appendProgress(storage, logPath, change);
      }
      files.push(change);
      report();
    }
  } finally {
    connection.closeSync();
  }
  await refreshDoneMarkers(storage, new Set(rewrites.map((rewrite) => rewrite.path)));
  return { files, seconds };
}

function applyRewrite(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  rewrite: PlannedRewrite,
  reason: string,
): Promise<RewriteOutcome> {
  switch (rewrite.kind) {
    case "image-parquet":
      return tombstoneImageRows(connection, storage, rewrite.path, rewrite.keys, reason);
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
  storage: DatasetStorage,
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
export async function updateIndex(
  storage: DatasetStorage,
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
