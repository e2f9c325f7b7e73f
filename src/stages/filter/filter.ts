/**
 * `clipcrawl filter`: the embeddings' metadata → the final dataset in LAION's schema under
 * `<root>/dataset/` (see filter-shard.ts). Embeddings shard NNNNN gives dataset shard NNNNN: the
 * pairs that pass the CLIP similarity threshold of their language tier and every other rule of
 * the `filter` config, and a stats file counting every dropped pair by its reason.
 *
 * Shards run one after another on one DuckDB connection (DuckDB uses every core inside a query;
 * the blocklists are loaded into it once). A shard's outputs are written atomically and its done
 * marker last; a re-run skips shards whose marker matches their digest (inputs, config,
 * blocklist entries). A shard whose input cannot be read fails alone, with one line.
 */
import type { DuckDBConnection } from "@duckdb/node-api";
import { loadConfig } from "../../config/config-file.js";
import { openExistingRoot } from "../../config/dataset-root.js";
import type { FilterConfig } from "../../config/schema.js";
import {
  type Blocklists,
  blocklistsDigest,
  createBlocklistTables,
  describeBadLine,
  dropBlocklistTables,
  loadBlocklists,
} from "../../formats/blocklists.js";
import { withGovernanceBlocklists } from "../../formats/governance-blocklists.js";
import type { LanguageTier } from "../../formats/language-tier.js";
import { registerFilterFunctions } from "../../formats/sql-functions.js";
import { layout } from "../../io/layout.js";
import { LocalStorage } from "../../io/local-storage.js";
import { duckdbConnection } from "../../io/parquet.js";
import type { FileInfo } from "../../io/storage.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import { type FailedShard, runShardLoop } from "../../shard/shard-loop.js";
import { ShardSelection } from "../../shard/shard-selection.js";
import { ShardState } from "../../shard/shard-state.js";
import { DROP_REASONS, type DropReason, LANGUAGE_TIERS } from "./drop-rules.js";
import { type FilteredShard, filterShard } from "./filter-shard.js";
import { filterIdentity, type PlannedFilterShard, planFilterShards } from "./shard-plan.js";

export const FILTER_STAGE = "filter";

export interface FilterOptions {
  /** The dataset root: a directory path, or a LocalStorage. */
  root: string | LocalStorage;
  /** Values that override the root's clipcrawl.json for this run. */
  config?: Partial<FilterConfig>;
  /** Redo every shard even when its done marker matches. */
  overwrite?: boolean;
  /** Only these shards run (names like "00003"); the others are neither run nor counted. */
  shards?: readonly string[];
  reporter?: StageReporter;
  /** Relative blocklist paths are resolved against it (default: the process's). */
  cwd?: string;
}

export interface FilterCounts {
  /** Pairs the shards account for: embedded, and failed to embed. */
  samples: number;
  kept: number;
  dropped: number;
  /** Every dropped pair under exactly one reason (DROP_REASONS' order decides). */
  dropped_by_reason: Record<DropReason, number>;
  kept_by_tier: Record<LanguageTier, number>;
}

export interface FilterShardStats extends FilterCounts {
  shard: string;
  /** The metadata parquet it read. */
  input: string;
  mean_similarity_kept: number | null;
  /** The rules applied (blocklists as their files and entry counts). */
  config: FilterConfig;
  blocklists: { urls: number; domains: number; sha256: number };
  duration: number;
  start_time: number;
  end_time: number;
}

export type FailedFilterShard = FailedShard;

export interface FilterSummary {
  /** True when every shard was written. */
  ok: boolean;
  shards: number;
  shardsWritten: number;
  shardsSkipped: number;
  failedShards: FailedFilterShard[];
  /** Over the shards written in this run. */
  totals: FilterCounts;
  blocklists: { urls: number; domains: number; sha256: number; badLines: number };
  seconds: number;
  samplesPerSecond: number;
}

export async function filter(options: FilterOptions): Promise<FilterSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = typeof options.root === "string" ? new LocalStorage(options.root) : options.root;
  await openExistingRoot(storage);
  const config = (await loadConfig(storage, { filter: options.config ?? {} })).filter;
  // The root's governance lists too: what `clipcrawl remove` took out stays out.
  const lists = await withGovernanceBlocklists(
    storage,
    await loadBlocklists(config, options.cwd ?? process.cwd()),
  );
  const badLines = [...lists.url.badLines, ...lists.domain.badLines, ...lists.sha256.badLines];
  for (const bad of badLines) reporter.warn(describeBadLine(bad));

  const plan = await planFilterShards(storage, filterIdentity(config, blocklistsDigest(lists)));
  const totals = emptyFilterCounts();
  const loop = await runShardLoop({
    stage: FILTER_STAGE,
    shards: plan,
    planned: plan.length,
    selection: ShardSelection.of(options.shards),
    state: new ShardState(storage, FILTER_STAGE),
    overwrite: options.overwrite === true,
    reporter,
    progress: () => ({ counters: { pairs: totals.samples, kept: totals.kept } }),
    open: async () => {
      const connection = await duckdbConnection();
      const close = async () => {
        await dropBlocklistTables(connection);
        connection.closeSync();
      };
      try {
        await registerFilterFunctions(connection);
        await createBlocklistTables(connection, lists);
      } catch (error) {
        await close();
        throw error;
      }
      return {
        run: async (shard: PlannedFilterShard) => {
          const stats = await runShard(connection, storage, shard, config, lists);
          return {
            outputs: await outputInfo(storage, shard.name),
            counts: flatCounts(stats),
            result: stats,
          };
        },
        close,
      };
    },
    written: (stats) => addCounts(totals, stats),
  });

  const seconds = (performance.now() - started) / 1000;
  return {
    ok: loop.failedShards.length === 0,
    shards: loop.shardsTotal,
    shardsWritten: loop.shardsWritten,
    shardsSkipped: loop.shardsSkipped,
    failedShards: loop.failedShards,
    totals,
    blocklists: { ...listSizes(lists), badLines: badLines.length },
    seconds,
    samplesPerSecond: totals.samples / Math.max(seconds, 0.001),
  };
}

async function runShard(
  connection: DuckDBConnection,
  storage: LocalStorage,
  shard: PlannedFilterShard,
  config: FilterConfig,
  lists: Blocklists,
): Promise<FilterShardStats> {
  const startTime = Date.now();
  const filtered = await filterShard(
    connection,
    storage,
    { metadata: shard.metadata, failures: shard.failures, output: layout.datasetShard(shard.name) },
    config,
    lists,
  );
  const endTime = Date.now();
  const stats = shardStats(shard, storage, filtered, config, lists, startTime, endTime);
  await storage.writeAtomic(layout.datasetStats(shard.name), `${JSON.stringify(stats, null, 2)}\n`);
  return stats;
}

function shardStats(
  shard: PlannedFilterShard,
  storage: LocalStorage,
  filtered: FilteredShard,
  config: FilterConfig,
  lists: Blocklists,
  startTime: number,
  endTime: number,
): FilterShardStats {
  return {
    shard: shard.name,
    input: storage.describe(shard.metadata),
    samples: filtered.samples,
    kept: filtered.kept,
    dropped: filtered.dropped,
    dropped_by_reason: filtered.droppedByReason,
    kept_by_tier: filtered.keptByTier,
    mean_similarity_kept: filtered.meanSimilarityKept,
    config,
    blocklists: listSizes(lists),
    duration: (endTime - startTime) / 1000,
    start_time: startTime / 1000,
    end_time: endTime / 1000,
  };
}

function listSizes(lists: Blocklists): FilterShardStats["blocklists"] {
  return {
    urls: lists.url.entries.size,
    domains: lists.domain.entries.size,
    sha256: lists.sha256.entries.size,
  };
}

async function outputInfo(storage: LocalStorage, shard: string): Promise<FileInfo[]> {
  const paths = [layout.datasetShard(shard), layout.datasetStats(shard)];
  const infos = await Promise.all(paths.map((path) => storage.stat(path)));
  return infos.map((info, index) => info ?? { path: paths[index] as string, bytes: -1 });
}

function emptyFilterCounts(): FilterCounts {
  return {
    samples: 0,
    kept: 0,
    dropped: 0,
    dropped_by_reason: Object.fromEntries(DROP_REASONS.map((reason) => [reason, 0])) as Record<
      DropReason,
      number
    >,
    kept_by_tier: Object.fromEntries(LANGUAGE_TIERS.map((tier) => [tier, 0])) as Record<
      LanguageTier,
      number
    >,
  };
}

/** The done marker's counts: one flat record. */
function flatCounts(stats: FilterCounts): Record<string, number> {
  return {
    samples: stats.samples,
    kept: stats.kept,
    dropped: stats.dropped,
    ...stats.dropped_by_reason,
  };
}

function addCounts(total: FilterCounts, add: FilterCounts): void {
  total.samples += add.samples;
  total.kept += add.kept;
  total.dropped += add.dropped;
  for (const reason of DROP_REASONS) {
    total.dropped_by_reason[reason] += add.dropped_by_reason[reason];
  }
  for (const tier of LANGUAGE_TIERS) total.kept_by_tier[tier] += add.kept_by_tier[tier];
}
