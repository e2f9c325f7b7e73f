/**
 * extract's dedup filter kept in the root between runs (`_state/pair-filter.bin`), so a run that
 * adds a crawl starts from what earlier runs knew instead of reading their candidate shards again.
 *
 * The snapshot is labelled with the leading shards whose pairs it holds, and nothing else: their
 * count and the last one's digest (which chains every one before it). A run uses it only when
 * those shards are still done with the same digests. A local run restores it into its own filter
 * and saves it at the end; a distributed run restores it into the run's shared filter before any
 * shard job is queued and writes the shared filter back once every job is over (`aroundSharedRun`
 * in stage.ts), a slice at a time, so the filter is never whole in this process's memory.
 */
import { open } from "node:fs/promises";
import { loadConfig } from "../../config/config-file.js";
import { errorMessage } from "../../errors.js";
import {
  GrowingBloomFilter,
  seriesLayerBytes,
  snapshotBitsReader,
  snapshotHeader,
  snapshotHeaderEnd,
  snapshotLayout,
} from "../../formats/bloom-filter.js";
import { HASH_LANES, hashPair } from "../../formats/pair-hash.js";
import { layout } from "../../io/layout.js";
import { readParquet } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import type { StageReporter } from "../../shard/reporter.js";
import { ShardState } from "../../shard/shard-state.js";
import type {
  PairFilterBits,
  SharedPairFilter,
  SharedStageRun,
} from "../../shard/stage-definition.js";
import type { ExtractShardPlan } from "./extract.js";

/** Where the dedup filter's knowledge of earlier shards came from. */
export interface DedupState {
  /** Leading shards whose pairs came from the saved filter (`_state/pair-filter.bin`). */
  restoredShards: number;
  /** Done shards whose pairs were read again from their candidates. */
  replayedShards: number;
  /** The filter was saved at the end, covering this many leading shards (0: not saved). */
  savedShards: number;
}

/** A shard as the filter's label is checked against: its place, its digest, whether it is done. */
export interface FilterShard {
  index: number;
  digest: string;
  done: boolean;
}

interface PairFilterLabel {
  shards: number;
  digest: string;
}

/** Bytes read or written at a time when the filter moves between the root and a shared filter. */
const SLICE_BYTES = 1024 * 1024;

/**
 * Which leading shards the dedup filter holds exactly the pairs of: what it may be saved as. A
 * shard not in the filter ends the prefix, and pairs added after that (or by a shard that then
 * failed) make the filter more than any prefix, so it is not saved.
 */
export class FilterCover {
  private prefix = 0;
  private last: { shard: FilterShard; position: number } | undefined;
  private ended = false;
  private extra = false;
  private pending = false;

  /** `restored`: the leading shards the filter came with (saving it again adds nothing). */
  constructor(private readonly restored: number) {}

  /** A shard's pairs were offered to the filter (its outcome follows). */
  added(): void {
    if (this.ended) this.extra = true;
    this.pending = true;
  }

  holds(shard: FilterShard, position: number): void {
    this.pending = false;
    if (this.ended) return;
    if (shard.index !== position || position !== this.prefix) {
      this.lacks();
      return;
    }
    this.prefix = position + 1;
    this.last = { shard, position };
  }

  lacks(): void {
    if (this.pending) this.extra = true;
    this.pending = false;
    this.ended = true;
  }

  /** The prefix the filter holds exactly, and the digest of its last shard. */
  saveable(): PairFilterLabel | undefined {
    if (this.extra || this.last === undefined || this.prefix <= this.restored) return;
    return { shards: this.prefix, digest: this.last.shard.digest };
  }
}

/**
 * The filter saved after an earlier run's first N shards, when those shards are the same and still
 * done; otherwise undefined, and the filter is rebuilt from the done shards' candidates.
 */
export async function restorePairFilter(
  storage: DatasetStorage,
  shards: readonly FilterShard[],
  reporter: Pick<StageReporter, "warn">,
): Promise<{ filter: GrowingBloomFilter; shards: number } | undefined> {
  const path = layout.pairFilterSnapshot();
  if (!(await storage.exists(path))) return;
  let restored: { filter: GrowingBloomFilter; label: PairFilterLabel };
  try {
    const snapshot = GrowingBloomFilter.fromSnapshot(await storage.read(path));
    restored = { filter: snapshot.filter, label: parseLabel(snapshot.label) };
  } catch (error) {
    reporter.warn(damaged(storage, path, error));
    return;
  }
  if (!labelHolds(restored.label, shards)) return;
  return { filter: restored.filter, shards: restored.label.shards };
}

export async function savePairFilter(
  storage: DatasetStorage,
  bloom: GrowingBloomFilter,
  cover: FilterCover,
): Promise<number> {
  const label = cover.saveable();
  if (label === undefined) return 0;
  // Compact: a filter holding few pairs saves its set bits' positions, not megabytes of zeros.
  const parts = bloom.snapshotParts(JSON.stringify(label), { compact: true });
  await storage.writeAtomicWith(layout.pairFilterSnapshot(), async (localPath) => {
    const file = await open(localPath, "w");
    try {
      // Each writeFile goes on from where the last one ended.
      for (const part of parts) await file.writeFile(part);
    } finally {
      await file.close();
    }
  });
  return label.shards;
}

/**
 * A distributed run, before its extract jobs are queued: the run's shared filter gets the saved
 * one when it holds the leading shards of the plan, read from the root a slice at a time.
 */
export async function restoreSharedPairFilter(run: SharedStageRun): Promise<void> {
  const { storage } = run;
  const path = layout.pairFilterSnapshot();
  const size = (await storage.stat(path))?.bytes;
  if (size === undefined) return;
  let saved: { label: PairFilterLabel; bits: PairFilterBits };
  try {
    let head = await storage.readRange(path, 0, Math.min(size, SLICE_BYTES));
    const headerEnd = snapshotHeaderEnd(head, size);
    if (headerEnd > head.byteLength) head = await storage.readRange(path, 0, headerEnd);
    const layout = snapshotLayout(head, size);
    const read = snapshotBitsReader(layout, (at, length) => storage.readRange(path, at, length));
    saved = { label: parseLabel(layout.label), bits: { series: layout.series, read } };
  } catch (error) {
    run.warn(damaged(storage, path, error));
    return;
  }
  if (!labelHolds(saved.label, await planShards(run, saved.label.shards))) return;
  try {
    await (await sharedFilterOf(run)).restore(saved.bits, saved.label.shards);
  } catch (error) {
    run.warn(damaged(storage, path, error));
  }
}

/**
 * A distributed run without turns (`--dedup-mode parallel`), before its extract jobs are queued:
 * the finished shards of earlier runs offer their pairs first, so that no new shard keeps a pair
 * an earlier crawl kept (with turns, each finished shard replays at its own turn instead).
 */
export async function replayFinishedShards(run: SharedStageRun): Promise<void> {
  const config = (await loadConfig(run.storage, { extract: run.config?.extract ?? {} })).extract;
  if (config.dedupMode !== "parallel") return;
  const filter = await sharedFilterOf(run);
  const restored = await filter.restoredShards();
  for (const entry of run.plan) {
    const plan = entry.plan as ExtractShardPlan;
    if (plan.index < restored) continue;
    if (
      (await new ShardState(run.storage, "extract").findDone(plan.name, plan.digest)) === undefined
    )
      continue;
    await filter.replay(plan.index, await shardPairLanes(run.storage, plan.name));
  }
}

/** A finished shard's pair hashes (HASH_LANES a row), from its candidates. */
export async function shardPairLanes(storage: DatasetStorage, shard: string): Promise<Uint32Array> {
  const rows = await readParquet(storage, layout.candidates(shard), ["url", "text"]);
  const lanes = new Uint32Array(rows.length * HASH_LANES);
  for (const [index, row] of rows.entries()) {
    hashPair(String(row.url), String(row.text), lanes, index * HASH_LANES);
  }
  return lanes;
}

/**
 * A distributed run, once every extract job is over: the shared filter is written to the root
 * when it holds exactly the leading shards, and more of them than it was restored with. Returns
 * the run's dedup state and filter report, for the run report.
 */
export async function saveSharedPairFilter(run: SharedStageRun): Promise<Record<string, unknown>> {
  const filter = await sharedFilterOf(run);
  const dedupState: DedupState = {
    restoredShards: await filter.restoredShards(),
    replayedShards: await filter.replayedShards(),
    savedShards: 0,
  };
  const held = await filter.held();
  const shards = await planShards(run, held?.shards ?? 0);
  const last = shards[(held?.shards ?? 0) - 1];
  if (held !== undefined && last !== undefined && held.shards > dedupState.restoredShards) {
    const label = { shards: held.shards, digest: last.digest };
    if (labelHolds(label, shards)) {
      await writeSnapshot(run.storage, JSON.stringify(label), held.bits);
      dedupState.savedShards = held.shards;
    }
  }
  return { dedupState, bloomFilter: await filter.report() };
}

async function writeSnapshot(
  storage: DatasetStorage,
  label: string,
  bits: PairFilterBits,
): Promise<void> {
  await storage.writeAtomicWith(layout.pairFilterSnapshot(), async (localPath) => {
    const file = await open(localPath, "w");
    try {
      await file.write(snapshotHeader(label, bits.series));
      for (const layer of bits.series.items.keys()) {
        const bytes = seriesLayerBytes(bits.series, layer);
        for (let at = 0; at < bytes; at += SLICE_BYTES) {
          await file.write(await bits.read(layer, at, Math.min(SLICE_BYTES, bytes - at)));
        }
      }
    } finally {
      await file.close();
    }
  });
}

/** The saved filter holds the first `label.shards` shards when they are the same, and done. */
function labelHolds(label: PairFilterLabel, shards: readonly FilterShard[]): boolean {
  const last = shards[label.shards - 1];
  if (label.shards < 1 || last === undefined || last.digest !== label.digest) return false;
  return shards.slice(0, label.shards).every((shard, position) => {
    return shard.index === position && shard.done;
  });
}

function parseLabel(text: string): PairFilterLabel {
  const label = JSON.parse(text) as Partial<PairFilterLabel> | null;
  if (!Number.isSafeInteger(label?.shards) || typeof label?.digest !== "string") {
    throw new Error("the snapshot's label does not name its shards");
  }
  return label as PairFilterLabel;
}

function damaged(storage: DatasetStorage, path: string, error: unknown): string {
  return `${storage.describe(path)}: ${errorMessage(error)}; the dedup filter is rebuilt from the candidate shards`;
}

/** The run's first `count` planned shards with their done state, as a label is checked against. */
async function planShards(run: SharedStageRun, count: number): Promise<FilterShard[]> {
  const state = new ShardState(run.storage, "extract");
  const shards: FilterShard[] = [];
  for (const entry of run.plan.slice(0, Math.max(0, count))) {
    const plan = entry.plan as ExtractShardPlan;
    const done = (await state.findDone(plan.name, plan.digest)) !== undefined;
    shards.push({ index: plan.index, digest: plan.digest, done });
  }
  return shards;
}

async function sharedFilterOf(run: SharedStageRun): Promise<SharedPairFilter> {
  const config = (await loadConfig(run.storage, { extract: run.config?.extract ?? {} })).extract;
  return run.sharedPairFilter({
    capacity: config.bloomCapacity,
    falsePositiveRate: config.bloomFalsePositiveRate,
    redisUrls: config.dedupRedis,
    mode: config.dedupMode,
  });
}
