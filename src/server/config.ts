/**
 * The `serve` section of clipcrawl.json. Composed into the root schema by src/config/schema.ts;
 * the CLI derives serve's flags from it.
 */
import * as z from "zod";

/**
 * How `clipcrawl serve` answers (see src/server/README.md): where it listens, the limits every
 * request is held to, and the prompts of the violence detector. The defaults are safe for a
 * public address: loopback only, bounded bodies and images, a per-client rate.
 */
export const serveConfigSchema = z
  .object({
    host: z
      .string()
      .min(1)
      .default("127.0.0.1")
      .describe("address to listen on; 0.0.0.0 or :: to be reachable from other machines"),
    port: z.number().int().min(0).max(65_535).default(1234).describe("port (clip-back's default)"),
    allowPrivateNetwork: z
      .boolean()
      .default(false)
      .describe(
        "let image_url queries reach private, loopback, link-local and other special-use addresses (a local mirror); was allowPrivateUrls",
      ),
    maxResults: z
      .number()
      .int()
      .min(1)
      .default(10_000)
      .describe("largest num_images and num_result_ids a query may ask for"),
    maxExport: z
      .number()
      .int()
      .min(1)
      .default(100_000)
      .describe("most rows an export (its expand) may gather"),
    maxImageBytes: z
      .number()
      .int()
      .min(1)
      .default(10 * 1024 * 1024)
      .describe("largest query image, in bytes, sent as base64 or fetched from image_url"),
    maxImagePixels: z
      .number()
      .int()
      .min(1)
      .default(40_000_000)
      .describe("query images with more pixels are refused before decoding"),
    imageUrlTimeoutSeconds: z
      .number()
      .gt(0)
      .default(10)
      .describe("seconds an image_url download may take in all (clip-back: 10)"),
    requestTimeoutSeconds: z
      .number()
      .gt(0)
      .default(60)
      .describe("seconds a client has to send its whole request"),
    rateLimitPerMinute: z
      .number()
      .int()
      .min(0)
      .default(1200)
      .describe("requests one client address may make per minute; 0: no limit"),
    corsOrigins: z
      .array(z.string().min(1))
      .default(["*"])
      .describe("origins browsers may call the API from (* for any, as clip-back)"),
    violencePrompts: z
      .array(z.string().min(1))
      .min(1)
      .default([
        "a violent picture",
        "a bloody wound",
        "people fighting",
        "a gun pointed at someone",
      ])
      .describe(
        "prompts of the violence detector: an image closer to these than to safePrompts is dropped",
      ),
    safePrompts: z
      .array(z.string().min(1))
      .min(1)
      .default(["a picture", "a peaceful photo", "an everyday scene", "a product photo"])
      .describe("the prompts violencePrompts compete with"),
    threads: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("onnxruntime threads for each query model tower; 0: the engine's choice"),
    shardThreads: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "worker threads that search an index's shards at once (an index of several shards); 0: one a core; 1: on the request's thread",
      ),
    shardDeadlineMs: z
      .number()
      .int()
      .min(1)
      .default(2000)
      .describe(
        "milliseconds a remote shard (--shard) has to answer its part of a query; a later or failed one leaves the answer partial",
      ),
    expansionSearch: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "HNSW candidate list of a query (faiss's efSearch): lower is faster, higher finds more of the true neighbours; 0: the index's own",
      ),
  })
  .strict();

export type ServeConfig = z.infer<typeof serveConfigSchema>;
