/**
 * The recipes over a finished dataset, for `subset --recipe`: the pool is the dataset's rows
 * (the pairs filter kept), their image embeddings found through their keys in the embedding
 * metadata of the same shard number (filter keeps metadata NNNNN's pairs in dataset NNNNN).
 * Gives the keys the recipes drop, each with its reason.
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { ClipcrawlError } from "../../errors.js";
import { EmbeddingPool, type EmbeddingShard } from "../../formats/recipes/embedding-pool.js";
import {
  planRecipeRules,
  type RecipeReport,
  ROW_DROP_REASONS,
} from "../../formats/recipes/recipe-plan.js";
import { recipeReasonExpression } from "../../formats/recipes/recipe-rules.js";
import type { Recipe } from "../../formats/recipes/recipe-spec.js";
import { layout } from "../../io/layout.js";
import { quoteLiteral } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";

export interface DatasetRecipeDrops {
  report: RecipeReport;
  /** Every dropped row's key and reason. */
  dropped: { key: string; reason: string }[];
  droppedByReason: Record<string, number>;
}

/** Dataset shards by their local path and root-relative path (dataset/NNNNN.parquet). */
export interface DatasetShardFile {
  path: string;
  localPath: string;
}

const DATASET_SHARD = /(\d{5})\.parquet$/;

export async function datasetRecipeDrops(
  storage: DatasetStorage,
  shards: readonly DatasetShardFile[],
  recipes: readonly Recipe[],
  connection: DuckDBConnection,
  cwd: string,
): Promise<DatasetRecipeDrops> {
  const files = shards.map((shard) => quoteLiteral(shard.localPath)).join(", ");
  const tier = `CASE WHEN LANGUAGE = 'en' THEN 'en' WHEN coalesce(LANGUAGE, '') = '' THEN 'nolang' ELSE 'multi' END`;
  const rows = `(SELECT *, ${tier} AS tier, filename AS __file, file_row_number AS __row FROM read_parquet([${files}], filename = true, file_row_number = true))`;
  const needsEmbeddings = recipes.some(
    (recipe) => recipe.name === "image-clusters" || recipe.name === "semdedup",
  );
  const matched = needsEmbeddings ? await embeddingRows(storage, shards, connection) : undefined;
  const embeddings = matched === undefined ? undefined : await EmbeddingPool.open(matched.pool);
  const { outcome, rules } = await planRecipeRules(recipes, connection, {
    root: storage.root,
    cwd,
    tierSimilarity: rows,
    embeddings,
    modelDigest: async () => null,
  });
  let judged = rows;
  if (outcome.rowDrops !== null && matched !== undefined) {
    rules.rowDrops = true;
    await connection.run(
      "CREATE OR REPLACE TEMP TABLE recipe_row_drops (key VARCHAR, reason VARCHAR)",
    );
    const appender = await connection.createAppender("recipe_row_drops");
    outcome.rowDrops.forEach((codes, shard) => {
      const keys = matched.keys[shard] as string[];
      codes.forEach((code, position) => {
        if (code === 0) return;
        appender.appendVarchar(keys[position] as string);
        appender.appendVarchar(ROW_DROP_REASONS[code] ?? "");
        appender.endRow();
      });
    });
    appender.closeSync();
    judged = `(SELECT r.*, d.reason AS recipe_drop FROM ${rows} r LEFT JOIN recipe_row_drops d USING (key))`;
  }
  const reader = await connection.runAndReadAll(
    `SELECT key, reason FROM (SELECT key, ${recipeReasonExpression(rules)} AS reason FROM ${judged}) WHERE reason IS NOT NULL`,
  );
  const dropped: { key: string; reason: string }[] = [];
  const droppedByReason: Record<string, number> = {};
  for (const [key, reason] of reader.getRows() as [string, string][]) {
    dropped.push({ key, reason });
    droppedByReason[reason] = (droppedByReason[reason] ?? 0) + 1;
  }
  await connection.run("DROP TABLE IF EXISTS recipe_row_drops");
  return { report: outcome.report, dropped, droppedByReason };
}

/**
 * Each dataset shard's rows in the embedding matrix of its metadata shard, by key. A dataset
 * row without an embedding row stops the recipe with one line.
 */
async function embeddingRows(
  storage: DatasetStorage,
  shards: readonly DatasetShardFile[],
  connection: DuckDBConnection,
): Promise<{ pool: EmbeddingShard[]; keys: string[][] }> {
  const pool: EmbeddingShard[] = [];
  const keys: string[][] = [];
  for (const shard of shards) {
    const name = DATASET_SHARD.exec(shard.path)?.[1];
    const metadata = name === undefined ? undefined : layout.embeddingMetadata(name);
    const matrix = name === undefined ? undefined : layout.imageEmbeddings(name);
    if (
      metadata === undefined ||
      matrix === undefined ||
      !(await storage.exists(metadata)) ||
      !(await storage.exists(matrix))
    ) {
      throw new ClipcrawlError(
        "CC_RECIPE_EMBEDDINGS",
        `${storage.describe(shard.path)}: no image embeddings for this shard (${matrix ?? "embeddings/img_emb/"}); image-clusters and semdedup need them`,
      );
    }
    const reader = await connection.runAndReadAll(
      `SELECT d.key, m.file_row_number AS row FROM read_parquet(${quoteLiteral(shard.localPath)}) d
       LEFT JOIN read_parquet(${quoteLiteral(await storage.localPath(metadata))}, file_row_number = true) m USING (key)
       ORDER BY m.file_row_number NULLS FIRST`,
    );
    const found = reader.getRows() as [string, bigint | number | null][];
    const missing = found.find(([, row]) => row === null);
    if (missing !== undefined) {
      throw new ClipcrawlError(
        "CC_RECIPE_EMBEDDINGS",
        `${storage.describe(shard.path)}: key ${missing[0]} is not in ${storage.describe(metadata)}; image-clusters and semdedup need each row's image embedding`,
      );
    }
    pool.push({
      name: name as string,
      path: await storage.localPath(matrix),
      describe: storage.describe(matrix),
      rows: Int32Array.from(found, ([, row]) => Number(row)),
    });
    keys.push(found.map(([key]) => key));
  }
  return { pool, keys };
}
