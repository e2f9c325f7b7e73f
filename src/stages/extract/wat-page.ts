/**
 * The part of a WAT metadata record the extractor needs: the page URL, its `<base href>`, the
 * crawl date, the source WARC position, and the links of the wanted paths (`IMG@/src`).
 *
 * Most of a page's WAT JSON is anchor links the extractor never looks at, and decoding plus
 * parsing it all cost more than inflating it. So the record is searched for the wanted link
 * objects (`{"path":"IMG@/src",…}`), only those small objects are parsed, and the few page fields
 * are read as single string tokens. Whenever the fast path cannot be sure of what it sees (a
 * brace inside a string next to a link, whitespace in the JSON, a link object it cannot parse),
 * the record is parsed in full instead, so the result is always what JSON.parse would give.
 */
import type { WarcRecord } from "./warc-records.js";

export interface WatLink {
  path: string;
  url: string;
  alt?: string;
}

export interface WatPage {
  pageUrl: string;
  baseHref: string | undefined;
  crawlDate: string;
  warcFilename: string;
  warcOffset: number | null;
  links: WatLink[];
}

export class WatJsonError extends Error {
  readonly offset: number;

  constructor(offset: number, message: string) {
    super(`invalid WAT JSON in the record at offset ${offset}: ${message}`);
    this.offset = offset;
  }
}

/** Byte patterns derived once from the configured link paths. */
export interface LinkPathPatterns {
  paths: ReadonlySet<string>;
  /** `"IMG@/src"`: any mention of a wanted path. */
  values: Buffer[];
}

export function linkPathPatterns(paths: readonly string[]): LinkPathPatterns {
  return { paths: new Set(paths), values: paths.map((path) => Buffer.from(JSON.stringify(path))) };
}

const PATH_KEY = Buffer.from('"path":');
const OFFSET_KEY = Buffer.from('"Offset":"');
const TARGET_URI_KEY = Buffer.from('"WARC-Target-URI":"');
const BASE_KEY = Buffer.from('"Base":"');
const WARC_DATE_KEY = Buffer.from('"WARC-Date":"');
const FILENAME_KEY = Buffer.from('"Filename":"');
const ENVELOPE_KEY = Buffer.from('"Envelope"');
const HTML_METADATA = Buffer.from('"HTML-Metadata"');
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

export function mentionsHtml(record: WarcRecord): boolean {
  return record.body.includes(HTML_METADATA);
}

/**
 * The page with its wanted links, or undefined when the record has none.
 * Throws WatJsonError when the record is not valid WAT JSON.
 */
export function readWatPage(record: WarcRecord, patterns: LinkPathPatterns): WatPage | undefined {
  const body = record.body;
  if (!patterns.values.some((pattern) => body.includes(pattern))) return undefined;
  if (!looksLikeJsonObject(body)) {
    throw new WatJsonError(record.offset, "the record is cut off or is not a JSON object");
  }
  return readWatPageFast(record, patterns) ?? readWatPageFully(record, patterns.paths);
}

/** The fast path; undefined whenever it cannot be certain, so the caller parses in full. */
function readWatPageFast(record: WarcRecord, patterns: LinkPathPatterns): WatPage | undefined {
  const body = record.body;
  const found: { at: number; link: WatLink }[] = [];
  let firstLinkStart = body.length;
  let lastLinkEnd = 0;
  for (const value of patterns.values) {
    for (let at = body.indexOf(value); at >= 0; at = body.indexOf(value, at + value.length)) {
      // Every mention must be the value of a "path" key (no whitespace, as ia-web-commons writes).
      const keyAt = at - PATH_KEY.length;
      if (keyAt < 0 || body.compare(PATH_KEY, 0, PATH_KEY.length, keyAt, at) !== 0)
        return undefined;
      const start = body.lastIndexOf(OPEN_BRACE, keyAt);
      const end = body.indexOf(CLOSE_BRACE, at + value.length);
      if (start < 0 || end < 0) return undefined;
      const before = body[start - 1];
      const after = body[end + 1];
      // A link object sits in the Links array: "[{…}," or ",{…}]". Anything else means a brace
      // inside a string fooled the search.
      if ((before !== 0x5b && before !== 0x2c) || (after !== 0x2c && after !== 0x5d))
        return undefined;
      const link = parseLinkObject(body, start, end + 1);
      if (link === undefined) return undefined;
      found.push({ at, link });
      firstLinkStart = Math.min(firstLinkStart, start);
      lastLinkEnd = Math.max(lastLinkEnd, end);
    }
  }
  // Several link paths were searched one after the other: restore the page's order.
  if (patterns.values.length > 1) found.sort((a, b) => a.at - b.at);
  const links = found.map((item) => item.link);
  const envelopeAt = body.indexOf(ENVELOPE_KEY);
  const container = envelopeAt < 0 ? body : body.subarray(0, envelopeAt);
  const offsetText = stringToken(container, OFFSET_KEY);
  const warcOffset = Number(offsetText);
  return {
    pageUrl: record.targetUri !== "" ? record.targetUri : (stringToken(body, TARGET_URI_KEY) ?? ""),
    // Base is a key of Head, never of a link object: the span between the first and the last
    // wanted link lies inside the Links array and need not be searched.
    baseHref:
      stringToken(body.subarray(0, firstLinkStart), BASE_KEY) ??
      stringToken(body.subarray(lastLinkEnd), BASE_KEY),
    crawlDate: stringToken(body, WARC_DATE_KEY) ?? record.date,
    warcFilename: stringToken(container, FILENAME_KEY) ?? "",
    warcOffset: offsetText !== undefined && Number.isSafeInteger(warcOffset) ? warcOffset : null,
    links,
  };
}

function parseLinkObject(body: Buffer, start: number, end: number): WatLink | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body.toString("utf8", start, end));
  } catch {
    return undefined;
  }
  return toWatLink(value);
}

function toWatLink(value: unknown): WatLink | undefined {
  const link = asObject(value);
  if (link === undefined || typeof link.path !== "string" || typeof link.url !== "string")
    return undefined;
  return typeof link.alt === "string"
    ? { path: link.path, url: link.url, alt: link.alt }
    : { path: link.path, url: link.url };
}

/** The value of the first `"key":"…"` token, unescaped; undefined when absent or unreadable. */
function stringToken(body: Buffer, keyAndQuote: Buffer): string | undefined {
  const at = body.indexOf(keyAndQuote);
  if (at < 0) return undefined;
  const open = at + keyAndQuote.length - 1;
  let close = body.indexOf(QUOTE, open + 1);
  while (close > 0 && isEscaped(body, close)) close = body.indexOf(QUOTE, close + 1);
  if (close < 0) return undefined;
  try {
    return JSON.parse(body.toString("utf8", open, close + 1)) as string;
  } catch {
    return undefined;
  }
}

function isEscaped(body: Buffer, quote: number): boolean {
  let backslashes = 0;
  for (let i = quote - 1; i >= 0 && body[i] === BACKSLASH; i--) backslashes++;
  return backslashes % 2 === 1;
}

function looksLikeJsonObject(body: Buffer): boolean {
  let first = 0;
  while (first < body.length && isJsonWhitespace(body[first])) first++;
  let last = body.length - 1;
  while (last > first && isJsonWhitespace(body[last])) last--;
  return body[first] === OPEN_BRACE && body[last] === CLOSE_BRACE;
}

function isJsonWhitespace(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

/** The reference reading: JSON.parse of the whole record. */
export function readWatPageFully(
  record: WarcRecord,
  wantedPaths: ReadonlySet<string>,
): WatPage | undefined {
  let envelope: unknown;
  try {
    envelope = JSON.parse(record.body.toString("utf8"));
  } catch (error) {
    throw new WatJsonError(record.offset, error instanceof Error ? error.message : String(error));
  }
  const root = asObject(envelope);
  const warcHeaders = asObject(path(root, "Envelope", "WARC-Header-Metadata"));
  const html = asObject(
    path(root, "Envelope", "Payload-Metadata", "HTTP-Response-Metadata", "HTML-Metadata"),
  );
  if (html === undefined) return undefined;
  const rawLinks = html.Links;
  if (rawLinks !== undefined && !Array.isArray(rawLinks)) {
    throw new WatJsonError(record.offset, "HTML-Metadata.Links is not a list");
  }
  const links: WatLink[] = [];
  for (const item of rawLinks ?? []) {
    const link = toWatLink(item);
    if (link !== undefined && wantedPaths.has(link.path)) links.push(link);
  }
  const container = asObject(root?.Container);
  const head = asObject(html.Head);
  const warcOffset = Number(container?.Offset);
  return {
    pageUrl:
      record.targetUri !== "" ? record.targetUri : stringOr(warcHeaders?.["WARC-Target-URI"], ""),
    baseHref: typeof head?.Base === "string" ? head.Base : undefined,
    crawlDate: stringOr(warcHeaders?.["WARC-Date"], record.date),
    warcFilename: stringOr(container?.Filename, ""),
    warcOffset:
      typeof container?.Offset === "string" && Number.isSafeInteger(warcOffset) ? warcOffset : null,
    links,
  };
}

type JsonObject = Record<string, unknown>;

function asObject(value: unknown): JsonObject | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

function path(value: JsonObject | undefined, ...keys: string[]): unknown {
  let current: unknown = value;
  for (const key of keys) current = asObject(current)?.[key];
  return current;
}

function stringOr(value: unknown, fallback: string): string {
  return typeof value === "string" && value !== "" ? value : fallback;
}
