/**
 * The recipes' rules as SQL over prepared rows (TEXT, LANGUAGE, similarity, tier, and
 * recipe_drop for the rows the embedding recipes drop): DataComp's caption rules, the
 * percentile thresholds, and the reasons they give. The filter's shard query
 * (src/stages/filter/drop-rules.ts) puts them among its own rules; `subset --recipe` uses them
 * alone.
 */
import type { LanguageTier } from "../language-tier.js";
import type { RecipeParams } from "./recipe-spec.js";

/** Why the embedding recipes drop a row, by the code their per-row arrays hold. */
export const ROW_DROP_REASONS = ["", "image_cluster_off_target", "semantic_duplicate"] as const;
export type RowDropReason = Exclude<(typeof ROW_DROP_REASONS)[number], "">;

export const LANGUAGE_TIERS: readonly LanguageTier[] = ["en", "multi", "nolang"];

/** The reasons the embedding recipes give (recipe_drop's values). */
export const ROW_DROP_REASON_NAMES = ROW_DROP_REASONS.filter(
  (reason): reason is RowDropReason => reason !== "",
);

/** Every reason a recipe drops a pair for. */
export type RecipeDropReason =
  | "text_too_short"
  | "text_too_long"
  | "text_too_few_words"
  | "text_language"
  | `below_top_percent_${LanguageTier}`
  | RowDropReason;

/** What the recipes add to the shard query (recipes/: text rules, percentile thresholds, drops). */
export interface RecipeRules {
  text?: RecipeParams<"text">;
  /** clip-score-top: the score each tier needs, in place of the fixed similarity thresholds. */
  topPercentThresholds?: Partial<Record<LanguageTier, number>>;
  /** The prepared rows carry `recipe_drop`: the embedding recipes' reason, NULL when kept. */
  rowDrops?: boolean;
}

/**
 * Python's str.split() separators (DataComp counts words with it): RE2's \s is ASCII only, so the
 * other Unicode spaces are listed.
 */
const WORD =
  "[^\\s\\x{0b}\\x{1c}-\\x{1f}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}]+";

/**
 * `CASE … END` over the recipes' rules alone (text, percentile, embedding drops), for rows with
 * TEXT, LANGUAGE, similarity, tier and, when `rowDrops`, recipe_drop: `subset --recipe`, which
 * judges dataset rows the filter has already judged by its other rules.
 */
export function recipeReasonExpression(recipes: RecipeRules): string {
  const when: [string, RecipeDropReason][] = [];
  if (recipes.text !== undefined) when.push(...textRules(recipes.text));
  for (const tier of LANGUAGE_TIERS) {
    const threshold = recipes.topPercentThresholds?.[tier];
    if (threshold === undefined) continue;
    when.push([
      `tier = '${tier}' AND (similarity IS NULL OR isnan(similarity) OR similarity < ${sqlDouble(threshold)})`,
      `below_top_percent_${tier}`,
    ]);
  }
  if (recipes.rowDrops === true) {
    for (const reason of ROW_DROP_REASON_NAMES) when.push([`recipe_drop = '${reason}'`, reason]);
  }
  if (when.length === 0) return "CAST(NULL AS VARCHAR)";
  const branches = when.map(([condition, reason]) => `WHEN ${condition} THEN '${reason}'`);
  return `CASE ${branches.join(" ")} ELSE NULL END`;
}

/** DataComp basic's caption rules: characters (code points), words, language. */
export function textRules(text: RecipeParams<"text">): [string, RecipeDropReason][] {
  const rules: [string, RecipeDropReason][] = [];
  if (text.minChars > 0) {
    rules.push([`length(coalesce(TEXT, '')) < ${sqlDouble(text.minChars)}`, "text_too_short"]);
  }
  if (text.maxChars > 0) {
    rules.push([`length(coalesce(TEXT, '')) > ${sqlDouble(text.maxChars)}`, "text_too_long"]);
  }
  if (text.minWords > 0) {
    rules.push([
      `len(regexp_extract_all(coalesce(TEXT, ''), '${WORD}')) < ${sqlDouble(text.minWords)}`,
      "text_too_few_words",
    ]);
  }
  if (text.languages !== "any") {
    const codes = text.languages.split("+").map((code) => `'${code}'`);
    rules.push([`coalesce(LANGUAGE, '') NOT IN (${codes.join(", ")})`, "text_language"]);
  }
  return rules;
}

/**
 * A number as a SQL double, exactly: from a string, which DuckDB parses correctly rounded (a
 * long decimal literal would be read as a DECIMAL and divided, which can miss by one ulp and
 * move a percentile threshold off the score it was taken from).
 */
export function sqlDouble(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
  return `CAST('${JSON.stringify(value)}' AS DOUBLE)`;
}
