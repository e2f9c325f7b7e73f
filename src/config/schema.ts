/**
 * The one declaration of clipcrawl's configuration. Types, defaults, the CLI flags
 * (see cli-options.ts) and the message for a bad value all come from this schema.
 * Each stage owns one section; later stages add theirs here.
 */
import { z } from "zod";

export const extractConfigSchema = z
  .object({
    minTextLength: z
      .number()
      .int()
      .min(1)
      .default(5)
      .describe("drop alt texts shorter than this many characters after whitespace clean-up"),
    linkPaths: z
      .array(z.string().regex(/^[A-Z0-9]+@\/[a-z-]+$/i, "expected a WAT link path like IMG@/src"))
      .min(1)
      .default(["IMG@/src"])
      .describe("WAT link paths that count as images (LAION used IMG@/src only)"),
    bloomCapacity: z
      .number()
      .int()
      .min(1000)
      .default(10_000_000)
      .describe(
        "expected number of distinct (url, text) pairs the dedup Bloom filter is sized for",
      ),
    bloomFalsePositiveRate: z
      .number()
      .gt(0)
      .max(0.5)
      .default(0.001)
      .describe("Bloom filter false-positive rate at capacity (a unique pair wrongly dropped)"),
    workers: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("parallel WAT files (worker threads); 0 means one per CPU core"),
    baseUrl: z
      .url({ protocol: /^https?$/ })
      .default("https://data.commoncrawl.org/")
      .describe("Common Crawl base URL (or a mirror) for --crawl and relative wat.paths entries"),
    retries: z
      .number()
      .int()
      .min(0)
      .max(20)
      .default(5)
      .describe("retries of a WAT download after a network error or HTTP 5xx, resuming with Range"),
    timeoutSeconds: z
      .number()
      .gt(0)
      .default(60)
      .describe("seconds without data before a WAT download attempt is abandoned"),
  })
  .strict();

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    version: z.literal(1).default(1).describe("config format version"),
    extract: extractConfigSchema.default(extractConfigSchema.parse({})),
    provenance: z
      .object({ createdWith: z.string(), createdAt: z.string() })
      .strict()
      .optional()
      .describe("written by clipcrawl init: the version that created the root"),
  })
  .strict();

export type ExtractConfig = z.infer<typeof extractConfigSchema>;
export type ClipcrawlConfig = z.infer<typeof configSchema>;
/** The sections a stage's CLI flags can override. */
export type StageSection = "extract";

export const stageSectionSchemas = { extract: extractConfigSchema } as const;
