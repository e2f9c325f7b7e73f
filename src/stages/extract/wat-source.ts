/**
 * The bytes of one WAT input as a stream of chunks: a local file, an http(s) URL or an s3://
 * object (io/s3-objects.ts), fetched with retries. A download that breaks mid-way resumes with
 * a Range request from the last byte received, so a retry never feeds the parser the same bytes
 * twice.
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Dispatcher } from "undici";
import { InputError } from "../../errors.js";
import { isRetryableStatus, sleep } from "../../io/http.js";
import { guardedHttpDispatcher, privateAddressRefusal } from "../../io/network-guard.js";
import { isS3ObjectUrl, streamS3Object } from "../../io/s3-objects.js";
import type { WatInput } from "./wat-inputs.js";

export interface WatSourceOptions {
  retries: number;
  timeoutSeconds: number;
  /**
   * Let the URL (and its redirects) reach private and other special-use addresses. Not asked of
   * s3:// inputs: they reach only the configured endpoint, never an address the input names.
   */
  allowPrivateNetwork: boolean;
  signal?: AbortSignal;
}

const READ_CHUNK_BYTES = 4 * 1024 * 1024;

export async function* openWatInput(
  input: WatInput,
  options: WatSourceOptions,
): AsyncGenerator<Buffer> {
  if (input.kind === "file") {
    yield* readLocalFile(input);
    return;
  }
  if (isS3ObjectUrl(input.url)) {
    yield* streamS3Object(input.url, {
      retries: options.retries,
      timeoutSeconds: options.timeoutSeconds,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    return;
  }
  yield* fetchWithResume(input.url, options);
}

async function* readLocalFile(input: WatInput & { kind: "file" }): AsyncGenerator<Buffer> {
  try {
    const info = await stat(input.path);
    if (!info.isFile()) throw new InputError("CC_INPUT_NOT_FILE", input.name, "is not a file");
  } catch (error) {
    if (error instanceof InputError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const reason = code === "ENOENT" ? "no such file" : (error as Error).message;
    throw new InputError("CC_INPUT_MISSING", input.name, reason);
  }
  yield* createReadStream(input.path, { highWaterMark: READ_CHUNK_BYTES }) as AsyncIterable<Buffer>;
}

async function* fetchWithResume(url: string, options: WatSourceOptions): AsyncGenerator<Buffer> {
  let received = 0;
  let lastError = "";
  // Loaded only for a URL input: a local file never pays for undici.
  const { request } = await import("undici");
  const dispatcher = await guardedHttpDispatcher(options.allowPrivateNetwork);
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    if (attempt > 0) await sleep(Math.min(30_000, 500 * 2 ** (attempt - 1)), options.signal);
    if (options.signal?.aborted) throw new InputError("CC_ABORTED", url, "stopped");
    let response: Dispatcher.ResponseData;
    try {
      response = await request(url, {
        dispatcher,
        headers: received > 0 ? { range: `bytes=${received}-` } : {},
        headersTimeout: options.timeoutSeconds * 1000,
        bodyTimeout: options.timeoutSeconds * 1000,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
    } catch (error) {
      // A refused address stays refused: no retries.
      const refusal = privateAddressRefusal(error);
      if (refusal !== undefined) throw new InputError(refusal.code, url, refusal.message);
      lastError = (error as Error).message;
      continue;
    }
    const status = response.statusCode;
    if (status !== 200 && status !== 206) {
      await response.body.dump();
      lastError = `HTTP ${status}`;
      if (isRetryableStatus(status)) continue;
      throw new InputError("CC_HTTP_STATUS", url, `HTTP ${status}`);
    }
    // A server that ignores Range sends everything again: skip what was already passed on.
    let skip = status === 200 ? received : 0;
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          continue;
        }
        const fresh = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        received += fresh.length;
        yield fresh;
      }
      return;
    } catch (error) {
      lastError = `connection broke after ${received} bytes (${(error as Error).message})`;
    }
  }
  throw new InputError(
    "CC_HTTP_FAILED",
    url,
    `failed after ${options.retries + 1} attempts: ${lastError}`,
  );
}
