/**
 * The filter's verdict on one metadata row, for `clipcrawl show`: a pair filter dropped has no
 * row anywhere, so its reason is found again by running the filter's own shard query
 * (filter-shard.ts) on that one row, with the rules the shard was filtered with (its stats file)
 * and the blocklists as they are now.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../config/config-file.js";
import { errorMessage } from "../../errors.js";
import {
  type Blocklists,
  createBlocklistTables,
  dropBlocklistTables,
  emptyBlocklists,
  loadBlocklists,
} from "../../formats/blocklists.js";
import { withGovernanceBlocklists } from "../../formats/governance-blocklists.js";
import type { RecipeReport } from "../../formats/recipes/recipe-plan.js";
import type { RecipeRules } from "../../formats/recipes/recipe-rules.js";
import { findRecipe, parseRecipes } from "../../formats/recipes/recipe-spec.js";
import { registerFilterFunctions } from "../../formats/sql-functions.js";
import { layout } from "../../io/layout.js";
import { LocalStorage } from "../../io/local-storage.js";
import { duckdbConnection, quoteLiteral, writeParquetQuery } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import type { FilterConfig } from "./config.js";
import { filterShard } from "./filter-shard.js";

/** The recipes' per-row rules as the shard's stats recorded them (text, percentile thresholds). */
function recipeRulesOf(report: RecipeReport | null): {
  rules: RecipeRules;
  embedding: string[];
} {
  if (report === null) return { rules: {}, embedding: [] };
  const recipes = parseRecipes(report.recipes);
  const rules: RecipeRules = {};
  const text = findRecipe(recipes, "text");
  if (text !== undefined) rules.text = text.params;
  if (report.clipScoreTop !== null) rules.topPercentThresholds = report.clipScoreTop.thresholds;
  const embedding = recipes
    .map((recipe) => recipe.name)
    .filter((name) => name === "image-clusters" || name === "semdedup");
  return { rules, embedding };
}

export interface RowVerdict {
  /** The drop reason; null when filter would keep the row (or has not run on its shard). */
  reason: string | null;
  /** What could not be told, one line each. */
  notes: string[];
}

/**
 * Why filter drops the row of `key` in the metadata file `metadata` (root-relative). Relative
 * blocklist paths of the filter config are resolved against `cwd`.
 */
export async function filterVerdict(
  storage: DatasetStorage,
  metadata: string,
  key: string,
  cwd: string,
): Promise<RowVerdict> {
  const notes: string[] = [];
  const shard = /(\d{5})\.parquet$/.exec(metadata)?.[1];
  if (shard === undefined) return { reason: null, notes };
  const statsPath = layout.datasetStats(shard);
  if (!(await storage.exists(statsPath))) {
    return { reason: null, notes: [`filter has not run on shard ${shard}`] };
  }
  const stats = JSON.parse(await storage.readText(statsPath)) as {
    config?: FilterConfig;
    recipes?: RecipeReport | null;
  };
  const config = stats.config ?? (await loadConfig(storage)).filter;
  const recipes = recipeRulesOf(stats.recipes ?? null);
  if (recipes.embedding.length > 0) {
    notes.push(
      `${recipes.embedding.join(" and ")} decided over the whole pool and are not recomputed here; a pair they dropped shows as kept`,
    );
  }
  let lists: Blocklists;
  try {
    lists = await loadBlocklists(config, cwd);
  } catch (error) {
    notes.push(
      `the filter's blocklists cannot be read here (${errorMessage(error)}); judged without them`,
    );
    lists = emptyBlocklists();
  }
  lists = await withGovernanceBlocklists(storage, lists);
  const work = await mkdtemp(join(tmpdir(), "clipcrawl-show-"));
  const scratch = new LocalStorage(work);
  const connection = await duckdbConnection();
  try {
    const source = quoteLiteral(await storage.localPath(metadata));
    await writeParquetQuery(
      connection,
      scratch,
      "metadata.parquet",
      `SELECT * FROM read_parquet(${source}) WHERE key = ${quoteLiteral(key)}`,
    );
    await registerFilterFunctions(connection);
    await createBlocklistTables(connection, lists);
    const judged = await filterShard(
      connection,
      scratch,
      { metadata: "metadata.parquet", failures: "failures.parquet", output: "dataset.parquet" },
      config,
      lists,
      { rules: recipes.rules },
    );
    const reason = Object.entries(judged.droppedByReason).find(([, count]) => count > 0)?.[0];
    if (reason === undefined) {
      notes.push(
        `filter would keep it now: shard ${shard} was filtered before it was embedded as it is, or with other blocklists; re-run clipcrawl filter`,
      );
    }
    return { reason: reason ?? null, notes };
  } finally {
    await dropBlocklistTables(connection);
    connection.closeSync();
    await rm(work, { recursive: true, force: true });
  }
}
