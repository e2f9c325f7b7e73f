/**
 * The one place a dataset root given as a string becomes the storage the code works on: a local
 * path, or `s3://bucket/prefix` (the SDK itself loads only when the first request goes out).
 * Library functions take `root: string | storage`; a storage passed in is used as it is, so a
 * caller that opened one (a test, the runner) keeps it.
 *
 * An S3 root's settings come from the environment, so every command and every worker thread or
 * process it starts sees the same: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (an S3-compatible
 * store; path-style addressing), CLIPCRAWL_CACHE_DIR and CLIPCRAWL_CACHE_BYTES (the local cache
 * of files that readers need as paths). Credentials and region: the SDK's standard chain.
 */
import { ConfigError } from "../errors.js";
import { LocalStorage } from "./local-storage.js";
import { isS3Url, S3Storage, type S3StorageOptions } from "./s3-storage.js";
import type { DatasetStorage } from "./storage.js";

export function openRoot(root: string): LocalStorage | S3Storage;
export function openRoot<Storage extends DatasetStorage>(
  root: string | Storage,
): Storage | LocalStorage | S3Storage;
export function openRoot(root: string | DatasetStorage): DatasetStorage {
  if (typeof root !== "string") return root;
  if (isS3Url(root)) return new S3Storage(root, s3OptionsFromEnv());
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(root)?.[1];
  if (scheme !== undefined) {
    throw new ConfigError(
      `${root}: ${scheme}:// roots are not supported; give a local folder or s3://bucket/prefix`,
    );
  }
  return new LocalStorage(root);
}

/** The S3 root's settings from the environment (see the top). */
export function s3OptionsFromEnv(env: NodeJS.ProcessEnv = process.env): S3StorageOptions {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  const cacheBytes = env.CLIPCRAWL_CACHE_BYTES;
  return {
    ...(endpoint ? { endpoint } : {}),
    ...(env.CLIPCRAWL_CACHE_DIR ? { cacheDir: env.CLIPCRAWL_CACHE_DIR } : {}),
    ...(cacheBytes ? { cacheBytes: parseByteSize(cacheBytes, "CLIPCRAWL_CACHE_BYTES") } : {}),
  };
}

/** `20000000000`, `512M`, `20G` (powers of 1024) → bytes. */
function parseByteSize(text: string, name: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?$/i.exec(text.trim());
  if (match === null) {
    throw new ConfigError(`${name}=${text}: not a size (bytes, or a number with K, M, G or T)`);
  }
  const power = " KMGT".indexOf((match[2] || " ").toUpperCase());
  return Math.floor(Number(match[1]) * 1024 ** power);
}

/**
 * The storage of a root that must be a local folder (the demo's: it builds and serves a dataset
 * on the laptop it runs on). An object-storage root is refused before any work starts.
 */
export function localRootOf(storage: DatasetStorage, what: string): LocalStorage {
  if (storage instanceof LocalStorage) return storage;
  throw new ConfigError(
    `${what} needs a local --root; ${storage.root} is object storage (docs/storage.md lists what runs on S3)`,
  );
}
