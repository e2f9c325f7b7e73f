/**
 * Fetching one image over HTTP with undici: keep-alive connections bounded per host, timeouts
 * (connect, headers, between body chunks, and the whole attempt), retries with backoff on
 * timeouts, dropped connections and 408/429/5xx, redirects followed by hand (each hop is
 * checked like the first URL), the size limit enforced while the body streams in, and
 * X-Robots-Tag opt-outs read before the body, and the body hashed as it streams. Failures are values with a stable message.
 */
import type { Readable } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";
import { Agent, type Dispatcher } from "undici";
import { ClipcrawlError } from "../../errors.js";
import { VERSION } from "../../version.js";
import { sleep } from "../http.js";
import { BodyHashes, type ImageHashes } from "./body-hashes.js";
import { CachingResolver, type ConnectionPolicy, policyConnector } from "./connector.js";
import { failureReason } from "./failure-reasons.js";
import { disallowingDirective } from "./opt-out.js";

/**
 * What the fetcher is told. Download's config section satisfies it (its keys have these names
 * and meanings, documented with the config); the fetcher knows nothing of the config itself.
 */
export interface FetcherOptions extends Omit<ConnectionPolicy, "connectTimeoutMs"> {
  /** Seconds to connect, to receive the headers, and between two body chunks. */
  timeoutSeconds: number;
  /** Seconds for one attempt in all, so a slow drip cannot hold a slot. */
  totalTimeoutSeconds: number;
  /** Retries after a timeout, a dropped connection or HTTP 408/429/5xx. */
  retries: number;
  /** Wait before the first retry; doubled before each further one. */
  retryBackoffSeconds: number;
  maxRedirects: number;
  /** The largest body read; a larger one fails the fetch. */
  maxBodyBytes: number;
  /** Added to the User-Agent (a contact address) and honoured as our agent in X-Robots-Tag. */
  userAgentToken: string;
  /** X-Robots-Tag directives that make a sample opted out. */
  disallowedHeaderDirectives: readonly string[];
  /** Refuse text/HTML/JSON responses (error pages) before reading their body. */
  contentTypeCheck: boolean;
  /** Keep-alive connections (and so simultaneous requests) to one origin. */
  connectionsPerHost: number;
}

export type FetchOutcome =
  | { status: "ok"; bytes: Buffer; hashes: ImageHashes; attempts: number }
  | { status: "failed"; error: string }
  | { status: "opted_out"; reason: string };

/** A failed attempt: `message` is what lands in error_message. */
class FetchFailure extends Error {
  constructor(
    message: string,
    readonly retryable = false,
  ) {
    super(message);
  }
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

const RETRYABLE_CODES = new Set([
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EAI_AGAIN",
]);

/** Content types that are never an image: an error or landing page served instead. */
const NOT_AN_IMAGE = /^(text\/|application\/(json|xml|xhtml\+xml|javascript|ld\+json)\b)/i;

export function userAgent(token: string): string {
  const contact = token.trim() === "" ? "" : `; ${token.trim()}`;
  return `Mozilla/5.0 (compatible; clipcrawl/${VERSION}${contact})`;
}

export class ImageFetcher {
  private readonly agent: Dispatcher;
  private readonly headers: Record<string, string>;

  constructor(private readonly options: FetcherOptions) {
    const timeoutMs = options.timeoutSeconds * 1000;
    const resolver = new CachingResolver(options.dnsCacheSeconds, options.allowPrivateNetwork);
    this.agent = new Agent({
      connect: policyConnector(
        {
          allowPrivateNetwork: options.allowPrivateNetwork,
          connectTo: options.connectTo,
          caCertificates: options.caCertificates,
          dnsCacheSeconds: options.dnsCacheSeconds,
          connectTimeoutMs: timeoutMs,
        },
        resolver,
      ),
      connections: options.connectionsPerHost,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4000,
    });
    this.headers = {
      "user-agent": userAgent(options.userAgentToken),
      accept: "image/avif,image/webp,image/png,image/jpeg,image/*;q=0.9,*/*;q=0.5",
    };
  }

  async fetch(url: string): Promise<FetchOutcome> {
    let target: URL;
    try {
      target = checkedUrl(url);
    } catch (error) {
      return { status: "failed", error: (error as Error).message };
    }
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.attempt(target, attempt + 1);
      } catch (error) {
        const failure = asFailure(error);
        if (!failure.retryable || attempt >= this.options.retries) {
          return { status: "failed", error: failure.message };
        }
        await sleep(this.options.retryBackoffSeconds * 1000 * 2 ** attempt);
      }
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  /** Stops at once: requests still running fail. */
  destroy(): Promise<void> {
    return this.agent.destroy();
  }

  private async attempt(url: URL, attempts: number): Promise<FetchOutcome> {
    const totalSeconds = this.options.totalTimeoutSeconds;
    const deadline = AbortSignal.timeout(totalSeconds * 1000);
    try {
      return await this.follow(url, deadline, attempts);
    } catch (error) {
      if (deadline.aborted) {
        throw new FetchFailure(`timeout: no complete response in ${totalSeconds} s`, true);
      }
      throw error;
    }
  }

  private async follow(url: URL, signal: AbortSignal, attempts: number): Promise<FetchOutcome> {
    let current = url;
    for (let redirects = 0; ; redirects++) {
      const response = await this.agent.request({
        origin: current.origin,
        path: `${current.pathname}${current.search}`,
        method: "GET",
        headers: this.headers,
        signal,
      });
      const { statusCode, headers, body } = response;
      if (REDIRECT_STATUSES.has(statusCode)) {
        await discard(body, signal);
        const location = headerValues(headers.location)[0];
        if (location === undefined) throw new FetchFailure(`HTTP ${statusCode} without Location`);
        if (redirects >= this.options.maxRedirects) {
          throw new FetchFailure(`too many redirects (more than ${this.options.maxRedirects})`);
        }
        current = checkedUrl(location, current);
        continue;
      }
      if (statusCode !== 200) {
        await discard(body, signal);
        const retryable = statusCode === 408 || statusCode === 429 || statusCode >= 500;
        throw new FetchFailure(`HTTP ${statusCode}`, retryable);
      }
      const directive = disallowingDirective(
        headerValues(headers["x-robots-tag"]),
        this.options.disallowedHeaderDirectives,
        this.options.userAgentToken,
      );
      if (directive !== undefined) {
        abandon(body);
        return { status: "opted_out", reason: `X-Robots-Tag: ${directive}` };
      }
      const contentType = headerValues(headers["content-type"])[0]?.trim() ?? "";
      if (this.options.contentTypeCheck && NOT_AN_IMAGE.test(contentType)) {
        abandon(body);
        throw new FetchFailure(`not an image: Content-Type ${contentType.split(";")[0]}`);
      }
      const length = Number(headerValues(headers["content-length"])[0]);
      if (Number.isFinite(length) && length > this.options.maxBodyBytes) {
        abandon(body);
        throw new FetchFailure(`body larger than ${this.options.maxBodyBytes} bytes`);
      }
      const encoding = headerValues(headers["content-encoding"])[0]?.trim().toLowerCase() ?? "";
      const { bytes, hashes } = await readLimited(body, encoding, this.options.maxBodyBytes);
      return { status: "ok", bytes, hashes, attempts };
    }
  }
}

/** Only http(s) URLs without credentials are fetched; a redirect is held to the same rule. */
function checkedUrl(text: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(text, base);
  } catch {
    throw new FetchFailure("invalid url");
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new FetchFailure(`unsupported scheme ${url.protocol}`);
  }
  if (url.username !== "" || url.password !== "") throw new FetchFailure("credentials in url");
  return url;
}

/**
 * The body, decoded, with its hashes taken chunk by chunk. Plain `data` events rather than an
 * async iterator: one promise per body instead of one per chunk.
 */
async function readLimited(
  body: Dispatcher.ResponseData["body"],
  encoding: string,
  maxBytes: number,
): Promise<{ bytes: Buffer; hashes: ImageHashes }> {
  const decoder = decoderFor(encoding);
  if (decoder === null) {
    abandon(body);
    throw new FetchFailure(`unsupported Content-Encoding ${encoding}`);
  }
  const hashes = new BodyHashes();
  if (decoder === undefined) {
    const bytes = await collect(body, maxBytes, hashes, () => abandon(body));
    return { bytes, hashes: hashes.digest() };
  }
  // Compressed: the limit holds for the bytes on the wire and for what they expand to.
  let wireBytes = 0;
  body.on("data", (chunk: Buffer) => {
    wireBytes += chunk.length;
    if (wireBytes > maxBytes) decoder.destroy(tooLarge(maxBytes));
  });
  body.on("error", (error) => decoder.destroy(error));
  body.pipe(decoder);
  try {
    const bytes = await collect(decoder, maxBytes, hashes, () => decoder.destroy());
    return { bytes, hashes: hashes.digest() };
  } catch (error) {
    abandon(body);
    if (error instanceof FetchFailure) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    throw new FetchFailure(`invalid ${encoding} body${code === undefined ? "" : ` (${code})`}`);
  }
}

function tooLarge(maxBytes: number): FetchFailure {
  return new FetchFailure(`body larger than ${maxBytes} bytes`);
}

/** All of a stream's bytes, failing as soon as they pass `maxBytes` (then `stop` ends it). */
function collect(
  stream: Readable,
  maxBytes: number,
  hashes: BodyHashes,
  stop: () => void,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (error: Error | undefined) => {
      if (settled) return;
      settled = true;
      stream.off("data", onData);
      // A body that came in one chunk is kept as it is: no copy.
      if (error === undefined)
        resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
      else reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        settle(tooLarge(maxBytes));
        stop();
        return;
      }
      hashes.update(chunk);
      chunks.push(chunk);
    };
    stream.on("data", onData);
    stream.once("end", () => settle(undefined));
    // Errors after the outcome is known (a body dropped on purpose) are expected and ignored.
    stream.on("error", (error) => settle(error));
    stream.once("close", () => {
      const closed = new Error("body closed before its end") as NodeJS.ErrnoException;
      closed.code = "ERR_STREAM_PREMATURE_CLOSE";
      settle(closed);
    });
  });
}

/** undefined: no decoding needed; null: an encoding we cannot decode. */
function decoderFor(encoding: string) {
  switch (encoding) {
    case "":
    case "identity":
      return undefined;
    case "gzip":
    case "x-gzip":
      return createGunzip();
    case "deflate":
      return createInflate();
    case "br":
      return createBrotliDecompress();
    default:
      return null;
  }
}

/** Drops a body we will not read; undici reports that as an abort error, which is expected. */
function abandon(body: Dispatcher.ResponseData["body"]): void {
  body.on("error", () => {});
  body.destroy();
}

async function discard(body: Dispatcher.ResponseData["body"], signal: AbortSignal): Promise<void> {
  try {
    await body.dump({ limit: 64 * 1024, signal });
  } catch {
    // The answer is already known; a body that cannot be drained only costs its connection.
  }
}

function headerValues(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function asFailure(error: unknown): FetchFailure {
  if (error instanceof FetchFailure) return error;
  if (error instanceof ClipcrawlError) return new FetchFailure(error.message);
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === "string" && code !== "") {
    return new FetchFailure(failureReason(code), RETRYABLE_CODES.has(code));
  }
  const message = error instanceof Error ? error.message : String(error);
  return new FetchFailure(message.split("\n")[0]?.slice(0, 200) ?? "unknown error");
}
