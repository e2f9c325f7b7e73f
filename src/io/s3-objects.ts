/**
 * Objects named by `s3://bucket/key` URLs outside any dataset root: clipcrawl's own inputs (WAT
 * files, path listings, Common Crawl's `s3://commoncrawl/crawl-data/…`). Read through the same
 * client as S3 roots (s3-client.ts: credential chain, AWS_ENDPOINT_URL with path-style
 * addressing), but with this module's retries, so that one setting (`extract.retries`) counts
 * the attempts: a body that breaks mid-way resumes with a ranged GET from the last byte passed
 * on, pinned to the object's ETag, so a retry never yields the same bytes twice or mixes two
 * versions of an object. Faults the user must fix (no such key or bucket, credentials) are not
 * retried; each is one line naming the URL and the fix.
 */
import type { Readable } from "node:stream";
import { InputError } from "../errors.js";
import { sleep } from "./http.js";
import { s3OptionsFromEnv } from "./open-root.js";
import { connectS3, type S3Connection, s3Status, storageFaultHint } from "./s3-client.js";

export interface S3ObjectUrl {
  bucket: string;
  /** The key, as written after the bucket (not percent-decoded: S3 keys are taken literally). */
  key: string;
}

export interface S3ReadOptions {
  /** Attempts after the first, on a network fault, a timeout or a 5xx (default 5). */
  retries?: number;
  /** Seconds without data before an attempt is abandoned (default 60). */
  timeoutSeconds?: number;
  signal?: AbortSignal;
}

const S3_URL = /^s3:\/\/([^/]+)\/?(.*)$/i;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Whether a spec names an object (or a prefix) on S3. */
export function isS3ObjectUrl(spec: string): boolean {
  return /^s3:\/\//i.test(spec);
}

/** `s3://bucket/some/key` → bucket and key; a bad bucket name is one line. */
export function parseS3ObjectUrl(url: string): S3ObjectUrl {
  const match = S3_URL.exec(url);
  const bucket = match?.[1] ?? "";
  if (!BUCKET_NAME.test(bucket)) {
    throw new InputError(
      "CC_S3_BAD_URL",
      url,
      "not an s3://bucket/key URL (bucket names are 3–63 of a-z 0-9 . -)",
    );
  }
  return { bucket, key: match?.[2] ?? "" };
}

/** The whole object in memory: for small objects (path listings). */
export async function readS3Object(url: string, options: S3ReadOptions = {}): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of streamS3Object(url, options)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * The object's bytes as they arrive, resuming after a broken connection with a ranged GET from
 * the last byte yielded. Memory: one chunk of the SDK's stream at a time.
 */
export async function* streamS3Object(
  url: string,
  options: S3ReadOptions = {},
): AsyncGenerator<Buffer> {
  const { bucket, key } = parseS3ObjectUrl(url);
  const retries = options.retries ?? 5;
  const timeoutMs = (options.timeoutSeconds ?? 60) * 1000;
  const { sdk, client } = await s3Client(timeoutMs);
  let received = 0;
  let etag: string | undefined;
  let lastFault = "";
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep(backoffMs(attempt), options.signal);
    if (options.signal?.aborted) throw new InputError("CC_ABORTED", url, "stopped");
    let body: Readable;
    let ranged = false;
    try {
      const answer = await client.send(
        new sdk.GetObjectCommand({
          Bucket: bucket,
          Key: key,
          ...(received > 0 ? { Range: `bytes=${received}-` } : {}),
          ...(etag === undefined ? {} : { IfMatch: etag }),
        }),
        options.signal === undefined ? {} : { abortSignal: options.signal },
      );
      if (answer.Body === undefined) throw new Error("the store returned no body");
      body = answer.Body as Readable;
      etag ??= answer.ETag;
      ranged = answer.ContentRange !== undefined;
    } catch (error) {
      if (options.signal?.aborted) throw new InputError("CC_ABORTED", url, "stopped");
      // Everything was passed on before the connection broke: nothing is left to read.
      if (received > 0 && s3Status(error) === 416) return;
      const fault = classifyFault(url, bucket, key, error);
      if (fault.final) throw fault.error;
      lastFault = fault.error.message.slice(url.length + 2);
      continue;
    }
    // A store that ignores Range sends everything again: skip what was already passed on.
    let skip = ranged ? 0 : received;
    const idle = idleWatchdog(body, timeoutMs);
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          idle.reset();
          continue;
        }
        const fresh = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        received += fresh.length;
        // The time the reader takes over a chunk is not the store's silence.
        idle.stop();
        yield fresh;
        idle.reset();
      }
      return;
    } catch (error) {
      if (options.signal?.aborted) throw new InputError("CC_ABORTED", url, "stopped");
      lastFault = `the connection broke after ${received} bytes (${(error as Error).message}): check the network and the store (AWS_ENDPOINT_URL), or raise extract.retries`;
    } finally {
      idle.stop();
      body.destroy();
    }
  }
  throw new InputError("CC_S3_FAILED", url, `failed after ${retries + 1} attempts: ${lastFault}`);
}

/**
 * The objects under `s3://bucket/prefix` whose key `keep` accepts, as s3:// URLs sorted by key,
 * paging through any number of them.
 */
export async function listS3Objects(
  url: string,
  keep: (key: string) => boolean,
  options: S3ReadOptions = {},
): Promise<string[]> {
  const { bucket, key: prefix } = parseS3ObjectUrl(url);
  const retries = options.retries ?? 5;
  const { sdk, client } = await s3Client((options.timeoutSeconds ?? 60) * 1000);
  const keys: string[] = [];
  let token: string | undefined;
  const listPage = async (attempt: number): Promise<ListPage> => {
    try {
      return await client.send(
        new sdk.ListObjectsV2Command({
          Bucket: bucket,
          Prefix: prefix,
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
      );
    } catch (error) {
      const fault = classifyFault(url, bucket, undefined, error);
      if (fault.final || attempt >= retries) throw fault.error;
      await sleep(backoffMs(attempt + 1), options.signal);
      return listPage(attempt + 1);
    }
  };
  do {
    const page = await listPage(0);
    for (const object of page.Contents ?? []) {
      if (object.Key !== undefined && keep(object.Key)) keys.push(object.Key);
    }
    token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return keys.sort().map((key) => `s3://${bucket}/${key}`);
}

interface ListPage {
  Contents?: { Key?: string }[];
  IsTruncated?: boolean;
  NextContinuationToken?: string;
}

/** One client per thread and timeout: the SDK's own retries off, this module's on. */
const clients = new Map<string, Promise<S3Connection>>();

function s3Client(timeoutMs: number): Promise<S3Connection> {
  const settings = s3OptionsFromEnv();
  const id = `${settings.endpoint ?? "aws"}\n${timeoutMs}`;
  let connection = clients.get(id);
  if (connection === undefined) {
    connection = connectS3({
      ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
      maxAttempts: 1,
      requestTimeoutMs: timeoutMs,
    });
    clients.set(id, connection);
  }
  return connection;
}

function backoffMs(attempt: number): number {
  return Math.min(30_000, 500 * 2 ** (attempt - 1));
}

/** A fault to retry (network, timeout, 5xx, throttling) or to report at once (the user's to fix). */
function classifyFault(
  url: string,
  bucket: string,
  key: string | undefined,
  error: unknown,
): { final: boolean; error: InputError } {
  const name = (error as { name?: string }).name ?? "";
  const status = s3Status(error);
  if (name === "NoSuchBucket") {
    return {
      final: true,
      error: new InputError(
        "CC_S3_NO_SUCH_BUCKET",
        url,
        `no such bucket ${bucket} at ${endpointName()}: check the bucket in the URL, and the endpoint (AWS_ENDPOINT_URL)`,
      ),
    };
  }
  if (key !== undefined && (name === "NoSuchKey" || name === "NotFound" || status === 404)) {
    return {
      final: true,
      error: new InputError(
        "CC_S3_NO_SUCH_KEY",
        url,
        `no such key in bucket ${bucket}: check the path (or the listing that named it)`,
      ),
    };
  }
  if (name === "PreconditionFailed" || status === 412) {
    return {
      final: true,
      error: new InputError(
        "CC_S3_CHANGED",
        url,
        "the object changed while it was being read: run again to read the new version",
      ),
    };
  }
  const retryable =
    status === undefined
      ? name !== "CredentialsProviderError" && name !== "AbortError"
      : status === 408 || status === 429 || status >= 500;
  return {
    final: !retryable,
    error: new InputError("CC_S3", url, storageFaultHint(error)),
  };
}

function endpointName(): string {
  return s3OptionsFromEnv().endpoint ?? "AWS";
}

/** Destroys a body that stays silent `timeoutMs`: a stalled store fails the attempt. */
function idleWatchdog(body: Readable, timeoutMs: number): { reset(): void; stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  const reset = () => {
    clearTimeout(timer);
    timer = setTimeout(
      () => body.destroy(new Error(`no data for ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
    timer.unref();
  };
  reset();
  return { reset, stop: () => clearTimeout(timer) };
}
