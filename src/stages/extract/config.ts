/**
 * The `extract` section of clipcrawl.json: what counts as an image link, the dedup filter's size,
 * and how WAT files are fetched. Composed into the root schema by src/config/schema.ts; the CLI
 * derives extract's flags from it.
 */
import * as z from "zod";
import { DEDUP_MODES } from "../../shard/stage-definition.js";

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
    dedupRedis: z
      .array(z.string())
      .default([])
      .describe(
        "distributed runs: split the dedup filter over these Redis instances by pair hash (redis://a:6379,redis://b:6379); none: the queue's Redis",
      ),
    dedupMode: z
      .enum(DEDUP_MODES)
      .default("deterministic")
      .describe(
        "distributed runs: deterministic (shards take turns in input order; the output equals a local run's) or parallel (no turns, each pair kept once, but which copy survives depends on timing)",
      ),
    workers: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("parallel WAT files (worker threads); 0 means one per CPU core"),
    baseUrl: z
      .url({ protocol: /^(https?|s3)$/ })
      .default("https://data.commoncrawl.org/")
      .describe(
        "Common Crawl base URL (or a mirror; s3://commoncrawl/ reads its bucket) for --crawl and relative wat.paths entries",
      ),
    retries: z
      .number()
      .int()
      .min(0)
      .max(20)
      .default(5)
      .describe(
        "retries of a WAT download (http(s) or s3) after a network error or HTTP 5xx, resuming with Range",
      ),
    timeoutSeconds: z
      .number()
      .gt(0)
      .default(60)
      .describe("seconds without data before a WAT download attempt is abandoned"),
    allowPrivateNetwork: z
      .boolean()
      .default(false)
      .describe(
        "let WAT and path-listing URLs reach private, loopback, link-local and other special-use addresses (a local mirror)",
      ),
    maxRecordBytes: z
      .number()
      .int()
      .min(1024)
      .default(64 * 1024 * 1024)
      .describe(
        "largest WARC record body extract reads, after inflating; a longer one is reported as one bad record and skipped, so a gzip bomb cannot exhaust memory (Common Crawl WAT records are at most a few MB: 64 MiB leaves a wide margin and bounds each worker)",
      ),
  })
  .strict();

export type ExtractConfig = z.infer<typeof extractConfigSchema>;
