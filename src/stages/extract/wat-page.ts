/**
 * The part of a WAT metadata record the extractor needs: the page URL, its `<base href>`, the
 * crawl date, the source WARC position, and the links of the wanted paths (`IMG@/src`).
 *
 * Most of a page's WAT JSON is anchor links the extractor never looks at, and decoding plus
 * parsing it all cost more than inflating it. So the record is searched for the wanted link
 * objects (`{"path":"IMG@/src",…}`), only those small objects are parsed, and the page fields are
 * read from the three small objects that hold them (`Container`, `WARC-Header-Metadata`, and
 * `Head` when the record mentions a `Base`), found by their key and scanned member by member, so
 * the order of keys at every level does not matter (older crawls put `Envelope` first).
 * Whenever the fast path cannot be sure of what it sees (a brace inside a string next to a link,
 * whitespace in the JSON, a link object it cannot parse, one of those objects twice), the record
 * is parsed in full instead, so the result is always what JSON.parse would give.
 */
import { type JsonMembers, scanObjectMembers } from "./json-object-scan.js";
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
const HTML_METADATA = Buffer.from('"HTML-Metadata"');
const BASE_KEY = Buffer.from('"Base":');
/** The objects holding the page fields, each with the members read from it. */
const CONTAINER = { key: Buffer.from('"Container":{'), members: new Set(["Filename", "Offset"]) };
const WARC_HEADERS = {
  key: Buffer.from('"WARC-Header-Metadata":{'),
  members: new Set(["WARC-Target-URI", "WARC-Date"]),
};
const HEAD = { key: Buffer.from('"Head":{'), members: new Set(["Base"]) };
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

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

/**
 * The fast path; undefined whenever it cannot be certain, so the caller parses in full.
 * Exported for the tests that hold it to readWatPageFully.
 */
export function readWatPageFast(
  record: WarcRecord,
  patterns: LinkPathPatterns,
): WatPage | undefined {
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
  // The span from the first wanted link to the last lies inside the Links array: none of the
  // objects holding page fields can be there, so it need not be searched.
  const outside: Span[] = [
    [0, firstLinkStart],
    [lastLinkEnd + 1, body.length],
  ];
  const container = uniqueObjectMembers(body, outside, CONTAINER);
  const warcHeaders = uniqueObjectMembers(body, outside, WARC_HEADERS);
  if (container === AMBIGUOUS || warcHeaders === AMBIGUOUS) return undefined;
  let head: JsonMembers | undefined;
  if (occursIn(body, outside, BASE_KEY)) {
    const found = uniqueObjectMembers(body, outside, HEAD);
    if (found === AMBIGUOUS) return undefined;
    head = found;
  }
  const base = head?.get("Base");
  return watPage(record, links, {
    container: (key) => container?.get(key),
    warcHeaders: (key) => warcHeaders?.get(key),
    baseHref: typeof base === "string" ? base : undefined,
  });
}

type Span = readonly [start: number, end: number];
const AMBIGUOUS = Symbol("ambiguous");

/**
 * The wanted members of the one object under `key` in the spans; undefined when there is none,
 * AMBIGUOUS when there are several or it cannot be read (the caller parses in full).
 * A key with an object value cannot occur inside a JSON string (its quotes would be escaped),
 * so every match is a real key.
 */
function uniqueObjectMembers(
  body: Buffer,
  spans: readonly Span[],
  object: { key: Buffer; members: ReadonlySet<string> },
): JsonMembers | undefined | typeof AMBIGUOUS {
  let at = -1;
  for (const [start, end] of spans) {
    const region = body.subarray(start, end);
    const first = region.indexOf(object.key);
    if (first < 0) continue;
    if (at >= 0 || region.indexOf(object.key, first + 1) >= 0) return AMBIGUOUS;
    at = start + first;
  }
  if (at < 0) return undefined;
  return scanObjectMembers(body, at + object.key.length - 1, object.members) ?? AMBIGUOUS;
}

function occursIn(body: Buffer, spans: readonly Span[], token: Buffer): boolean {
  return spans.some(([start, end]) => body.subarray(start, end).includes(token));
}

/** Reads a member of an object of the record; undefined when absent. */
type MemberLookup = (key: string) => unknown;

/** The page from its links and the objects holding its fields; both readings go through here. */
function watPage(
  record: WarcRecord,
  links: WatLink[],
  fields: { container: MemberLookup; warcHeaders: MemberLookup; baseHref: string | undefined },
): WatPage {
  const offset = fields.container("Offset");
  const warcOffset = Number(offset);
  return {
    pageUrl:
      record.targetUri !== ""
        ? record.targetUri
        : stringOr(fields.warcHeaders("WARC-Target-URI"), ""),
    baseHref: fields.baseHref,
    crawlDate: stringOr(fields.warcHeaders("WARC-Date"), record.date),
    warcFilename: stringOr(fields.container("Filename"), ""),
    warcOffset: typeof offset === "string" && Number.isSafeInteger(warcOffset) ? warcOffset : null,
    links,
  };
}

/**
 * The link object in body[start, end). Link objects are flat, compact and mostly plain: read as
 * such with a byte scan (no copy of the object into a string, no object for JSON.parse to build);
 * anything else (a value that is not a string, an escape, whitespace) is left to JSON.parse.
 */
function parseLinkObject(body: Buffer, start: number, end: number): WatLink | undefined {
  return scanPlainLinkObject(body, start, end) ?? parseLinkObjectJson(body, start, end);
}

const QUOTE = 0x22;
const COLON = 0x3a;
const COMMA = 0x2c;
const BACKSLASH = 0x5c;
/** The members a link needs: `"path"`, `"url"`, `"alt"` as bytes. */
const PATH_BYTES = [0x70, 0x61, 0x74, 0x68];
const URL_BYTES = [0x75, 0x72, 0x6c];
const ALT_BYTES = [0x61, 0x6c, 0x74];

/**
 * `{"key":"value",…}` with every value a string free of escapes and control characters (what
 * JSON.parse would read the same way, a later duplicate key winning); undefined for anything else.
 */
function scanPlainLinkObject(body: Buffer, start: number, end: number): WatLink | undefined {
  if (body[start] !== OPEN_BRACE || body[end - 1] !== CLOSE_BRACE) return undefined;
  let path: string | undefined;
  let url: string | undefined;
  let alt: string | undefined;
  let cursor = start + 1;
  for (;;) {
    if (body[cursor] !== QUOTE) return undefined;
    const keyStart = cursor + 1;
    const keyEnd = plainStringEnd(body, keyStart, end);
    if (keyEnd < 0 || body[keyEnd + 1] !== COLON || body[keyEnd + 2] !== QUOTE) return undefined;
    const valueStart = keyEnd + 3;
    const valueEnd = plainStringEnd(body, valueStart, end);
    if (valueEnd < 0) return undefined;
    if (bytesEqual(body, keyStart, keyEnd, URL_BYTES)) {
      url = body.toString("utf8", valueStart, valueEnd);
    } else if (bytesEqual(body, keyStart, keyEnd, ALT_BYTES)) {
      alt = body.toString("utf8", valueStart, valueEnd);
    } else if (bytesEqual(body, keyStart, keyEnd, PATH_BYTES)) {
      path = body.toString("utf8", valueStart, valueEnd);
    }
    cursor = valueEnd + 1;
    if (cursor === end - 1) break;
    if (body[cursor] !== COMMA) return undefined;
    cursor++;
  }
  if (path === undefined || url === undefined) return undefined;
  return alt === undefined ? { path, url } : { path, url, alt };
}

/** The closing quote of a string starting at `from`, or -1 when it has an escape or a control byte. */
function plainStringEnd(body: Buffer, from: number, end: number): number {
  for (let at = from; at < end; at++) {
    const byte = body[at] as number;
    if (byte === QUOTE) return at;
    if (byte === BACKSLASH || byte < 0x20) return -1;
  }
  return -1;
}

function bytesEqual(body: Buffer, start: number, end: number, bytes: readonly number[]): boolean {
  if (end - start !== bytes.length) return false;
  for (let at = 0; at < bytes.length; at++) if (body[start + at] !== bytes[at]) return false;
  return true;
}

function parseLinkObjectJson(body: Buffer, start: number, end: number): WatLink | undefined {
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
  return watPage(record, links, {
    container: (key) => container?.[key],
    warcHeaders: (key) => warcHeaders?.[key],
    baseHref: typeof head?.Base === "string" ? head.Base : undefined,
  });
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
