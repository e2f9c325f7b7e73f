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
import {
  type Blocklists,
  blocklistBadLines,
  blocklistsDigest,
  createBlocklistTables,
  describeBadLine,
  dropBlocklistTables,
  loadBlocklists,
} from "../../formats/blocklists.js";
import { withGovernanceBlocklists } from "../../formats/governance-blocklists.js";
import type { LanguageTier } from "../../formats/language-tier.js";
import type { RecipeReport } from "../../formats/recipes/recipe-plan.js";
import { parseRecipes } from "../../formats/recipes/recipe-spec.js";
import { registerFilterFunctions } from "../../formats/sql-functions.js";
import { outputInfo } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import { duckdbConnection } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import { type FailedShard, runShardLoop } from "../../shard/shard-loop.js";
import { ShardSelection, unplannedShardError } from "../../shard/shard-selection.js";
import { ShardState } from "../../shard/shard-state.js";
import type { StageSummary } from "../../shard/stage-definition.js";
import type { FilterConfig } from "./config.js";
import { DROP_REASONS, type DropReason, LANGUAGE_TIERS } from "./drop-rules.js";
import { type FilterRecipes, prepareFilterRecipes } from "./filter-recipes.js";
import { type FilteredShard, filterShard, type ShardRecipes } from "./filter-shard.js";
import { filterIdentity, type PlannedFilterShard, planFilterShards } from "./shard-plan.js";

export const FILTER_STAGE = "filter";

export interface FilterOptions {
  /** The dataset root: a directory path, an s3:// URL, or a storage. */
  root: string | DatasetStorage;
  /** Values that override the root's clipcrawl.json for this run. */
  config?: Partial<FilterConfig>;
  /** Redo every shard even when its done marker matches. */
  overwrite?: boolean;
  /** Only these shards run (names like "00003"); the others are neither run nor counted. */
  shards?: readonly string[];
  /** Redo these shards (names like "00002") even when their done markers match. */
  redo?: readonly string[];
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

/** Entries of each blocklist (the configured lists and the root's governance lists merged). */
export interface BlocklistSizes {
  urls: number;
  domains: number;
  sha256: number;
  md5: number;
  sha1: number;
}

export interface FilterShardStats extends FilterCounts {
  shard: string;
  /** The metadata parquet it read. */
  input: string;
  mean_similarity_kept: number | null;
  /** The rules applied (blocklists as their files and entry counts). */
  config: FilterConfig;
  /** What the recipes decided over the whole pool; null without recipes. */
  recipes: RecipeReport | null;
  blocklists: BlocklistSizes;
  duration: number;
  start_time: number;
  end_time: number;
}

export type FailedFilterShard = FailedShard;

/** `samples` counts the pairs read, `outputs` those kept. */
export interface FilterSummary extends StageSummary {
  /** True when every shard was written. */
  ok: boolean;
  failedShards: FailedFilterShard[];
  /** Over the shards written in this run. */
  totals: FilterCounts;
  blocklists: BlocklistSizes & { badLines: number };
  /** What the recipes decided over the whole pool; null without recipes. */
  recipes: RecipeReport | null;
  seconds: number;
  samplesPerSecond: number;
}

export async function filter(options: FilterOptions): Promise<FilterSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  await openExistingRoot(storage);
  const config = (await loadConfig(storage, { filter: options.config ?? {} })).filter;
  const recipes = parseRecipes(config.recipe);
  // The root's governance lists too: what `clipcrawl remove` took out stays out.
  const lists = await withGovernanceBlocklists(
    storage,
    await loadBlocklists(config, options.cwd ?? process.cwd()),
  );
  const badLines = blocklistBadLines(lists);
  for (const bad of badLines) reporter.warn(describeBadLine(bad));

  const shardRecipes = await withConnection((connection) =>
    prepareFilterRecipes(storage, recipes, connection, options.cwd ?? process.cwd()),
  );
  const plan = await planFilterShards(
    storage,
    filterIdentity(config, blocklistsDigest(lists)),
    options.shards,
    shardRecipes?.digest,
  );
  const totals = emptyFilterCounts();
  const state = new ShardState(storage, FILTER_STAGE, { redo: options.redo });
  const loop = await runShardLoop({
    stage: FILTER_STAGE,
    shards: plan,
    planned: plan.length,
    selection: ShardSelection.of(options.shards),
    state,
    overwrite: options.overwrite === true,
    reporter,
    progress: () => ({
      samples: totals.samples,
      counters: { pairs: totals.samples, kept: totals.kept },
    }),
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
          const stats = await writeFilterShard(
            connection,
            storage,
            shard,
            config,
            lists,
            shardRecipes,
          );
          return {
            outputs: await outputInfo(storage, [
              layout.datasetShard(shard.name),
              layout.datasetStats(shard.name),
            ]),
            counts: flatCounts(stats),
            samples: stats.samples,
            passedOn: stats.kept,
            result: stats,
          };
        },
        close,
      };
    },
    written: (stats) => addCounts(totals, stats),
  });

  // A --redo name the plan never offered: a typo, or a shard whose input is gone.
  const redoUnplanned = options.overwrite === true ? [] : state.redoNotPlanned();
  const failedShards = [
    ...loop.failedShards,
    ...redoUnplanned.map((shard) => ({
      shard,
      error: unplannedShardError(FILTER_STAGE, plan.length),
    })),
  ];
  const seconds = (performance.now() - started) / 1000;
  return {
    ok: failedShards.length === 0,
    shards: loop.shardsTotal,
    shardsWritten: loop.shardsWritten,
    shardsSkipped: loop.shardsSkipped,
    failedShards,
    samples: totals.samples,
    outputs: totals.kept,
    totals,
    blocklists: { ...listSizes(lists), badLines: badLines.length },
    recipes: shardRecipes?.report ?? null,
    seconds,
    samplesPerSecond: totals.samples / Math.max(seconds, 0.001),
  };
}

/** Runs `use` on a DuckDB connection of its own, closed afterwards. */
async function withConnection<T>(use: (connection: DuckDBConnection) => Promise<T>): Promise<T> {
  const connection = await duckdbConnection();
  try {
    return await use(connection);
  } finally {
    connection.closeSync();
  }
}

/** Filters one shard and writes its dataset file and stats. */
async function writeFilterShard(
  connection: DuckDBConnection,
  storage: DatasetStorage,
  shard: PlannedFilterShard,
  config: FilterConfig,
  lists: Blocklists,
  recipes: FilterRecipes | null,
): Promise<FilterShardStats> {
  const startTime = Date.now();
  const shardRecipes: ShardRecipes = recipes?.forShard(shard.name) ?? { rules: {} };
  const filtered = await filterShard(
    connection,
    storage,
    { metadata: shard.metadata, failures: shard.failures, output: layout.datasetShard(shard.name) },
    config,
    lists,
    shardRecipes,
  );
  const endTime = Date.now();
  const stats = shardStats(shard, storage, filtered, config, lists, startTime, endTime);
  stats.recipes = recipes?.report ?? null;
  await storage.writeAtomic(layout.datasetStats(shard.name), `${JSON.stringify(stats, null, 2)}\n`);
  return stats;
}

function shardStats(
  shard: PlannedFilterShard,
  storage: DatasetStorage,
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
    recipes: null,
    blocklists: listSizes(lists),
    duration: (endTime - startTime) / 1000,
    start_time: startTime / 1000,
    end_time: endTime / 1000,
  };
}

function listSizes(lists: Blocklists): BlocklistSizes {
  return {
    urls: lists.url.entries.size,
    domains: lists.domain.entries.size,
    sha256: lists.sha256.entries.size,
    md5: lists.md5.entries.size,
    sha1: lists.sha1.entries.size,
  };
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
