/**
 * Why a pair leaves the dataset: the reasons the filter counts, and the one SQL expression that
 * gives each row its reason (NULL: kept). A pair that breaks several rules is counted once,
 * under the first in DROP_REASONS' order: blocklists first (a takedown audit wants every
 * blocklisted pair counted as such, whatever else is wrong with it), then caption and image
 * rules, the CLIP similarity, and the optional score thresholds.
 *
 * The expression reads the columns of the shard's prepared rows (filter-shard.ts): TEXT, WIDTH,
 * HEIGHT (the original image's), similarity, tier, sha256, md5, sha1, URL, row_index, and the
 * scores.
 * Unknown values: a pair whose image size is unknown is not judged by the size rules (nothing to
 * judge by); a pair whose similarity is unknown or NaN is below every threshold; a pair whose
 * score is unknown or NaN cannot pass a score threshold that is set (`score_missing`).
 */
import { BLOCKLIST_TABLES, type Blocklists, DIGEST_KINDS } from "../../formats/blocklists.js";
import type { ScoreColumn } from "../../formats/laion-schema.js";
import type { LanguageTier } from "../../formats/language-tier.js";
import {
  LANGUAGE_TIERS,
  sqlDouble as number,
  type RecipeRules,
  ROW_DROP_REASON_NAMES,
  textRules,
} from "../../formats/recipes/recipe-rules.js";
import type { FilterConfig } from "./config.js";

export { LANGUAGE_TIERS };

export const DROP_REASONS = [
  "failed_to_embed",
  "sha256_blocklisted",
  "md5_blocklisted",
  "sha1_blocklisted",
  "url_blocklisted",
  "domain_blocklisted",
  "caption_too_short",
  "caption_too_long",
  "image_too_small",
  "aspect_ratio",
  "text_too_short",
  "text_too_long",
  "text_too_few_words",
  "text_language",
  "below_similarity_en",
  "below_similarity_multi",
  "below_similarity_nolang",
  "below_top_percent_en",
  "below_top_percent_multi",
  "below_top_percent_nolang",
  "score_missing",
  "punsafe_too_high",
  "pwatermark_too_high",
  "ptoxic_too_high",
  "aesthetic_too_low",
  "image_cluster_off_target",
  "semantic_duplicate",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];
export type { RecipeRules };

interface ScoreRule {
  column: ScoreColumn;
  bound: "max" | "min";
  limit: number | undefined;
  reason: DropReason;
}

function scoreRules(config: FilterConfig): ScoreRule[] {
  return [
    { column: "punsafe", bound: "max", limit: config.maxPunsafe, reason: "punsafe_too_high" },
    {
      column: "pwatermark",
      bound: "max",
      limit: config.maxPwatermark,
      reason: "pwatermark_too_high",
    },
    { column: "ptoxic", bound: "max", limit: config.maxPtoxic, reason: "ptoxic_too_high" },
    {
      column: "AESTHETIC_SCORE",
      bound: "min",
      limit: config.minAestheticScore,
      reason: "aesthetic_too_low",
    },
  ];
}

/**
 * `CASE … END`: the drop reason of a row of the prepared rows, NULL when the pair is kept.
 * `domainHits` names the relation (column `row_index`) of the rows whose domain is blocklisted.
 */
export function dropReasonExpression(
  config: FilterConfig,
  lists: Blocklists,
  domainHits: string,
  recipes: RecipeRules = {},
): string {
  const when: [condition: string, reason: DropReason][] = [];
  for (const kind of DIGEST_KINDS) {
    if (lists[kind].entries.size === 0) continue;
    const { table, column } = BLOCKLIST_TABLES[kind];
    when.push([`lower(${kind}) IN (SELECT ${column} FROM ${table})`, `${kind}_blocklisted`]);
  }
  if (lists.url.entries.size > 0) {
    const { table, column } = BLOCKLIST_TABLES.url;
    when.push([`URL IN (SELECT ${column} FROM ${table})`, "url_blocklisted"]);
  }
  if (lists.domain.entries.size > 0) {
    when.push([`row_index IN (SELECT row_index FROM ${domainHits})`, "domain_blocklisted"]);
  }
  if (config.minCaptionLength > 0) {
    when.push([
      `length(coalesce(TEXT, '')) < ${number(config.minCaptionLength)}`,
      "caption_too_short",
    ]);
  }
  if (config.maxCaptionLength > 0) {
    when.push([`length(TEXT) > ${number(config.maxCaptionLength)}`, "caption_too_long"]);
  }
  const tooSmall: string[] = [];
  if (config.minImageWidth > 0) tooSmall.push(`WIDTH < ${number(config.minImageWidth)}`);
  if (config.minImageHeight > 0) tooSmall.push(`HEIGHT < ${number(config.minImageHeight)}`);
  if (tooSmall.length > 0) when.push([tooSmall.join(" OR "), "image_too_small"]);
  if (config.maxAspectRatio > 0) {
    when.push([
      `least(WIDTH, HEIGHT) > 0 AND greatest(WIDTH, HEIGHT) / least(WIDTH, HEIGHT) > ${number(config.maxAspectRatio)}`,
      "aspect_ratio",
    ]);
  }
  if (recipes.text !== undefined) when.push(...textRules(recipes.text));
  const thresholds: Record<LanguageTier, number> = {
    en: config.minSimilarityEn,
    multi: config.minSimilarityMulti,
    nolang: config.minSimilarityNolang,
  };
  const topPercent = recipes.topPercentThresholds;
  for (const tier of LANGUAGE_TIERS) {
    // DataComp's percentile replaces the fixed cosine; a tier with no scored pair has no cut.
    const threshold = topPercent === undefined ? thresholds[tier] : topPercent[tier];
    const reason: DropReason =
      topPercent === undefined ? `below_similarity_${tier}` : `below_top_percent_${tier}`;
    if (threshold === undefined) continue;
    when.push([
      `tier = '${tier}' AND (similarity IS NULL OR isnan(similarity) OR similarity < ${number(threshold)})`,
      reason,
    ]);
  }
  for (const rule of scoreRules(config)) {
    if (rule.limit === undefined) continue;
    const column = `"${rule.column}"`;
    when.push([`${column} IS NULL OR isnan(${column})`, "score_missing"]);
    const comparison = rule.bound === "max" ? ">" : "<";
    when.push([`${column} ${comparison} ${number(rule.limit)}`, rule.reason]);
  }
  if (recipes.rowDrops === true) {
    for (const reason of ROW_DROP_REASON_NAMES) when.push([`recipe_drop = '${reason}'`, reason]);
  }
  const branches = when.map(([condition, reason]) => `WHEN ${condition} THEN '${reason}'`);
  return `CASE ${branches.join(" ")} ELSE NULL END`;
}
