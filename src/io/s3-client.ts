/**
 * The AWS SDK, loaded on first use: a user of local roots never loads it (it is large, and warns
 * on Node 20 when loaded). The standard credential chain applies (env, shared config and
 * credentials files, SSO, web identity, instance metadata); an endpoint override switches to
 * path-style addressing, which MinIO, Ceph RGW, R2 and s3rver expect.
 */
import { ClipcrawlError, errorMessage } from "../errors.js";

export type S3Sdk = typeof import("@aws-sdk/client-s3");
export type S3Upload = typeof import("@aws-sdk/lib-storage");
type S3ClientInstance = InstanceType<S3Sdk["S3Client"]>;

export interface S3ClientOptions {
  /** An S3-compatible endpoint (`http://127.0.0.1:9000`); default: AWS itself. */
  endpoint?: string;
  /** Default: the credential chain's region (AWS_REGION, the config file), else us-east-1. */
  region?: string;
  /** Attempts per request, backing off between them (the SDK's standard retry mode). */
  maxAttempts?: number;
  /**
   * A request whose connection stays silent this long is abandoned and, like a 503, tried again
   * (default 60 s; a store that hangs would otherwise hold a job for ever).
   */
  requestTimeoutMs?: number;
}

export interface S3Connection {
  sdk: S3Sdk;
  upload: S3Upload;
  client: S3ClientInstance;
}

/** The SDK modules and a client; one import per process, one client per storage. */
export async function connectS3(options: S3ClientOptions): Promise<S3Connection> {
  // The SDK reads this when it loads: its Node 20 end-of-support notice is not the user's concern.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = "true";
  const [sdk, upload] = await Promise.all([
    import("@aws-sdk/client-s3"),
    import("@aws-sdk/lib-storage"),
  ]);
  const region = options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const client = new sdk.S3Client({
    region: region ?? "us-east-1",
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint, forcePathStyle: true }),
    maxAttempts: options.maxAttempts ?? 5,
    requestHandler: {
      requestTimeout: options.requestTimeoutMs ?? 60_000,
      // Without it the SDK only logs a warning and goes on waiting.
      throwOnRequestTimeout: true,
      connectionTimeout: 10_000,
    },
    // Checksums only where S3 requires them: several compatible stores reject the newer headers.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  return { sdk, upload, client };
}

/** The HTTP status of an SDK error (404, 416, …), when the store answered at all. */
export function s3Status(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata
    ?.httpStatusCode;
}

/** Whether an SDK error says the object (not the bucket) is missing. */
export function isMissingObject(error: unknown): boolean {
  const name = (error as { name?: string }).name;
  return (
    name === "NoSuchKey" ||
    name === "NotFound" ||
    (s3Status(error) === 404 && name !== "NoSuchBucket")
  );
}

/**
 * One line naming the URL, what went wrong and the fix, for the faults a user can fix: a missing
 * bucket, wrong credentials, an endpoint that does not answer, a store that sheds load past the
 * retries.
 */
export function storageError(url: string, error: unknown): ClipcrawlError {
  return new ClipcrawlError("CC_STORAGE", `${url}: ${storageFaultHint(error)}`, { cause: error });
}

/** What went wrong in a request to the store and what fixes it, without the URL. */
export function storageFaultHint(error: unknown): string {
  const name = (error as { name?: string }).name ?? "";
  const code = (error as { code?: string }).code ?? "";
  const status = s3Status(error);
  let hint: string;
  if (name === "NoSuchBucket") {
    hint = "the bucket does not exist: create it, or fix the bucket in the s3:// URL";
  } else if (
    ["InvalidAccessKeyId", "SignatureDoesNotMatch", "CredentialsProviderError"].includes(name) ||
    status === 403
  ) {
    hint = `access denied (${name || status}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE, and the bucket's policy`;
  } else if (
    ["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "ECONNRESET"].includes(code) ||
    name === "TimeoutError"
  ) {
    hint = `the store did not answer (${code || name}): check the endpoint (AWS_ENDPOINT_URL) and that the store is up`;
  } else if (status === 503 || name === "SlowDown" || name === "ServiceUnavailable") {
    hint = `the store answered ${status ?? 503} (${name || "unavailable"}) to every try: it is overloaded or failing; run again later, or with fewer workers`;
  } else {
    hint = errorMessage(error);
  }
  return hint;
}

/** A missing object as the local store reports a missing file, so callers branch on one code. */
export function missingObjectError(url: string): Error {
  return Object.assign(new Error(`${url}: no such object`), { code: "ENOENT" });
}
