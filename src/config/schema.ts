/**
 * The one declaration of clipcrawl's configuration. Types, defaults, the CLI flags
 * (see cli-options.ts) and the message for a bad value all come from this schema.
 * Each stage owns one section; later stages add theirs here.
 */
import { z } from "zod";
import { scoresConfigSchema } from "../models/heads/score-config.js";
import { MODEL_PRECISION_SUFFIX, type ModelPrecision } from "../models/model-files.js";

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

/** curl's --connect-to rule: connections for HOST:PORT go to TARGET_HOST:TARGET_PORT instead. */
const connectToRule = z
  .string()
  .regex(
    /^[^:\s]+:\d+:[^:\s]+:\d+$/,
    "expected HOST:PORT:TARGET_HOST:TARGET_PORT, e.g. img.example:80:127.0.0.1:8080",
  );

/** Names and defaults follow img2dataset's options (camelCased), so its users find their way. */
export const downloadConfigSchema = z
  .object({
    samplesPerShard: z
      .number()
      .int()
      .min(1)
      .default(10_000)
      .describe("samples in one image shard (img2dataset's number_sample_per_shard)"),
    workers: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("shards downloaded in parallel (worker threads); 0 means one per CPU core"),
    concurrency: z
      .number()
      .int()
      .min(1)
      .default(256)
      .describe("simultaneous downloads over all workers together"),
    perHostConcurrency: z
      .number()
      .int()
      .min(1)
      .default(16)
      .describe("simultaneous downloads from one host over all workers together"),
    timeoutSeconds: z
      .number()
      .gt(0)
      .default(10)
      .describe("seconds to connect, to receive the headers, and between two body chunks"),
    totalTimeoutSeconds: z
      .number()
      .gt(0)
      .default(30)
      .describe("seconds for one download attempt in all, so a slow drip cannot hold a slot"),
    retries: z
      .number()
      .int()
      .min(0)
      .max(10)
      .default(1)
      .describe("retries of a download after a timeout, a dropped connection or HTTP 408/429/5xx"),
    retryBackoffSeconds: z
      .number()
      .min(0)
      .default(1)
      .describe("wait before the first retry; doubled before each further one"),
    maxRedirects: z
      .number()
      .int()
      .min(0)
      .default(5)
      .describe("redirects followed before a download fails"),
    maxBodyBytes: z
      .number()
      .int()
      .min(1)
      .default(16 * 1024 * 1024)
      .describe("largest image accepted, in bytes; enforced while the body streams in"),
    dnsCacheSeconds: z
      .number()
      .min(0)
      .default(300)
      .describe("how long a resolved host name is reused; 0 turns the DNS cache off"),
    userAgentToken: z
      .string()
      .default("")
      .describe("added to the User-Agent, e.g. a contact address, so site owners can reach you"),
    disallowedHeaderDirectives: z
      .array(z.string().min(1))
      .default(["noai", "noimageai", "noindex", "noimageindex"])
      .describe("X-Robots-Tag directives that make a sample opted_out (empty: honour none)"),
    blocklist: z
      .string()
      .default("")
      .describe("file of URLs and domains (one a line) whose images are not fetched (opted_out)"),
    allowPrivateNetwork: z
      .boolean()
      .default(false)
      .describe(
        "let image URLs reach private, loopback, link-local and other special-use addresses (tests, local mirrors); was allowPrivateAddresses",
      ),
    connectTo: z
      .array(connectToRule)
      .default([])
      .describe("send connections for HOST:PORT to TARGET_HOST:TARGET_PORT, as curl --connect-to"),
    caCertificates: z
      .string()
      .default("")
      .describe(
        "PEM file of certificate authorities trusted besides the system's (a local mirror, a TLS-inspecting proxy)",
      ),
    contentTypeCheck: z
      .boolean()
      .default(true)
      .describe("refuse text/HTML/JSON responses (error pages) before reading their body"),
    imageSize: z.number().int().min(1).default(256).describe("target size of the resized images"),
    resizeMode: z
      .enum(["no", "border", "keep_ratio", "keep_ratio_largest", "center_crop"])
      .default("border")
      .describe("how images are fitted to imageSize (as img2dataset's resize_mode)"),
    resizeOnlyIfBigger: z
      .boolean()
      .default(false)
      .describe("leave images that already fit imageSize at their size"),
    resizeKernel: z
      .enum(["nearest", "linear", "cubic", "mitchell", "lanczos2", "lanczos3"])
      .default("mitchell")
      .describe(
        "kernel of the resize after JPEG shrink-on-load; mitchell is as sharp as OpenCV's INTER_AREA and faster than lanczos3",
      ),
    encodeFormat: z
      .enum(["jpg", "png", "webp"])
      .default("jpg")
      .describe("format of the stored images"),
    encodeQuality: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(95)
      .describe(
        "quality of jpg and webp images; for png, a value up to 9 is the compression level",
      ),
    skipReencode: z
      .boolean()
      .default(false)
      .describe(
        "store the original bytes when the image was not resized and is already encodeFormat",
      ),
    disableAllReencoding: z
      .boolean()
      .default(false)
      .describe("store every image exactly as downloaded: no decoding, resizing or checks"),
    minImageSize: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("images whose smaller side is below this are failed_to_resize"),
    maxImageArea: z
      .number()
      .min(0)
      .default(0)
      .describe("images with more pixels than this are failed_to_resize; 0: no limit"),
    maxAspectRatio: z
      .number()
      .min(0)
      .default(0)
      .describe(
        "images whose long/short side ratio exceeds this are failed_to_resize; 0: no limit",
      ),
    maxImagePixels: z
      .number()
      .int()
      .min(1)
      .default(89_478_485)
      .describe(
        "decompression-bomb guard: larger images are refused before decoding (Pillow's limit)",
      ),
    extractExif: z.boolean().default(true).describe("record the original image's EXIF as JSON"),
    outputFormat: z
      .enum(["webdataset", "files", "parquet"])
      .default("webdataset")
      .describe("images/NNNNN.tar, an images/NNNNN/ folder, or image bytes inside the parquet"),
    inputFormat: z
      .enum(["auto", "txt", "csv", "tsv", "tsv.gz", "json", "jsonl", "parquet"])
      .default("auto")
      .describe("format of URL lists given as inputs; auto goes by the file extension"),
    urlCol: z.string().min(1).default("url").describe("URL column of URL lists given as inputs"),
    captionCol: z
      .string()
      .default("")
      .describe("caption column of URL lists given as inputs (none by default)"),
    saveAdditionalColumns: z
      .array(z.string().min(1))
      .default([])
      .describe("columns of URL lists given as inputs copied to the output metadata"),
  })
  .strict();

/** What `clipcrawl embed` runs and writes; the model is a local folder, never downloaded here. */
export const embedConfigSchema = z
  .object({
    model: z
      .string()
      .default("")
      .describe(
        "CLIP model folder in the Hugging Face layout (onnx/text_model.onnx, onnx/vision_model.onnx, tokenizer.json, …)",
      ),
    precision: z
      .enum(Object.keys(MODEL_PRECISION_SUFFIX) as [ModelPrecision, ...ModelPrecision[]])
      .default("fp32")
      .describe("which ONNX variant of the towers to load (fp32: onnx/*_model.onnx)"),
    batchSize: z.number().int().min(1).default(64).describe("images (and captions) per ONNX run"),
    threads: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("onnxruntime intra-op threads for each tower; 0 means one per CPU core"),
    preprocessWorkers: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "worker threads that decode and preprocess images beside the model; 0 means a quarter of the CPU cores",
      ),
    decodeConcurrency: z
      .number()
      .int()
      .min(1)
      .default(4)
      .describe("images each preprocessing worker decodes at once (sharp uses its own threads)"),
    outputDtype: z
      .enum(["float16", "float32"])
      .default("float16")
      .describe("dtype of the .npy embeddings (clip-retrieval writes float16)"),
    multilingualModel: z
      .string()
      .default("")
      .describe(
        "text-only model folder (onnx/text_model.onnx, tokenizer.json, …) that maps captions of multilingualTiers into the CLIP model's space, as LAION used multilingual CLIP; empty: the CLIP text tower for every caption",
      ),
    multilingualTiers: z
      .array(z.enum(["en", "multi", "nolang"]))
      .default(["multi", "nolang"])
      .describe("language tiers whose captions go through multilingualModel when one is set"),
  })
  .strict();

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
  })
  .strict();

/**
 * What `clipcrawl index` builds (see src/stages/index/README.md). The engine's parameters are
 * chosen from the number of vectors and the memory budget as autofaiss chooses faiss's (exact
 * search for small sets, a graph index above), unless set here.
 */
export const indexConfigSchema = z
  .object({
    memoryBudgetMb: z
      .number()
      .gt(0)
      .default(4096)
      .describe(
        "memory the image and text indices may take together, in MB; picks the quantization and connectivity when they are auto",
      ),
    flatMaxVectors: z
      .number()
      .int()
      .min(0)
      .default(1000)
      .describe(
        "indices of up to this many vectors are searched exactly (autofaiss's Flat threshold); above, through the HNSW graph",
      ),
    quantization: z
      .enum(["auto", "f32", "f16", "i8"])
      .default("auto")
      .describe(
        "how the graph index stores vectors; auto: the most precise that fits memoryBudgetMb",
      ),
    connectivity: z
      .number()
      .int()
      .min(0)
      .max(128)
      .default(0)
      .describe("HNSW links per node (faiss's M); 0: chosen from the memory budget (8 to 16)"),
    expansionAdd: z
      .number()
      .int()
      .min(0)
      .default(128)
      .describe("HNSW candidate list while adding (faiss's efConstruction); 0: the engine's"),
    expansionSearch: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "HNSW candidate list while searching (faiss's efSearch); 0: chosen from the index size for recall@10 ≥ 0.95",
      ),
    duplicateThreshold: z
      .number()
      .min(0)
      .max(1)
      .default(0.96)
      .describe("image embeddings at least this cosine-similar share a near-duplicate group"),
    duplicateNeighbors: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(10)
      .describe("nearest neighbours of each image looked at for its near-duplicates"),
    threads: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "threads that build the graph and look for near-duplicates; 0 means one per CPU core",
      ),
  })
  .strict();

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
    allowPrivateUrls: z
      .boolean()
      .default(false)
      .describe("let image_url queries reach private, loopback and link-local addresses"),
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

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    version: z.literal(1).default(1).describe("config format version"),
    extract: extractConfigSchema.default(extractConfigSchema.parse({})),
    download: downloadConfigSchema.default(downloadConfigSchema.parse({})),
    embed: embedConfigSchema.default(embedConfigSchema.parse({})),
    scores: scoresConfigSchema.default(() => scoresConfigSchema.parse({})),
    filter: filterConfigSchema.default(filterConfigSchema.parse({})),
    index: indexConfigSchema.default(indexConfigSchema.parse({})),
    serve: serveConfigSchema.default(serveConfigSchema.parse({})),
    provenance: z
      .object({ createdWith: z.string(), createdAt: z.string() })
      .strict()
      .optional()
      .describe("written by clipcrawl init: the version that created the root"),
  })
  .strict();

export type ExtractConfig = z.infer<typeof extractConfigSchema>;
export type DownloadConfig = z.infer<typeof downloadConfigSchema>;
export type EmbedConfig = z.infer<typeof embedConfigSchema>;
export type { ScoresConfig } from "../models/heads/score-config.js";
export type FilterConfig = z.infer<typeof filterConfigSchema>;
export type IndexConfig = z.infer<typeof indexConfigSchema>;
export type ServeConfig = z.infer<typeof serveConfigSchema>;
export type ClipcrawlConfig = z.infer<typeof configSchema>;
/** The sections a stage's CLI flags can override. */
export type StageSection = "extract" | "download" | "embed" | "filter" | "index" | "serve";

export const stageSectionSchemas = {
  extract: extractConfigSchema,
  download: downloadConfigSchema,
  embed: embedConfigSchema,
  filter: filterConfigSchema,
  index: indexConfigSchema,
  serve: serveConfigSchema,
} as const;
