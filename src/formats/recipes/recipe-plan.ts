/**
 * The dataset-wide half of the recipes: what can only be decided over the whole pool before any
 * shard is filtered. DataComp's CLIP-score percentile needs every score of a language tier; the
 * image-based filter and SemDeDup need k-means over every image embedding. The outcome is a
 * similarity threshold per tier and, per shard, the rows the embedding recipes drop; the shard
 * query (drop-rules.ts) then judges each row with them like any other rule.
 *
 * Recipes compose as an intersection: each is computed over the whole pool, as DataComp's
 * "image-based ∩ CLIP score" baseline is, and a pair failing several is counted once, under the
 * first reason in the filter's order.
 */
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { isS3Url } from "../../io/s3-storage.js";
import type { DotProducts } from "../../models/dot-products.js";
import type { LanguageTier } from "../language-tier.js";
import type { EmbeddingPool } from "./embedding-pool.js";
import { clusterTargets, readTargetEmbeddings, type TargetEmbeddings } from "./image-clusters.js";
import type { RecipeRules } from "./recipe-rules.js";
import { describeRecipe, findRecipe, type Recipe } from "./recipe-spec.js";

export { ROW_DROP_REASONS, type RowDropReason } from "./recipe-rules.js";

import { semanticDuplicates } from "./semantic-dedup.js";
import {
  type Assignment,
  assignToCentroids,
  sampleRows,
  seededRandom,
  trainSphericalKMeans,
} from "./spherical-kmeans.js";

const OFF_TARGET = 1;
const DUPLICATE = 2;

export interface RecipePool {
  /** DuckDB relation of every pool row with `tier` and `similarity`. */
  tierSimilarity: string;
  /** The image embeddings, shard by shard; required by the embedding recipes. */
  embeddings?: EmbeddingPool;
  /** The target set of `image-clusters`, read and checked against the pool. */
  targets?: TargetEmbeddings;
  /** Folder for scratch files (SemDeDup's buckets). */
  scratchFolder: string;
}

/** What the recipes decided, as the filter's stats record it. */
export interface RecipeReport {
  recipes: string[];
  /** clip-score-top: the score a pair of each tier needs, and how many pairs each tier has. */
  clipScoreTop: {
    percent: number;
    thresholds: Partial<Record<LanguageTier, number>>;
    pairs: Partial<Record<LanguageTier, number>>;
  } | null;
  imageClusters: {
    clusters: number;
    iterations: number;
    targets: number;
    targetClusters: number;
    offTarget: number;
  } | null;
  semdedup: {
    clusters: number;
    iterations: number;
    epsilon: number;
    duplicates: number;
    largestCluster: number;
    buckets: number;
  } | null;
}

export interface RecipeOutcome {
  recipes: readonly Recipe[];
  report: RecipeReport;
  /** Per pool shard, one code a row (0: kept), when an embedding recipe ran. */
  rowDrops: Uint8Array[] | null;
}

/** What planRecipeRules needs of the pool, besides the rows' tiers and similarities. */
export interface RecipeRuleInputs {
  /**
   * The dataset root: scratch files go under its `_state/recipes/`, or for a root on object
   * storage (which the recipes cannot write as files) under the system's temporary folder.
   */
  root: string;
  /** Where a relative `targets=` path of image-clusters is read from. */
  cwd: string;
  tierSimilarity: string;
  embeddings?: EmbeddingPool | undefined;
  /** The digest of the model that embedded the pool, when recorded (read only for image-clusters). */
  modelDigest: () => Promise<string | null>;
}

/**
 * What filter and subset share of running recipes: the user's target embeddings read and
 * checked against the pool, the pool planned, and the SQL rules of the text and percentile
 * recipes. The caller applies `outcome.rowDrops` its own way.
 */
export async function planRecipeRules(
  recipes: readonly Recipe[],
  connection: DuckDBConnection,
  inputs: RecipeRuleInputs,
): Promise<{ outcome: RecipeOutcome; rules: RecipeRules }> {
  const clusters = findRecipe(recipes, "image-clusters");
  const { embeddings } = inputs;
  const targets =
    clusters === undefined || embeddings === undefined
      ? undefined
      : await readTargetEmbeddings(resolve(inputs.cwd, clusters.params.targets), {
          dim: embeddings.dim,
          modelDigest: await inputs.modelDigest(),
        });
  const scratchFolder = isS3Url(inputs.root)
    ? join(tmpdir(), "clipcrawl-recipes")
    : join(inputs.root, "_state", "recipes");
  await mkdir(scratchFolder, { recursive: true });
  const outcome = await planRecipes(
    recipes,
    connection,
    {
      tierSimilarity: inputs.tierSimilarity,
      ...(embeddings === undefined ? {} : { embeddings }),
      ...(targets === undefined ? {} : { targets }),
      scratchFolder,
    },
    describeRecipe,
  );
  const rules: RecipeRules = {};
  const text = findRecipe(recipes, "text");
  if (text !== undefined) rules.text = text.params;
  if (outcome.report.clipScoreTop !== null) {
    rules.topPercentThresholds = outcome.report.clipScoreTop.thresholds;
  }
  return { outcome, rules };
}

export async function planRecipes(
  recipes: readonly Recipe[],
  connection: DuckDBConnection,
  pool: RecipePool,
  describe: (recipe: Recipe) => string,
): Promise<RecipeOutcome> {
  const report: RecipeReport = {
    recipes: recipes.map(describe),
    clipScoreTop: null,
    imageClusters: null,
    semdedup: null,
  };
  const clipScore = findRecipe(recipes, "clip-score-top");
  if (clipScore !== undefined) {
    report.clipScoreTop = {
      percent: clipScore.params.percent,
      ...(await tierThresholds(connection, pool.tierSimilarity, clipScore.params.percent / 100)),
    };
  }
  const imageClusters = findRecipe(recipes, "image-clusters");
  const semdedup = findRecipe(recipes, "semdedup");
  if (imageClusters === undefined && semdedup === undefined) {
    return { recipes, report, rowDrops: null };
  }
  const embeddings = pool.embeddings as EmbeddingPool;
  const rowDrops = embeddings.shardRows.map((rows) => new Uint8Array(rows));
  // ONNX Runtime loads only when an embedding recipe runs.
  const { DotProducts: Products } = await import("../../models/dot-products.js");
  const dot: DotProducts = await Products.open();
  try {
    if (imageClusters !== undefined) {
      const { params } = imageClusters;
      const kmeans = await clusterPool(embeddings, params, dot);
      const targets = pool.targets as TargetEmbeddings;
      const wanted = await clusterTargets(targets, kmeans.centroids, kmeans.clusters, dot);
      let offTarget = 0;
      kmeans.assignment.forEach((shard, index) => {
        const drops = rowDrops[index] as Uint8Array;
        shard.cluster.forEach((cluster, row) => {
          if (!wanted.has(cluster)) {
            drops[row] = OFF_TARGET;
            offTarget++;
          }
        });
      });
      report.imageClusters = {
        clusters: kmeans.clusters,
        iterations: kmeans.iterations,
        targets: targets.rows,
        targetClusters: wanted.size,
        offTarget,
      };
    }
    if (semdedup !== undefined) {
      const { params } = semdedup;
      const kmeans = await clusterPool(embeddings, params, dot);
      const found = await semanticDuplicates(
        embeddings,
        kmeans.assignment,
        kmeans.clusters,
        { epsilon: params.epsilon, memoryMb: params.memoryMb, scratchFolder: pool.scratchFolder },
        dot,
      );
      found.removed.forEach((removed, index) => {
        const drops = rowDrops[index] as Uint8Array;
        removed.forEach((flag, row) => {
          if (flag === 1 && drops[row] === 0) drops[row] = DUPLICATE;
        });
      });
      report.semdedup = {
        clusters: kmeans.clusters,
        iterations: kmeans.iterations,
        epsilon: params.epsilon,
        duplicates: found.duplicates,
        largestCluster: found.largestCluster,
        buckets: found.buckets,
      };
    }
  } finally {
    await dot.close();
  }
  return { recipes, report, rowDrops };
}

/** The digest of one shard's row drops, for its done marker. */
export function rowDropsDigest(drops: Uint8Array | undefined): string {
  if (drops === undefined) return "";
  return createHash("sha256").update(drops).digest("hex");
}

/**
 * DataComp's threshold for the top X %: the score at position ⌊N·X⌋ (from 0) of the tier's N
 * scores sorted in descending order; a pair is kept when its score is at least that. Pairs with
 * no score (NULL, NaN) are not among the N.
 */
async function tierThresholds(
  connection: DuckDBConnection,
  relation: string,
  fraction: number,
): Promise<{
  thresholds: Partial<Record<LanguageTier, number>>;
  pairs: Partial<Record<LanguageTier, number>>;
}> {
  const reader = await connection.runAndReadAll(
    `SELECT tier, similarity, n FROM (
       SELECT tier, similarity,
         row_number() OVER (PARTITION BY tier ORDER BY similarity DESC) AS position,
         count(*) OVER (PARTITION BY tier) AS n
       FROM (SELECT tier, CAST(similarity AS DOUBLE) AS similarity FROM ${relation})
       WHERE similarity IS NOT NULL AND NOT isnan(similarity))
     WHERE position = least(floor(n * ${JSON.stringify(fraction)}), n - 1) + 1
     ORDER BY tier`,
  );
  const thresholds: Partial<Record<LanguageTier, number>> = {};
  const pairs: Partial<Record<LanguageTier, number>> = {};
  for (const row of reader.getRowObjects()) {
    const tier = String(row.tier) as LanguageTier;
    thresholds[tier] = Number(row.similarity);
    pairs[tier] = Number(row.n);
  }
  return { thresholds, pairs };
}

interface PoolClusters {
  centroids: Float32Array;
  clusters: number;
  iterations: number;
  assignment: Assignment[];
}

/** k-means on a sample of the pool, then every row of the pool assigned to its centroid. */
async function clusterPool(
  pool: EmbeddingPool,
  params: { clusters: number; sample: number; iterations: number; seed: number },
  dot: DotProducts,
): Promise<PoolClusters> {
  const random = seededRandom(params.seed);
  const chosen = sampleRows(pool.size, params.sample, random);
  const sample = await readRows(pool, chosen);
  const trained = await trainSphericalKMeans(sample, chosen.length, pool.dim, params, random, dot);
  const assignment: Assignment[] = [];
  for (let shard = 0; shard < pool.shards.length; shard++) {
    const rows = pool.shardRows[shard] as number;
    const cluster = new Int32Array(rows);
    const similarity = new Float32Array(rows);
    for await (const block of pool.blocks(shard)) {
      const assigned = await assignToCentroids(
        block.values,
        block.rows,
        trained.centroids,
        trained.clusters,
        pool.dim,
        dot,
      );
      cluster.set(assigned.cluster, block.first);
      similarity.set(assigned.similarity, block.first);
    }
    assignment.push({ cluster, similarity });
  }
  return {
    centroids: trained.centroids,
    clusters: trained.clusters,
    iterations: trained.iterations,
    assignment,
  };
}

/** The vectors of the pool rows `chosen` (ascending pool positions), in that order. */
async function readRows(pool: EmbeddingPool, chosen: Int32Array): Promise<Float32Array> {
  const dim = pool.dim;
  const values = new Float32Array(chosen.length * dim);
  let next = 0;
  let shardStart = 0;
  for (let shard = 0; shard < pool.shards.length && next < chosen.length; shard++) {
    const shardEnd = shardStart + (pool.shardRows[shard] as number);
    if ((chosen[next] as number) < shardEnd) {
      for await (const block of pool.blocks(shard)) {
        const blockEnd = shardStart + block.first + block.rows;
        while (next < chosen.length && (chosen[next] as number) < blockEnd) {
          const row = (chosen[next] as number) - shardStart - block.first;
          values.set(block.values.subarray(row * dim, (row + 1) * dim), next * dim);
          next++;
        }
        if (next >= chosen.length || (chosen[next] as number) >= shardEnd) break;
      }
    }
    shardStart = shardEnd;
  }
  return values;
}
