/**
 * The recipes `filter --recipe` and `subset --recipe` apply, and how a recipe is written:
 * `NAME[:PARAM=VALUE]...`, several joined by commas (`clip-score-top:percent=30,semdedup`), the
 * same in `filter.recipe` of clipcrawl.json and on the command line. Each recipe follows a
 * published definition (docs/recipes.md): DataComp's baselines (arXiv 2304.14108) or SemDeDup
 * (arXiv 2303.09540). Its parameters are a zod schema that gives defaults and the message for a
 * bad value; an unknown name lists the known ones.
 */
import * as z from "zod";
import { ClipcrawlError } from "../../errors.js";

const count = (fallback: number) => z.coerce.number().int().min(1).default(fallback);
const languageList = z
  .string()
  .regex(/^(any|[a-z]{2,3}(\+[a-z]{2,3})*)$/, "expected language codes joined by + (en+de), or any")
  .default("en");

/** The parameters of each recipe, with DataComp's or SemDeDup's values as defaults. */
export const RECIPE_PARAMS = {
  /** DataComp "CLIP score, top X %", per language tier. */
  "clip-score-top": z.object({ percent: z.coerce.number().gt(0).max(100).default(30) }).strict(),
  /** DataComp basic's caption rules: > 5 characters, > 2 words, English. */
  text: z
    .object({
      minChars: z.coerce.number().int().min(0).default(6),
      maxChars: z.coerce.number().int().min(0).default(0),
      minWords: z.coerce.number().int().min(0).default(3),
      languages: languageList,
    })
    .strict(),
  /** DataComp image-based: k-means clusters nearest to a target set of embeddings. */
  "image-clusters": z
    .object({
      targets: z.string().min(1, "give the target embeddings: targets=FILE.npy"),
      clusters: count(1000),
      sample: count(100_000),
      iterations: count(20),
      seed: z.coerce.number().int().min(0).default(0),
    })
    .strict(),
  /** SemDeDup: within k-means clusters, drop all but one of each group closer than epsilon. */
  semdedup: z
    .object({
      epsilon: z.coerce.number().gt(0).lt(1).default(0.05),
      clusters: count(1000),
      sample: count(100_000),
      iterations: count(20),
      seed: z.coerce.number().int().min(0).default(0),
      memoryMb: z.coerce.number().gt(0).default(1024),
    })
    .strict(),
} as const;

export type RecipeName = keyof typeof RECIPE_PARAMS;
export const RECIPE_NAMES = Object.keys(RECIPE_PARAMS) as RecipeName[];

export type RecipeParams<Name extends RecipeName> = z.infer<(typeof RECIPE_PARAMS)[Name]>;

/** One recipe with its parameters resolved (defaults filled in). */
export type Recipe = {
  [Name in RecipeName]: { name: Name; params: RecipeParams<Name> };
}[RecipeName];

/** The recipes of a spec list, parsed and checked; each name once, in the order given. */
export function parseRecipes(specs: readonly string[]): Recipe[] {
  const recipes: Recipe[] = [];
  for (const spec of specs.flatMap((entry) => entry.split(","))) {
    if (spec.trim() === "") continue;
    const recipe = parseRecipe(spec.trim());
    if (recipes.some((other) => other.name === recipe.name)) {
      throw new ClipcrawlError("CC_RECIPE", `recipe ${recipe.name} is given twice`);
    }
    recipes.push(recipe);
  }
  return recipes;
}

function parseRecipe(spec: string): Recipe {
  const [name = "", ...pairs] = spec.split(":");
  if (!Object.hasOwn(RECIPE_PARAMS, name)) {
    throw new ClipcrawlError(
      "CC_UNKNOWN_RECIPE",
      `unknown recipe "${name}"; known recipes: ${RECIPE_NAMES.join(", ")}`,
    );
  }
  const raw: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf("=");
    if (equals <= 0) {
      throw new ClipcrawlError(
        "CC_RECIPE",
        `recipe ${name}: "${pair}" is not PARAM=VALUE (write ${name}:param=value:param=value)`,
      );
    }
    raw[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  const parsed = RECIPE_PARAMS[name as RecipeName].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = issue?.path.join(".") || "";
    const known = Object.keys(RECIPE_PARAMS[name as RecipeName].shape).join(", ");
    const detail =
      issue?.code === "unrecognized_keys"
        ? `unknown parameter ${issue.keys.join(", ")} (its parameters: ${known})`
        : `${key}=${raw[key] ?? ""}: ${issue?.message ?? "bad value"}`;
    throw new ClipcrawlError("CC_RECIPE", `recipe ${name}: ${detail}`);
  }
  return { name, params: parsed.data } as Recipe;
}

/** The recipe of that name in the list, typed. */
export function findRecipe<Name extends RecipeName>(
  recipes: readonly Recipe[],
  name: Name,
): Extract<Recipe, { name: Name }> | undefined {
  return recipes.find((recipe) => recipe.name === name) as
    | Extract<Recipe, { name: Name }>
    | undefined;
}

/** A recipe as written back, every parameter given: what the stats record. */
export function describeRecipe(recipe: Recipe): string {
  const params = Object.entries(recipe.params).map(([key, value]) => `${key}=${value}`);
  return [recipe.name, ...params].join(":");
}
