import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError } from "../../errors.js";
import { EmbeddingPool } from "../../formats/recipes/embedding-pool.js";
import {
  planRecipeRules,
  type RecipeReport,
  rowDropsDigest,
} from "../../formats/recipes/recipe-plan.js";
import type { Recipe } from "../../formats/recipes/recipe-spec.js";
import { layout } from "../../io/layout.js";
import { quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { columnNames, prepareRows, type ShardRecipes } from "./filter-shard.js";

const METADATA_SHARD = /^metadata_(\d{5})\.parquet$/;

export interface FilterRecipes {
  report: RecipeReport;
  /** The recipes' rules and drops for one shard. */
  forShard(name: string): ShardRecipes;
  /** What the shard's verdicts depend on besides the config: for its done marker. */
  digest(name: string): string;
}

export async function prepareFilterRecipes(
  storage: DatasetStorage,
  recipes: readonly Recipe[],
  connection: DuckDBConnection,
  cwd: string,
): Promise<FilterRecipes | null> {
  if (recipes.length === 0) return null;
  const names = (await storage.list(layout.embeddingMetadataFolder()))
    .map((name) => METADATA_SHARD.exec(name)?.[1])
    .filter((name): name is string => name !== undefined)
    .sort();
  const metadata = await Promise.all(
    names.map((name) => storage.localPath(layout.embeddingMetadata(name))),
  );
  const source = `read_parquet([${metadata.map(quoteLiteral).join(", ")}], union_by_name = true, file_row_number = true)`;
  const tierSimilarity =
    names.length === 0
      ? "(SELECT NULL::VARCHAR AS tier, NULL::DOUBLE AS similarity WHERE false)"
      : `(${prepareRows(source, await columnNames(connection, source))})`;

  const needsEmbeddings = recipes.some(
    (recipe) => recipe.name === "image-clusters" || recipe.name === "semdedup",
  );
  const embeddings = needsEmbeddings ? await openPool(storage, names) : undefined;
  const { outcome, rules } = await planRecipeRules(recipes, connection, {
    root: storage.root,
    cwd,
    tierSimilarity,
    embeddings,
    modelDigest: () => datasetModelDigest(storage, names),
  });
  if (outcome.rowDrops !== null) rules.rowDrops = true;
  const dropsOf = (name: string) => {
    const index = names.indexOf(name);
    return index < 0 ? undefined : (outcome.rowDrops?.[index] ?? undefined);
  };
  const ruleDigest = JSON.stringify({ recipes: outcome.report.recipes, rules });
  return {
    report: outcome.report,
    forShard: (name) => {
      const rowDrops = dropsOf(name);
      return rowDrops === undefined ? { rules } : { rules, rowDrops };
    },
    digest: (name) => `${ruleDigest}\0${rowDropsDigest(dropsOf(name))}`,
  };
}

async function openPool(storage: DatasetStorage, names: readonly string[]): Promise<EmbeddingPool> {
  const shards = [];
  for (const name of names) {
    const path = layout.imageEmbeddings(name);
    if (!(await storage.exists(path))) {
      throw new ClipcrawlError(
        "CC_RECIPE_EMBEDDINGS",
        `${storage.describe(path)}: missing; image-clusters and semdedup need every shard's image embeddings`,
      );
    }
    shards.push({ name, path: await storage.localPath(path), describe: storage.describe(path) });
  }
  return EmbeddingPool.open(shards);
}

/** The model embed recorded for the shards (its stats' model digest), or null. */
async function datasetModelDigest(
  storage: DatasetStorage,
  names: readonly string[],
): Promise<string | null> {
  for (const name of names) {
    try {
      const stats = JSON.parse(await storage.readText(layout.embeddingStats(name))) as {
        model?: { digest?: unknown };
      };
      if (typeof stats.model?.digest === "string") return stats.model.digest;
    } catch {
      // A shard embedded elsewhere has no stats; another may.
    }
  }
  return null;
}
