/**
 * The part of a WAT metadata record the extractor needs: the page URL, its `<base href>`, the
 * crawl date and source WARC position, and the image links. The JSON is parsed only when the
 * body mentions one of the wanted link paths: most records (requests, crawl metadata, non-HTML
 * responses, pages without images) are skipped with a byte search.
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

const HTML_METADATA = Buffer.from('"HTML-Metadata"');

export function mentionsHtml(record: WarcRecord): boolean {
  return record.body.includes(HTML_METADATA);
}

/** Byte patterns for the link paths, e.g. `"IMG@/src"`, for the pre-parse check. */
export function linkPathPatterns(paths: readonly string[]): Buffer[] {
  return paths.map((path) => Buffer.from(JSON.stringify(path)));
}

/**
 * The page with its links of the wanted paths, or undefined when the record has none.
 * Throws WatJsonError when the record should have been parsed but is not valid WAT JSON.
 */
export function readWatPage(
  record: WarcRecord,
  wantedPaths: ReadonlySet<string>,
  patterns: readonly Buffer[],
): WatPage | undefined {
  if (!patterns.some((pattern) => record.body.includes(pattern))) return undefined;
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
    const link = asObject(item);
    if (link === undefined || typeof link.path !== "string" || !wantedPaths.has(link.path))
      continue;
    if (typeof link.url !== "string") continue;
    links.push({
      path: link.path,
      url: link.url,
      ...(typeof link.alt === "string" ? { alt: link.alt } : {}),
    });
  }
  const container = asObject(root?.Container);
  const head = asObject(html.Head);
  const warcOffset = Number(container?.Offset);
  return {
    pageUrl: stringOr(warcHeaders?.["WARC-Target-URI"], record.targetUri),
    baseHref: typeof head?.Base === "string" ? head.Base : undefined,
    crawlDate: stringOr(warcHeaders?.["WARC-Date"], record.date),
    warcFilename: stringOr(container?.Filename, ""),
    warcOffset: Number.isSafeInteger(warcOffset) ? warcOffset : null,
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
