/**
 * The `filter` section of clipcrawl.json: the similarity cut per language tier, image and caption
 * limits, blocklists and score cut-offs. Composed into the root schema by src/config/schema.ts;
 * the CLI derives filter's flags from it.
 */
import * as z from "zod";

/**
 * What `clipcrawl filter` keeps. Defaults are LAION-5B's: the CLIP similarity cut per language
 * tier and captions of at least 5 characters; sizes and blocklists off; the scores are shipped
 * as columns (LAION's tags) and cut only when a maximum or minimum is set.
 */
export const filterConfigSchema = z
  .object({
    minSimilarityEn: z
      .number()
      .min(-1)
      .max(1)
      .default(0.28)
      .describe(
        "drop English pairs (language tier en) whose image–text cosine is below this (LAION-5B: 0.28)",
      ),
    minSimilarityMulti: z
      .number()
      .min(-1)
      .max(1)
      .default(0.26)
      .describe(
        "drop pairs in another language (tier multi) whose cosine is below this (LAION-5B: 0.26)",
      ),
    minSimilarityNolang: z
      .number()
      .min(-1)
      .max(1)
      .default(0.26)
      .describe(
        "drop pairs with no detected language (tier nolang) whose cosine is below this (LAION-5B: 0.26)",
      ),
    minImageWidth: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("drop pairs whose original image is narrower than this, in pixels; 0: no minimum"),
    minImageHeight: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("drop pairs whose original image is shorter than this, in pixels; 0: no minimum"),
    maxAspectRatio: z
      .number()
      .min(0)
      .refine((value) => value === 0 || value >= 1, "expected 0 (no limit) or at least 1")
      .default(0)
      .describe(
        "drop pairs whose original image's long/short side ratio exceeds this; 0: no limit",
      ),
    minCaptionLength: z
      .number()
      .int()
      .min(0)
      .default(5)
      .describe(
        "drop pairs whose caption has fewer characters (LAION's rule, which extract applies too)",
      ),
    maxCaptionLength: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("drop pairs whose caption has more characters than this; 0: no limit"),
    urlBlocklist: z
      .string()
      .default("")
      .describe("file of image URLs to drop, one a line (# starts a comment)"),
    domainBlocklist: z
      .string()
      .default("")
      .describe("file of domains to drop, one a line; a domain covers its subdomains"),
    sha256Blocklist: z
      .string()
      .default("")
      .describe("file of SHA-256 digests of image bytes to drop, one a line (takedown lists)"),
    md5Blocklist: z
      .string()
      .default("")
      .describe(
        "file of MD5 digests of image bytes to drop, one a line (Re-LAION's takedown lists)",
      ),
    sha1Blocklist: z
      .string()
      .default("")
      .describe("file of SHA-1 digests of image bytes to drop, one a line (takedown lists)"),
    maxPunsafe: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe(
        "drop pairs whose punsafe (NSFW) is above this; unset: keep it as a tag (LAION suggests 0.5)",
      ),
    maxPwatermark: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe(
        "drop pairs whose pwatermark is above this; unset: keep it as a tag (LAION suggests 0.8)",
      ),
    maxPtoxic: z
      .number()
      .min(0)
      .max(1)
      .optional()
      .describe("drop pairs whose ptoxic is above this; unset: keep it as a tag"),
    minAestheticScore: z
      .number()
      .optional()
      .describe("drop pairs whose AESTHETIC_SCORE is below this; unset: keep it as a tag"),
    recipe: z
      .array(z.string())
      .default([])
      .describe(
        "DataComp / SemDeDup recipes to apply, NAME[:PARAM=VALUE]... (clip-score-top, text, image-clusters, semdedup; docs/recipes.md)",
      ),
  })
  .strict();

export type FilterConfig = z.infer<typeof filterConfigSchema>;
