/**
 * The `download` section of clipcrawl.json: fetching (concurrency, timeouts, retries, limits,
 * opt-outs, the network guard), resizing and encoding, the output format, and how URL lists given
 * as inputs are read. Composed into the root schema by src/config/schema.ts; the CLI derives
 * download's flags from it.
 */
import * as z from "zod";
import { DEFAULT_MAX_IMAGE_PIXELS } from "../../io/image-limits.js";

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
      .describe(
        "file of URLs and domains (not fetched) and MD5/SHA-1/SHA-256 digests of image bytes (not kept), one a line (opted_out)",
      ),
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
      .default(DEFAULT_MAX_IMAGE_PIXELS)
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

export type DownloadConfig = z.infer<typeof downloadConfigSchema>;
