/**
 * What `clipcrawl extract` can read: local files, globs, http(s) URLs, s3:// objects, prefixes
 * and wildcards, and Common Crawl path listings (`wat.paths.gz`, local, http(s) or s3://, or
 * `--crawl CC-MAIN-…` against a base URL). Resolution is deterministic: the order given, globs
 * and S3 listings sorted by name, so shard ids are stable.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { gunzipSync } from "node:zlib";
import { InputError } from "../../errors.js";
import { layout } from "../../io/layout.js";
import { guardedHttpDispatcher } from "../../io/network-guard.js";
import {
  isS3ObjectUrl,
  listS3Objects,
  parseS3ObjectUrl,
  readS3Object,
} from "../../io/s3-objects.js";
import type { DatasetStorage } from "../../io/storage.js";

/** A `url` input is http(s):// or s3://. */
export type WatInput = { name: string } & (
  | { kind: "file"; path: string }
  | { kind: "url"; url: string }
);

export interface ResolveInputsOptions {
  crawl?: string | undefined;
  baseUrl: string;
  /** Let listing URLs reach private and other special-use addresses (extract.allowPrivateNetwork). */
  allowPrivateNetwork?: boolean | undefined;
  limit?: number | undefined;
  cwd?: string;
  /** Retries of an s3:// path listing read or prefix listed (extract.retries; default 5). */
  retries?: number | undefined;
}

export interface ResolvedInputs {
  inputs: WatInput[];
  /** Input specs that named nothing (a glob without matches, an unreadable listing). */
  errors: InputError[];
}

export async function resolveWatInputs(
  specs: readonly string[],
  options: ResolveInputsOptions,
): Promise<ResolvedInputs> {
  const cwd = options.cwd ?? process.cwd();
  const inputs: WatInput[] = [];
  const errors: InputError[] = [];
  const allSpecs = [...specs];
  if (options.crawl !== undefined) {
    if (!/^CC-MAIN-\d{4}-\d{2}$/.test(options.crawl)) {
      errors.push(
        new InputError("CC_BAD_CRAWL", options.crawl, "a crawl id looks like CC-MAIN-2024-10"),
      );
    } else {
      allSpecs.push(resolveAgainst(`crawl-data/${options.crawl}/wat.paths.gz`, options.baseUrl));
    }
  }
  for (const spec of allSpecs) {
    try {
      inputs.push(...(await expandSpec(spec, cwd, options)));
    } catch (error) {
      if (error instanceof InputError) errors.push(error);
      else throw error;
    }
  }
  const limited = options.limit === undefined ? inputs : inputs.slice(0, options.limit);
  return { inputs: limited, errors };
}

async function expandSpec(
  spec: string,
  cwd: string,
  options: ResolveInputsOptions,
): Promise<WatInput[]> {
  const isUrl = /^https?:\/\//i.test(spec);
  if (isS3ObjectUrl(spec)) return expandS3Spec(spec, options);
  if (isPathListing(spec)) {
    const listing = isUrl
      ? await fetchListing(spec, options.allowPrivateNetwork === true)
      : await readListing(resolve(cwd, spec), spec);
    return parseListing(listing, spec, options.baseUrl);
  }
  if (isUrl) return [{ name: spec, kind: "url", url: spec }];
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new InputError(
      "CC_UNSUPPORTED_INPUT",
      spec,
      "only local paths, http(s):// and s3:// URLs are supported",
    );
  }
  if (await isGlob(spec)) {
    const { glob } = await import("tinyglobby");
    const matches = await glob(spec, { cwd, absolute: true, onlyFiles: true });
    if (matches.length === 0)
      throw new InputError("CC_NO_MATCH", spec, "no files match this pattern");
    return matches.sort().map((path) => ({ name: path, kind: "file", path }));
  }
  const path = resolve(cwd, spec);
  return [{ name: path, kind: "file", path }];
}

/**
 * An s3:// spec: a path listing (its relative lines are keys in the listing's bucket, as in
 * Common Crawl's), a prefix ending in `/` (every object under it), a key with `*` or `?` (the
 * objects whose key matches; neither crosses a `/`), or one object.
 */
async function expandS3Spec(spec: string, options: ResolveInputsOptions): Promise<WatInput[]> {
  const { bucket, key } = parseS3ObjectUrl(spec);
  const reading = { retries: options.retries ?? 5 };
  if (/\.paths(\.gz)?$/i.test(key)) {
    const listing = await readS3Object(spec, reading);
    return parseListing(listing, spec, `s3://${bucket}/`);
  }
  const wildcard = key.search(/[*?]/);
  if (key === "" || key.endsWith("/") || wildcard !== -1) {
    const prefix = wildcard === -1 ? key : key.slice(0, wildcard);
    const pattern = wildcard === -1 ? undefined : keyPattern(key);
    const urls = await listS3Objects(
      `s3://${bucket}/${prefix}`,
      (found) => !found.endsWith("/") && (pattern === undefined || pattern.test(found)),
      reading,
    );
    if (urls.length === 0) {
      throw new InputError("CC_NO_MATCH", spec, "no objects under this prefix match");
    }
    return urls.map((url) => ({ name: url, kind: "url", url }));
  }
  return [{ name: spec, kind: "url", url: spec }];
}

/** `crawl/*.wat.gz` → a regular expression over whole keys; `*` and `?` stay inside a segment. */
function keyPattern(key: string): RegExp {
  const source = key
    .split(/([*?])/)
    .map((part) =>
      part === "*" ? "[^/]*" : part === "?" ? "[^/]" : part.replace(/[.+^${}()|[\]\\]/g, "\\$&"),
    )
    .join("");
  return new RegExp(`^${source}$`);
}

/** A listing line or crawl path against a base: s3:// bases join as key prefixes. */
function resolveAgainst(relative: string, base: string): string {
  if (!isS3ObjectUrl(base)) return new URL(relative, base).href;
  return `${base.replace(/\/*$/, "/")}${relative.replace(/^\/+/, "")}`;
}

/**
 * Whether tinyglobby reads `spec` as a pattern. A path without any of the characters a pattern
 * is made of is a plain path: tinyglobby (and picomatch) load only for one that has some.
 */
async function isGlob(spec: string): Promise<boolean> {
  if (!/[*?[\]{}()!@+]/.test(spec)) return false;
  const { isDynamicPattern } = await import("tinyglobby");
  return isDynamicPattern(spec);
}

function isPathListing(spec: string): boolean {
  return /\.paths(\.gz)?$/i.test(new URL(spec, "file:///").pathname);
}

async function readListing(path: string, spec: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new InputError(
      "CC_INPUT_MISSING",
      spec,
      `cannot read the path listing (${(error as Error).message})`,
    );
  }
}

async function fetchListing(url: string, allowPrivateNetwork: boolean): Promise<Buffer> {
  try {
    const { request } = await import("undici");
    const response = await request(url, {
      dispatcher: await guardedHttpDispatcher(allowPrivateNetwork),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const body = Buffer.from(await response.body.arrayBuffer());
    if (response.statusCode !== 200) {
      throw new InputError(
        "CC_HTTP_STATUS",
        url,
        `HTTP ${response.statusCode} for the path listing`,
      );
    }
    return body;
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(
      "CC_HTTP",
      url,
      `cannot fetch the path listing (${(error as Error).message})`,
    );
  }
}

function parseListing(content: Buffer, spec: string, baseUrl: string): WatInput[] {
  let text: string;
  try {
    text = (content[0] === 0x1f && content[1] === 0x8b ? gunzipSync(content) : content).toString(
      "utf8",
    );
  } catch (error) {
    throw new InputError(
      "CC_BAD_LISTING",
      spec,
      `the path listing is not valid gzip (${(error as Error).message})`,
    );
  }
  return text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const url = isS3ObjectUrl(line)
        ? line
        : /^[a-z][a-z0-9+.-]*:/i.test(line)
          ? new URL(line).href
          : resolveAgainst(line, baseUrl);
      return { name: url, kind: "url", url };
    });
}

/**
 * The root's inputs, in shard order, with `given` appended where not there yet: a root grows
 * crawl by crawl, and extract's shard NNNNN is always the root's input NNNNN, whatever inputs
 * a run names (an input given again keeps its shard). Written atomically before any shard runs.
 */
export async function rootInputs(
  storage: DatasetStorage,
  given: readonly WatInput[],
): Promise<WatInput[]> {
  const path = layout.rootInputs();
  const known: WatInput[] = (await storage.exists(path))
    ? (JSON.parse(await storage.readText(path)) as { inputs: WatInput[] }).inputs
    : [];
  const names = new Set(known.map((input) => input.name));
  const added = given.filter((input) => !names.has(input.name) && names.add(input.name));
  if (added.length === 0 && known.length > 0) return known;
  const inputs = [...known, ...added];
  await storage.writeAtomic(path, `${JSON.stringify({ inputs }, null, 2)}\n`);
  return inputs;
}
