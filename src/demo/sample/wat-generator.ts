/**
 * Deterministic generator of Common Crawl WAT files, for fixtures, demos and benchmarks.
 *
 * A WAT file is a multi-member gzip: one member per WARC/1.0 record. It opens with a `warcinfo`
 * record, then holds one `metadata` record (a JSON envelope) for each record of the source WARC
 * file it was extracted from: the WARC's own warcinfo, and for every page fetch ("capture") its
 * `request`, `response` and `metadata` records. The JSON mirrors what ia-web-commons writes
 * (see shared/reference/common-crawl-wat.md), down to key order, string-typed numbers and the
 * escaping of its JSON library, so that a parser tested on these files meets no surprise on real
 * ones.
 *
 * The pages are built to exercise an image–alt-text extractor: every kind of link the extractor
 * emits, image URLs in every form found in the wild, alt texts in twenty languages with leftover
 * HTML entities, odd whitespace, emoji, very short and very long alts, duplicates across pages,
 * a few pages with thousands of links, and coloured-shape images whose alt, in the page's
 * language (English, German, French, Spanish, Italian, Portuguese or Dutch), is right about 80 % of
 * the time (for a CLIP filtering demo, multilingual tier included).
 *
 * Everything random comes from seeded generators, and each capture is a pure function of its
 * index and of where it starts in the source WARC. The same options therefore give a
 * byte-identical file, whether the captures are rendered here or on worker threads.
 */

import { once } from "node:events";
import { createWriteStream, type WriteStream } from "node:fs";
import { availableParallelism } from "node:os";
import { basename } from "node:path";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { gzipSync } from "node:zlib";
import {
  CAPTION_LANGUAGES,
  CAPTIONS_BY_LANGUAGE,
  type CaptionLanguage,
  HOST_NAME_WORDS,
  isShapeAltLanguage,
  NAVIGATION_LABELS,
  NO_LANGUAGE_ALTS,
  type ShapeAltLanguage,
  shapeAltPhrasings,
} from "./sample-captions.js";
import type { ShapeColour, ShapeName } from "./shape-images.js";
import { webCaption } from "./web-captions.js";

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

export interface WatGeneratorOptions {
  /** Seed of every random choice. Files of one seed share their sites and their crawl. */
  seed: number;
  /** Position of the file in its crawl segment: names the source WARC and varies the pages. */
  fileIndex?: number;
  /**
   * The file name the warcinfo record gives (`WARC-Filename`); defaults to the base name of
   * `path`. Give the final name when `path` is a temporary one (an atomic write), or the bytes
   * would differ from one write to the next.
   */
  watFilename?: string;
  /** Number of captures (page fetches) to write, each as request, response and metadata. */
  pages?: number;
  /** Keep adding captures beyond `pages` until the compressed file has at least this many bytes. */
  minBytes?: number;
  /**
   * Where page alt texts come from: "sample" (default), the sample's hand-written captions, which
   * repeat; "web", new sentences nearly every time, as on the web (web-captions.ts), for benches.
   */
  captions?: CaptionSource;
  /** Return the byte offset of every gzip member (one per record) in the summary. */
  recordOffsets?: boolean;
  /**
   * Worker threads that render and compress captures; 0 does it all on the calling thread.
   * Defaults to 0 for small files and on machines with fewer than 4 CPUs, else to one worker per
   * CPU but one (at most 8) from 16 MiB up. The output does not depend on it.
   */
  workers?: number;
}

export interface WatFileSummary {
  path: string;
  /** Size of the compressed file. */
  bytes: number;
  /** WARC records written (one gzip member each). */
  records: number;
  /** Captures written; each gives three records. */
  captures: number;
  /** Responses that carry `HTML-Metadata`. */
  htmlPages: number;
  /** `IMG@/src` links over all pages. */
  imgLinks: number;
  /** `IMG@/src` links whose `alt` is present and not blank. */
  imgLinksWithAlt: number;
  /** Byte offset of each gzip member, in file order; only with `recordOffsets`. */
  memberOffsets?: number[];
}

/** The bundled sample: SAMPLE_FILE_COUNT files of DEFAULT_PAGES_PER_FILE captures each. */
export const DEFAULT_PAGES_PER_FILE = 150;
export const SAMPLE_FILE_COUNT = 3;
export const SAMPLE_SEED = 20240221;

/** `CC-MAIN-SAMPLE-00000.warc.wat.gz` for file 0. */
export function sampleFileName(fileIndex: number): string {
  return `CC-MAIN-SAMPLE-${String(fileIndex).padStart(5, "0")}.warc.wat.gz`;
}

/** Host of the coloured-shape images; their file name states the true colour and shape. */
export const SHAPE_IMAGE_HOST = "shapes.clipcrawl-sample.test";
export const SHAPE_COLOURS = [
  "red",
  "green",
  "blue",
  "yellow",
  "purple",
  "orange",
  "black",
  "white",
] as const;
export const SHAPE_NAMES = ["circle", "square", "triangle", "star"] as const;

/** Writes one WAT file and reports what it holds. */
export async function writeWatFile(
  path: string,
  options: WatGeneratorOptions,
): Promise<WatFileSummary> {
  const file: WatFileIdentity = {
    seed: options.seed >>> 0,
    fileIndex: options.fileIndex ?? 0,
    watFilename: options.watFilename ?? basename(path),
    captions: options.captions ?? "sample",
  };
  const target = {
    captures: options.pages ?? DEFAULT_PAGES_PER_FILE,
    bytes: options.minBytes ?? 0,
  };
  const workers = options.workers ?? (target.bytes >= 16 * 2 ** 20 ? defaultWorkerCount() : 0);

  const generator = new WatFileGenerator(file);
  const renderer: CaptureRenderer =
    workers > 0 ? new WorkerCaptureRenderer(file, workers) : new InlineCaptureRenderer(generator);
  const output = new GzipMemberFile(path, options.recordOffsets === true);
  let totals: CaptureTotals;
  try {
    await output.append(generator.openingRecords().map(compressRecord));
    totals = await writeCaptures(generator, renderer, output, target);
  } finally {
    await renderer.close();
    await output.close();
  }

  return {
    path,
    bytes: output.bytes,
    records: 2 + 3 * totals.captures,
    ...totals,
    ...(options.recordOffsets === true ? { memberOffsets: output.memberOffsets } : {}),
  };
}

interface CaptureTotals extends CaptureStats {
  captures: number;
}

/**
 * Renders captures ahead, in batches, and appends them in index order until the file has both
 * enough captures and enough bytes. Where it ends depends only on the sizes of the captures
 * before, so the few rendered past the end are dropped and the output stays deterministic.
 */
async function writeCaptures(
  generator: WatFileGenerator,
  renderer: CaptureRenderer,
  output: GzipMemberFile,
  target: { captures: number; bytes: number },
): Promise<CaptureTotals> {
  const totals: CaptureTotals = { captures: 0, htmlPages: 0, imgLinks: 0, imgLinksWithAlt: 0 };
  const isComplete = () => totals.captures >= target.captures && output.bytes >= target.bytes;
  // With no byte target, nothing past `target.captures` is ever needed.
  const captureLimit = target.bytes > 0 ? Number.POSITIVE_INFINITY : target.captures;
  let nextIndex = 0;
  let sourceOffset = generator.openingSourceBytes;
  const pending: Promise<RenderedCapture[]>[] = [];

  while (!isComplete()) {
    while (pending.length < renderer.maxPendingBatches && nextIndex < captureLimit) {
      if (nextIndex >= target.captures && output.bytes >= target.bytes) break;
      const jobs: CaptureJob[] = [];
      for (; jobs.length < CAPTURES_PER_BATCH && nextIndex < captureLimit; nextIndex++) {
        jobs.push({ index: nextIndex, sourceOffset });
        sourceOffset += generator.sourceBytesOf(nextIndex);
      }
      const batch = renderer.render(jobs);
      // The batch awaited first reports a failure; the others must not count as unhandled.
      batch.catch(() => undefined);
      pending.push(batch);
    }
    const batch = await pending.shift();
    if (batch === undefined) break;
    for (const capture of batch) {
      if (isComplete()) break;
      await output.append(capture.members);
      totals.captures += 1;
      totals.htmlPages += capture.stats.htmlPages;
      totals.imgLinks += capture.stats.imgLinks;
      totals.imgLinksWithAlt += capture.stats.imgLinksWithAlt;
    }
  }
  return totals;
}

/** On one or two CPUs the main thread is better off rendering than feeding workers. */
function defaultWorkerCount(): number {
  const cpus = availableParallelism();
  return cpus < 4 ? 0 : Math.min(8, cpus - 1);
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness
// ---------------------------------------------------------------------------------------------

/** Mixes integers into one 32-bit seed (murmur3 finaliser over a running hash). */
export function mixSeed(...parts: number[]): number {
  let hash = 0x9e3779b9;
  for (const part of parts) {
    hash = Math.imul(hash ^ (part >>> 0), 0x85ebca6b);
    hash ^= hash >>> 13;
    hash = Math.imul(hash, 0xc2b2ae35);
    hash ^= hash >>> 16;
  }
  return hash >>> 0;
}

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const HEX_ALPHABET = "0123456789abcdef";
const ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyz0123456789";

/** Uniform numbers in [0, 1) from `seed`, as a function (SeededRandom's `next`). */
export function seededUniform(seed: number): () => number {
  const random = new SeededRandom(seed);
  return () => random.next();
}

/** mulberry32: tiny, fast, and good enough for test data. */
export class SeededRandom {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** Uniform unsigned 32-bit integer. */
  uint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) | 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("cannot pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** Picks a key with probability proportional to its weight. */
  weighted<K>(weights: readonly (readonly [K, number])[]): K {
    let total = 0;
    for (const [, weight] of weights) total += weight;
    let point = this.next() * total;
    for (const [key, weight] of weights) {
      point -= weight;
      if (point < 0) return key;
    }
    return (weights[weights.length - 1] as readonly [K, number])[0];
  }

  string(length: number, alphabet: string): string {
    let text = "";
    for (let i = 0; i < length; i++) text += alphabet[Math.floor(this.next() * alphabet.length)];
    return text;
  }

  /** A `sha1:` digest as WARC writes it (32 base32 characters), without hashing anything. */
  sha1Digest(): string {
    let digest = "";
    while (digest.length < 32) {
      let word = this.uint32();
      for (let i = 0; i < 6; i++, word >>>= 5) digest += BASE32_ALPHABET[word & 31];
    }
    return `sha1:${digest.slice(0, 32)}`;
  }

  /** A version-4 UUID. */
  uuid(): string {
    let hex = "";
    for (let i = 0; i < 4; i++) hex += this.uint32().toString(16).padStart(8, "0");
    const variant = HEX_ALPHABET[8 + (this.uint32() & 3)];
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20)}`;
  }
}

/** Labels of the independent random streams, so that adding draws to one moves no other. */
const STREAM = {
  crawl: 1,
  crawlFile: 2,
  sites: 3,
  opening: 4,
  captureRun: 5,
  captureSite: 6,
  capturePlan: 7,
  captureRender: 8,
} as const;

// ---------------------------------------------------------------------------------------------
// The crawl: ids, file names and dates
// ---------------------------------------------------------------------------------------------

const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const MONTH_NAMES = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** What a WAT file is generated from; everything else follows from it. */
interface WatFileIdentity {
  seed: number;
  fileIndex: number;
  watFilename: string;
  captions: CaptionSource;
}

export type CaptionSource = "sample" | "web";

interface CrawlDescription {
  crawlId: string;
  crawlMonth: string;
  watFilename: string;
  sourceWarcFilename: string;
  segmentStartMs: number;
  extractedAtMs: number;
  extractorIp: string;
  crawlerHostname: string;
  sourceWarcinfoId: string;
}

/** The crawl a seed stands for: an ISO week of 2022–2024, like `CC-MAIN-2024-10`. */
function describeCrawl({ seed, fileIndex, watFilename }: WatFileIdentity): CrawlDescription {
  const crawlRandom = new SeededRandom(mixSeed(seed, STREAM.crawl));
  const year = 2022 + crawlRandom.int(0, 2);
  const week = crawlRandom.int(5, 50);
  const crawlStartMs = mondayOfIsoWeek(year, week);
  const fileRandom = new SeededRandom(mixSeed(seed, fileIndex, STREAM.crawlFile));
  const segmentStartMs =
    crawlStartMs + (1 + (fileIndex % 9)) * DAY_MS + fileRandom.int(0, 86_399) * 1000;
  const segmentEnd = compactTimestamp(segmentStartMs + 2 * HOUR_MS);
  const ipSuffix = `${crawlRandom.int(1, 254)}.${crawlRandom.int(1, 254)}`;
  return {
    crawlId: `CC-MAIN-${year}-${String(week).padStart(2, "0")}`,
    crawlMonth: `${MONTH_NAMES[new Date(crawlStartMs).getUTCMonth()]} ${year}`,
    watFilename,
    sourceWarcFilename: `CC-MAIN-${compactTimestamp(segmentStartMs)}-${segmentEnd}-${String(fileIndex).padStart(5, "0")}.warc.gz`,
    segmentStartMs,
    extractedAtMs: crawlStartMs + 12 * DAY_MS + fileRandom.int(0, 86_399) * 1000,
    extractorIp: `10.67.${ipSuffix}`,
    crawlerHostname: `ip-10-67-${ipSuffix.replace(".", "-")}.ec2.internal`,
    sourceWarcinfoId: fileRandom.uuid(),
  };
}

function mondayOfIsoWeek(year: number, week: number): number {
  const january4 = Date.UTC(year, 0, 4);
  const weekdayFromMonday = (new Date(january4).getUTCDay() + 6) % 7;
  return january4 - weekdayFromMonday * DAY_MS + (week - 1) * 7 * DAY_MS;
}

/** `2024-02-21T10:11:12Z`, as WARC-Date. */
function warcDate(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}

/** `20240221101112`, as in Common Crawl file names. */
function compactTimestamp(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace(/[-T:]/g, "");
}

/** `Wed, 21 Feb 2024 10:11:12 GMT`, as HTTP headers write dates. */
function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

// ---------------------------------------------------------------------------------------------
// Sites: the hosts pages come from, with the images they share between their pages
// ---------------------------------------------------------------------------------------------

/** How a site's HTML writes the URLs of its own images. */
type ImageUrlStyle = "absolute" | "absolute-http" | "root-relative" | "relative" | "cdn";

interface SiteImage {
  url: string;
  alt: string;
}

interface Site {
  host: string;
  name: string;
  language: CaptionLanguage;
  ipAddress: string;
  server: string;
  poweredBy: string | undefined;
  generator: string | undefined;
  imageUrlStyle: ImageUrlStyle;
  cdnHost: string;
  sections: readonly string[];
  logo: SiteImage;
  /** The same logo URL as written in the footer, under another alt. */
  footerLogoAlt: string;
  banners: readonly SiteImage[];
  productShots: readonly SiteImage[];
  /** Relative weight of the site in the crawl (a few sites get most of the pages). */
  weight: number;
}

const SITES_PER_LANGUAGE: Readonly<Record<CaptionLanguage, number>> = {
  en: 100,
  de: 18,
  fr: 18,
  es: 18,
  it: 16,
  pt: 16,
  nl: 16,
  ru: 18,
  uk: 16,
  pl: 16,
  zh: 16,
  ja: 16,
  ko: 16,
  ar: 16,
  hi: 16,
  tr: 16,
  vi: 16,
  el: 16,
  he: 16,
  th: 16,
};

const HOST_SUFFIXES = [".test", ".test", ".example.com", ".example.net", ".example.org"];
const CDN_HOSTS = [
  "cdn.example.net",
  "static.example.org",
  "img.example.com",
  "media.shopcdn.test",
  "images.example.com",
];
const SERVERS = [
  "nginx",
  "Apache",
  "cloudflare",
  "Apache/2.4.57 (Debian)",
  "LiteSpeed",
  "openresty",
];
const POWERED_BY = ["PHP/8.1.27", "PHP/7.4.33", "Express", "ASP.NET", "Next.js"];
const GENERATORS = ["WordPress 6.4.3", "Joomla! - Open Source Content Management", "Hugo 0.121.1"];
const SECTION_NAMES = [
  "blog",
  "news",
  "products",
  "shop",
  "category",
  "recipes",
  "travel",
  "gallery",
  "article",
  "collections",
  "magazin",
  "p",
];

/** The sites of a crawl, with cumulative weights for picking one in proportion to its weight. */
class SitePool {
  readonly sites: readonly Site[];
  readonly #cumulativeWeights: number[];

  constructor(seed: number) {
    const random = new SeededRandom(mixSeed(seed, STREAM.sites));
    const usedHosts = new Set<string>();
    const sites: Site[] = [];
    for (const language of CAPTION_LANGUAGES) {
      for (let i = 0; i < SITES_PER_LANGUAGE[language]; i++) {
        sites.push(buildSite(random, uniqueHost(random, language, usedHosts), language));
      }
    }
    this.sites = sites;
    let total = 0;
    this.#cumulativeWeights = sites.map((site) => {
      total += site.weight;
      return total;
    });
  }

  pick(random: SeededRandom): Site {
    const weights = this.#cumulativeWeights;
    const point = random.next() * (weights[weights.length - 1] ?? 0);
    let low = 0;
    let high = weights.length - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((weights[middle] ?? 0) <= point) low = middle + 1;
      else high = middle;
    }
    return this.sites[low] as Site;
  }
}

function uniqueHost(random: SeededRandom, language: CaptionLanguage, used: Set<string>): string {
  const words = HOST_NAME_WORDS[language];
  for (;;) {
    const first = random.pick(words);
    const second = random.pick(words);
    if (first === second) continue;
    const joined = random.chance(0.5) ? `${first}${second}` : `${first}-${second}`;
    const prefix = random.pick(["", "", "www.", "shop.", "blog."]);
    const host = `${prefix}${joined}${random.pick(HOST_SUFFIXES)}`;
    if (used.has(host)) continue;
    used.add(host);
    return host;
  }
}

function buildSite(random: SeededRandom, host: string, language: CaptionLanguage): Site {
  const name = siteNameOf(host);
  const captions = CAPTIONS_BY_LANGUAGE[language];
  const site: Site = {
    host,
    name,
    language,
    ipAddress: `${random.int(23, 212)}.${random.int(0, 255)}.${random.int(0, 255)}.${random.int(1, 254)}`,
    server: random.pick(SERVERS),
    poweredBy: random.chance(0.4) ? random.pick(POWERED_BY) : undefined,
    generator: random.chance(0.5) ? random.pick(GENERATORS) : undefined,
    imageUrlStyle: random.weighted<ImageUrlStyle>([
      ["absolute", 40],
      ["root-relative", 25],
      ["cdn", 20],
      ["relative", 10],
      ["absolute-http", 5],
    ]),
    cdnHost: random.pick(CDN_HOSTS),
    sections: [random.pick(SECTION_NAMES), random.pick(SECTION_NAMES), random.pick(SECTION_NAMES)],
    logo: { url: "", alt: "" },
    footerLogoAlt: random.pick(["logo", `${name} logo`, "Logo", `${name} – home`]),
    banners: [],
    productShots: [],
    // Some sites get more of the crawl; English has the largest share of the web.
    weight: (language === "en" ? 1.6 : 1) / (1 + random.next() * 4),
  };
  site.logo = {
    url: siteImageUrl(
      site,
      random.pick(["logo.png", "logo.svg", "img/logo@2x.png", "header-logo.jpg"]),
    ),
    alt: random.pick([name, `${name} logo`, `Logo ${name}`, "logo"]),
  };
  site.banners = Array.from({ length: random.int(2, 4) }, (_, n) => ({
    url: siteImageUrl(site, `banners/${slugify(name)}-banner-${n + 1}.jpg`),
    alt: random.pick(captions),
  }));
  site.productShots = Array.from({ length: random.int(6, 20) }, () => {
    const alt = random.pick(captions);
    const file = `products/${random.int(100, 9999)}/${slugOrId(alt, random)}.jpg`;
    return { url: siteImageUrl(site, file), alt };
  });
  return site;
}

function siteNameOf(host: string): string {
  const label = host.replace(/^(www|shop|blog)\./, "").split(".")[0] ?? host;
  return label
    .split("-")
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join(" ");
}

/** URL of one of the site's own images, written the way this site's HTML writes it. */
function siteImageUrl(site: Site, file: string): string {
  switch (site.imageUrlStyle) {
    case "absolute":
      return `https://${site.host}/media/${file}`;
    case "absolute-http":
      return `http://${site.host}/media/${file}`;
    case "root-relative":
      return `/media/${file}`;
    case "relative":
      return `media/${file}`;
    case "cdn":
      return `//${site.cdnHost}/${slugify(site.name)}/${file}`;
  }
}

// ---------------------------------------------------------------------------------------------
// Text helpers
// ---------------------------------------------------------------------------------------------

const slugCache = new Map<string, string>();

/** Slugs are cached: pages draw their text from a small corpus, and NFD normalising is slow. */
function slugify(text: string): string {
  let slug = slugCache.get(text);
  if (slug === undefined) {
    slug = text
      .normalize("NFD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 60);
    if (slugCache.size < 10_000) slugCache.set(text, slug);
  }
  return slug;
}

/** A URL slug for a caption; captions in non-Latin scripts get a number or a percent-encoding. */
function slugOrId(caption: string, random: SeededRandom): string {
  const slug = slugify(caption);
  if (slug.length >= 8) return slug;
  if (random.chance(0.4)) return encodeURIComponent(caption.split(" ").slice(0, 3).join("-"));
  return String(random.int(10_000, 999_999));
}

/** ia-web-commons cuts anchor text at 128 characters. */
function anchorText(text: string): string {
  return text.length > 128 ? text.slice(0, 128) : text;
}

function otherLanguage(random: SeededRandom, language: CaptionLanguage): CaptionLanguage {
  for (;;) {
    const candidate = random.pick(CAPTION_LANGUAGES);
    if (candidate !== language) return candidate;
  }
}

// ---------------------------------------------------------------------------------------------
// Captures: one page fetch and what it returned
// ---------------------------------------------------------------------------------------------

type CaptureKind =
  | "html"
  | "not-found"
  | "redirect"
  | "image"
  | "pdf"
  | "robots"
  | "corrupt-headers";

const CAPTURE_KIND_WEIGHTS: readonly (readonly [CaptureKind, number])[] = [
  ["html", 80],
  ["not-found", 4],
  ["redirect", 4],
  ["image", 4],
  ["pdf", 3],
  ["robots", 3],
  ["corrupt-headers", 3],
];

/** Every HUGE_PAGE_PERIOD-th capture is a catalogue page with thousands of links. */
const HUGE_PAGE_PERIOD = 50;
/** The crawler fetches a host's pages in runs: a capture starts a new run with this chance. */
const NEW_RUN_CHANCE = 0.75;
/** Captures follow each other in the source WARC at about this pace. */
const FETCH_INTERVAL_MS = 450;

interface Capture {
  index: number;
  site: Site;
  kind: CaptureKind;
  isHuge: boolean;
  url: string;
  /** What the page is about: used for its title, slug and main image. */
  topic: string;
  fetchedAtMs: number;
  /** Where a redirect points, as its Location header writes it. */
  redirectLocation: string | undefined;
  /** Whether the response body is HTML the extractor parsed (some 301s and broken ones too). */
  hasHtml: boolean;
}

function captureKind(random: SeededRandom, isHuge: boolean): CaptureKind {
  return isHuge ? "html" : random.weighted(CAPTURE_KIND_WEIGHTS);
}

function captureHasHtml(random: SeededRandom, kind: CaptureKind): boolean {
  switch (kind) {
    case "html":
    case "not-found":
      return true;
    case "redirect":
    case "corrupt-headers":
      return random.chance(0.5);
    default:
      return false;
  }
}

function captureUrl(random: SeededRandom, site: Site, kind: CaptureKind, topic: string): string {
  const scheme = random.chance(0.95) ? "https" : "http";
  const origin = `${scheme}://${site.host}`;
  const slug = slugOrId(topic, random);
  switch (kind) {
    case "robots":
      return `${origin}/robots.txt`;
    case "image":
      return `${origin}/wp-content/uploads/${random.int(2015, 2024)}/${String(random.int(1, 12)).padStart(2, "0")}/IMG_${random.int(1000, 9999)}.jpg`;
    case "pdf":
      return `${origin}/downloads/${slug}.pdf`;
    default:
      return `${origin}${pagePath(random, site, slug)}`;
  }
}

function pagePath(random: SeededRandom, site: Site, slug: string): string {
  const section = random.pick(site.sections);
  switch (random.int(0, 6)) {
    case 0:
      return "/";
    case 1:
      return `/${section}/${slug}/`;
    case 2:
      return `/${section}/${random.int(2016, 2024)}/${String(random.int(1, 12)).padStart(2, "0")}/${slug}.html`;
    case 3:
      return `/${section}/${slug}-${random.int(100, 99999)}`;
    case 4:
      return `/index.php?option=com_content&view=article&id=${random.int(1, 9999)}&Itemid=${random.int(1, 300)}`;
    case 5:
      return `/${site.language}/${section}/${slug}`;
    default:
      return `/${section}/${slug}?page=${random.int(2, 40)}&sort=newest`;
  }
}

function redirectLocation(random: SeededRandom, site: Site, url: string): string {
  return random.chance(0.5)
    ? url.replace("http://", "https://").replace(/\/?$/, "/")
    : `/${random.pick(site.sections)}/`;
}

// ---------------------------------------------------------------------------------------------
// Links of an HTML page
// ---------------------------------------------------------------------------------------------

/**
 * One entry of `HTML-Metadata.Links`. Properties are declared in the order ia-web-commons writes
 * them: it serialises a java.util.HashMap, whose iteration order for these keys is fixed.
 */
interface WatLink {
  path: string;
  alt?: string | undefined;
  rel?: string | undefined;
  text?: string | undefined;
  title?: string | undefined;
  type?: string | undefined;
  url: string;
  target?: string | undefined;
}

function link(path: string, url: string, attributes: Omit<WatLink, "path" | "url"> = {}): WatLink {
  return {
    path,
    alt: attributes.alt,
    rel: attributes.rel,
    text: attributes.text,
    title: attributes.title,
    type: attributes.type,
    url,
    target: attributes.target,
  };
}

function imageLink(url: string, alt: string | undefined, title?: string): WatLink {
  return link("IMG@/src", url, { alt, title });
}

/** Accumulates a page's links and a rough estimate of their serialised size. */
class LinkList {
  readonly links: WatLink[] = [];
  estimatedBytes = 0;

  add(entry: WatLink): void {
    this.links.push(entry);
    this.estimatedBytes +=
      32 +
      entry.path.length +
      entry.url.length +
      2 * (entry.text?.length ?? 0) +
      2 * (entry.alt?.length ?? 0);
  }
}

interface PageContext {
  random: SeededRandom;
  site: Site;
  capture: Capture;
  captions: readonly string[];
  captionSource: CaptionSource;
  navigation: readonly string[];
}

function pageLinks(context: PageContext, hasBase: boolean): WatLink[] {
  const { random, capture } = context;
  const list = new LinkList();
  if (capture.kind === "redirect") {
    list.add(link("A@/href", capture.redirectLocation ?? "/", { text: "here" }));
    return list.links;
  }
  addHeader(context, list);
  if (capture.kind === "not-found") {
    addFooter(context, list);
    return list.links;
  }
  if (capture.isHuge) {
    addCatalogueGrid(context, list);
  } else {
    addArticle(context, list, hasBase);
    addSidebar(context, list);
    addEmbeds(context, list);
    // Real pages are mostly anchors: tag clouds, archives, "related" lists.
    const targetBytes = random.int(8_000, 26_000);
    while (list.estimatedBytes < targetBytes) addAnchorList(context, list, random.int(5, 20));
  }
  addFooter(context, list);
  return list.links;
}

function addHeader({ random, site, navigation }: PageContext, list: LinkList): void {
  list.add(link("A@/href", "/", { title: random.chance(0.3) ? site.name : undefined }));
  list.add(imageLink(site.logo.url, site.logo.alt));
  for (const label of navigation) {
    list.add(link("A@/href", `/${slugify(label) || random.int(1, 99)}/`, { text: label }));
  }
  if (random.chance(0.4)) {
    list.add(link("FORM@/action", random.pick(["/search", "?", `https://${site.host}/search/`])));
  }
}

function addArticle(context: PageContext, list: LinkList, hasBase: boolean): void {
  const { random, site, capture } = context;
  list.add(
    imageLink(siteImageUrl(site, `uploads/${slugOrId(capture.topic, random)}.jpg`), capture.topic),
  );
  const imageCount = random.int(2, 14);
  for (let i = 0; i < imageCount; i++) {
    list.add(contentImage(context));
    if (random.chance(0.5)) addInlineAnchor(context, list);
  }
  for (let i = random.int(1, 3); i > 0; i--) list.add(edgeCaseImage(context));
  if (hasBase) {
    list.add(
      imageLink(
        `images/${slugOrId(random.pick(context.captions), random)}.jpg`,
        random.pick(context.captions),
      ),
    );
    list.add(imageLink(`../uploads/${random.int(100, 999)}.png`, random.pick(context.captions)));
  }
}

function addInlineAnchor({ random, site, captions }: PageContext, list: LinkList): void {
  const caption = random.pick(captions);
  const url = random.chance(0.7)
    ? `https://${site.host}/${random.pick(site.sections)}/${slugOrId(caption, random)}/`
    : `/${random.pick(site.sections)}/${random.int(1, 9999)}`;
  list.add(link("A@/href", url, { text: caption }));
}

function addSidebar(context: PageContext, list: LinkList): void {
  const { random, site } = context;
  for (let i = random.int(0, 2); i > 0; i--) {
    const banner = random.pick(site.banners);
    list.add(link("A@/href", `/${random.pick(site.sections)}/`, {}));
    list.add(imageLink(banner.url, banner.alt));
  }
  for (let i = random.int(0, 6); i > 0; i--) {
    const shot = random.pick(site.productShots);
    list.add(imageLink(shot.url, shot.alt));
    list.add(
      link("A@/href", `/${random.pick(site.sections)}/${random.int(100, 9999)}`, {
        text: shot.alt,
      }),
    );
  }
  addAnchorList(context, list, random.int(5, 15));
}

function addAnchorList(
  { random, site, captions }: PageContext,
  list: LinkList,
  count: number,
): void {
  const section = random.pick(site.sections);
  for (let i = 0; i < count; i++) {
    const caption = random.pick(captions);
    const longText = random.chance(0.02)
      ? `${caption} ${random.pick(captions)} ${random.pick(captions)} ${random.pick(captions)}`
      : caption;
    const rel = random.chance(0.1) ? "nofollow" : undefined;
    const url = random.chance(0.6)
      ? `https://${site.host}/${section}/${slugOrId(caption, random)}-${random.int(1, 99999)}`
      : `/${section}/page/${random.int(2, 400)}`;
    list.add(link("A@/href", url, { rel, text: anchorText(longText) }));
  }
}

function addEmbeds({ random, site }: PageContext, list: LinkList): void {
  if (random.chance(0.25)) {
    const url = random.chance(0.6)
      ? `https://video.example.net/embed/${random.string(11, ALPHANUMERIC)}`
      : `//maps.example.com/embed?pb=${random.string(24, ALPHANUMERIC)}`;
    list.add(link("IFRAME@/src", url));
  }
  if (random.chance(0.15)) {
    list.add(
      link(
        "LINK@/href",
        `/wp-content/plugins/gallery/style.css?ver=${random.int(1, 9)}.${random.int(0, 9)}`,
        { rel: "stylesheet", type: "text/css" },
      ),
    );
  }
  if (random.chance(0.12))
    list.add(
      link(
        "TD@/background",
        random.pick([
          "images/td_bg.gif",
          "/img/table-bg.png",
          `https://${site.host}/theme/bg_${random.int(1, 9)}.jpg`,
        ]),
      ),
    );
  if (random.chance(0.12))
    list.add(
      link(
        "DIV@/data-uri",
        random.pick([
          `/api/widgets/${random.int(1, 999)}`,
          `https://${site.host}/media/hero-${random.int(1, 30)}.jpg`,
        ]),
      ),
    );
  if (random.chance(0.06))
    list.add(link("DIV@/data-href", `https://${site.host}/share/${random.int(1, 9999)}`));
  if (random.chance(0.3))
    list.add(link("FORM@/action", `https://${site.host}/newsletter/subscribe`));
}

function addFooter(context: PageContext, list: LinkList): void {
  const { random, site, navigation } = context;
  for (const label of navigation.slice(-3))
    list.add(link("A@/href", `/${slugify(label) || "info"}`, { text: label }));
  list.add(
    link("A@/href", `https://social.example.com/${slugify(site.name)}`, {
      rel: "noopener",
      text: "Facebook",
      target: "_blank",
    }),
  );
  list.add(link("A@/href", `mailto:info@${site.host}`, { text: `info@${site.host}` }));
  if (random.chance(0.3)) list.add(link("A@/href", "#top", { text: "↑" }));
  if (random.chance(0.25)) list.add(imageLink(site.logo.url, site.footerLogoAlt));
  if (random.chance(0.2))
    list.add(link("A@/href", "javascript:void(0)", { text: random.pick(navigation) }));
}

/** A page with thousands of links, more than a thousand of them images: a product catalogue. */
function addCatalogueGrid(context: PageContext, list: LinkList): void {
  const { random, site, captions } = context;
  const products = random.int(1_000, 2_400);
  for (let i = 0; i < products; i++) {
    const caption = random.pick(captions);
    const id = random.int(10_000, 999_999);
    const productUrl = `https://${site.host}/${random.pick(site.sections)}/${slugOrId(caption, random)}-${id}`;
    list.add(link("A@/href", productUrl, {}));
    const thumbnail = siteImageUrl(site, `catalog/${id}/thumb.jpg`);
    const kind = random.next();
    if (isShapeAltLanguage(site.language) && random.chance(SHAPE_SHARE)) {
      list.add(shapeImage(random, site.language));
    } else if (kind < 0.7) list.add(imageLink(thumbnail, caption));
    else if (kind < 0.9) list.add(imageLink(thumbnail, undefined));
    else list.add(contentImage(context));
    if (random.chance(0.3)) list.add(link("A@/href", productUrl, { text: anchorText(caption) }));
  }
  for (let pageNumber = 2; pageNumber < random.int(40, 400); pageNumber++) {
    list.add(link("A@/href", `?page=${pageNumber}`, { text: String(pageNumber) }));
  }
}

// ---------------------------------------------------------------------------------------------
// Images and their alt texts
// ---------------------------------------------------------------------------------------------

function contentImage(context: PageContext): WatLink {
  const { random, site, captions } = context;
  if (isShapeAltLanguage(site.language) && random.chance(CONTENT_IMAGE_SHAPE_CHANCE))
    return shapeImage(random, site.language);
  const alt = contentImageAlt(context);
  // CMSs name uploads after their title or keep the camera's name, never after a garbled alt.
  const stem =
    alt !== undefined && captions.includes(alt)
      ? slugOrId(alt, random)
      : `${random.pick(["IMG_", "DSC", "P", "image-"])}${random.int(1000, 99999)}`;
  const month = String(random.int(1, 12)).padStart(2, "0");
  const size = `${random.int(300, 1600)}x${random.int(200, 1200)}`;
  const url = siteImageUrl(site, `uploads/${random.int(2015, 2024)}/${month}/${stem}-${size}.jpg`);
  if (alt === undefined && random.chance(0.25)) {
    return imageLink(url, undefined, random.pick(captions));
  }
  return imageLink(url, alt);
}

/** `undefined` means the IMG tag has no alt attribute at all. */
function contentImageAlt({
  random,
  site,
  captions,
  captionSource,
}: PageContext): string | undefined {
  const source = random.weighted([
    ["missing", 18],
    ["empty", 4],
    ["page-language", 62],
    ["other-language", 6],
    ["no-language", 10],
  ] as const);
  switch (source) {
    case "missing":
      return undefined;
    case "empty":
      return "";
    case "no-language":
      return random.pick(NO_LANGUAGE_ALTS);
    case "other-language": {
      const language = otherLanguage(random, site.language);
      return captionSource === "web"
        ? webCaption(random, language)
        : random.pick(CAPTIONS_BY_LANGUAGE[language]);
    }
    case "page-language": {
      const caption = random.pick(captions);
      return random.chance(0.12) ? quirkyAlt(random, caption, site.language) : caption;
    }
  }
}

/** Alt texts as pages really write them: half-decoded entities, stray whitespace, emoji. */
function quirkyAlt(random: SeededRandom, caption: string, language: CaptionLanguage): string {
  switch (random.int(0, 4)) {
    case 0:
      return withLeftoverEntity(random, caption, language);
    case 1:
      return withMessyWhitespace(random, caption);
    case 2:
      return random.chance(0.5)
        ? `${caption} ${random.pick(EMOJI)}`
        : `${random.pick(EMOJI)}${random.pick(EMOJI)} ${caption}`;
    case 3:
      return random.pick(SHORT_ALTS);
    default:
      return keywordStuffedAlt(random, language);
  }
}

const EMOJI = ["😀", "😍", "🔥", "✨", "👍", "🌞", "🎉", "❤️", "🇩🇪", "👨‍👩‍👧", "🍕", "🚲"];
const SHORT_ALTS = ["img", "logo", " ab ", "pic", "foto", "Bild", "1", "x", "…", "icon", ""];

/**
 * The extractor decodes entities once; pages that encoded them twice leave `&amp;` and friends
 * in the alt text.
 */
function withLeftoverEntity(
  random: SeededRandom,
  caption: string,
  language: CaptionLanguage,
): string {
  switch (random.int(0, 4)) {
    case 0:
      return `${caption} &amp; ${random.pick(CAPTIONS_BY_LANGUAGE[language])}`;
    case 1:
      return `&quot;${caption}&quot;`;
    case 2:
      return caption.includes("'") ? caption.replaceAll("'", "&#39;") : `&#39;${caption}&#39;`;
    case 3: {
      const french = CAPTIONS_BY_LANGUAGE.fr.filter((text) => text.includes("é"));
      return random.pick(french).replaceAll("é", "&eacute;");
    }
    default:
      return `${caption} &#x1F600;`;
  }
}

function withMessyWhitespace(random: SeededRandom, caption: string): string {
  const gaps = [" ", "  ", "\t", "\n", " \n\t ", "   "];
  const words = caption.split(" ");
  let text = random.pick(["", " ", "  ", "\n  ", "\t"]);
  words.forEach((word, i) => {
    text += i === 0 ? word : `${random.chance(0.35) ? random.pick(gaps) : " "}${word}`;
  });
  return text + random.pick(["", " ", "  \n", "\t", "\r\n"]);
}

/** SEO pages stuff their alt with every caption they have: over a thousand characters. */
function keywordStuffedAlt(random: SeededRandom, language: CaptionLanguage): string {
  const captions = CAPTIONS_BY_LANGUAGE[language];
  const separator = random.pick([", ", " | ", " - ", " "]);
  let text = random.pick(captions);
  while (text.length <= 1000) text += separator + random.pick(captions);
  return text;
}

/** Share of the IMG links of pages in a SHAPE_ALT_LANGUAGES language that show a coloured shape. */
const SHAPE_SHARE = 0.3;
/** Logos, banners and odd URLs are IMG links too: this share of content images gives SHAPE_SHARE. */
const CONTENT_IMAGE_SHAPE_CHANCE = 0.6;

/**
 * A coloured-shape image for the CLIP demo, its alt in the page's language. About one alt in five
 * describes another colour or shape, so that filtering by image–text similarity has something to
 * remove.
 */
function shapeImage(random: SeededRandom, language: ShapeAltLanguage): WatLink {
  const colour = random.pick(SHAPE_COLOURS);
  const shape = random.pick(SHAPE_NAMES);
  const variant = String(random.int(0, 199)).padStart(4, "0");
  const url = `https://${SHAPE_IMAGE_HOST}/img/${colour}-${shape}-${variant}.jpg`;
  if (random.chance(0.8)) return imageLink(url, shapeAlt(random, language, colour, shape));
  const wrongColour = random.chance(0.6) ? differentFrom(random, SHAPE_COLOURS, colour) : colour;
  const wrongShape =
    wrongColour === colour || random.chance(0.3)
      ? differentFrom(random, SHAPE_NAMES, shape)
      : shape;
  return imageLink(url, shapeAlt(random, language, wrongColour, wrongShape));
}

function shapeAlt(
  random: SeededRandom,
  language: ShapeAltLanguage,
  colour: ShapeColour,
  shape: ShapeName,
): string {
  return random.pick(shapeAltPhrasings(language, colour, shape));
}

function differentFrom<T>(random: SeededRandom, items: readonly T[], excluded: T): T {
  for (;;) {
    const candidate = random.pick(items);
    if (candidate !== excluded) return candidate;
  }
}

/** Image URLs in the forms a WAT extractor must resolve, keep or drop. */
function edgeCaseImage({ random, site, captions }: PageContext): WatLink {
  const alt = random.chance(0.85) ? random.pick(captions) : undefined;
  const file = `${slugOrId(random.pick(captions), random)}.jpg`;
  const n = random.int(1, 999);
  const url = random.pick<() => string>([
    () => `http://${site.host}/images/${file}`,
    () => `images/${file}`,
    () => `/static/img/${n}.png`,
    () => `//${random.pick(CDN_HOSTS)}/${slugify(site.name)}/${file}`,
    () => random.pick([`../images/${file}`, `../../uploads/${n}.jpg`, `./../media/${file}`]),
    () =>
      random.pick([
        "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
        "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E",
      ]),
    () => random.pick(["javascript:void(0)", "javascript:void(0);", "javascript:;"]),
    () => `ftp://ftp.example.org/pub/photos/${file}`,
    () => `mailto:photos@${site.host}`,
    () =>
      random.pick([
        `https://${site.host}/uploads/My Photo ${n}.jpg`,
        ` https://${site.host}/img/${file} `,
      ]),
    () =>
      random.pick([
        `https://${site.host}/bilder/straße-café-${n}.jpg`,
        `https://${site.host}/写真/夏の海-${n}.jpg`,
        `https://${site.host}/фото/${n}.jpg`,
      ]),
    () =>
      random.pick([
        `https://${site.host}/%E5%86%99%E7%9C%9F/${n}.jpg`,
        `https://${site.host}/images/caf%C3%A9%20terrace%20${n}.jpg`,
      ]),
    () => `https://user:pass@${site.host}/private/${file}`,
    () => random.pick([`cdn.example.org/${file}`, `${site.host}/images/${file}`]),
    () => "",
  ])();
  return imageLink(url, alt);
}

// ---------------------------------------------------------------------------------------------
// HTML-Metadata: the head and the links of a page
// ---------------------------------------------------------------------------------------------

interface HtmlMetadata {
  Head: {
    Metas: Record<string, string>[];
    Scripts?: { path: string; type?: string; url: string }[];
    Title?: string;
    Link?: WatLink[];
    Base?: string;
  };
  Links: WatLink[];
}

const TITLE_SEPARATORS = [" | ", " – ", " - ", " :: ", " » "];

/**
 * Captions a page of `captions: "web"` draws its alt texts and anchors from: several times its
 * links, so few repeat within a page (a catalogue page has thousands of links).
 */
const WEB_CAPTIONS_PER_PAGE = 256;
const WEB_CAPTIONS_PER_HUGE_PAGE = 8192;

function htmlMetadata(random: SeededRandom, capture: Capture, source: CaptionSource): HtmlMetadata {
  const { site } = capture;
  const context: PageContext = {
    random,
    site,
    capture,
    captions:
      source === "web"
        ? Array.from(
            { length: capture.isHuge ? WEB_CAPTIONS_PER_HUGE_PAGE : WEB_CAPTIONS_PER_PAGE },
            () => webCaption(random, site.language),
          )
        : CAPTIONS_BY_LANGUAGE[site.language],
    captionSource: source,
    navigation: NAVIGATION_LABELS[site.language],
  };
  const base = random.chance(0.1) ? baseHref(random, site) : undefined;
  const title = pageTitle(random, capture);
  const head: HtmlMetadata["Head"] = {
    Metas: pageMetas(random, capture, title),
    Scripts: pageScripts(random, site),
    Title: title,
    Link: headLinks(random, capture),
  };
  if (base !== undefined) head.Base = base;
  return { Head: head, Links: pageLinks(context, base !== undefined) };
}

/** `<base href>` values, including relative ones that must themselves be resolved. */
function baseHref(random: SeededRandom, site: Site): string {
  return random.pick([
    `https://${site.host}/`,
    `https://${site.host}/shop/`,
    `https://${site.cdnHost}/assets/`,
    "/",
    `/${random.pick(site.sections)}/`,
    "../",
    "static/",
  ]);
}

function pageTitle(random: SeededRandom, capture: Capture): string {
  const { site } = capture;
  if (capture.kind === "not-found")
    return random.pick([
      "404 Not Found",
      `Page not found${random.pick(TITLE_SEPARATORS)}${site.name}`,
    ]);
  if (capture.kind === "redirect") return "301 Moved Permanently";
  if (random.chance(0.03)) return random.pick(["", "  ", "Untitled"]);
  if (random.chance(0.03))
    return `${capture.topic} &amp; more${random.pick(TITLE_SEPARATORS)}${site.name}`;
  return `${capture.topic}${random.pick(TITLE_SEPARATORS)}${site.name}`;
}

function pageMetas(
  random: SeededRandom,
  capture: Capture,
  title: string,
): Record<string, string>[] {
  const { site } = capture;
  const metas: Record<string, string>[] = [
    { "http-equiv": "Content-Type", content: "text/html; charset=UTF-8" },
    { name: "viewport", content: "width=device-width, initial-scale=1" },
  ];
  if (random.chance(0.7))
    metas.push({
      name: "description",
      content: `${capture.topic}. ${random.pick(CAPTIONS_BY_LANGUAGE[site.language])}.`,
    });
  if (random.chance(0.6)) {
    metas.push({ property: "og:title", content: title });
    metas.push({
      property: "og:image",
      content: `https://${site.host}/media/og/${random.int(1, 9999)}.jpg`,
    });
  }
  if (site.generator !== undefined) metas.push({ name: "generator", content: site.generator });
  if (random.chance(0.1))
    metas.push({
      name: "robots",
      content: random.pick(["index, follow", "noindex, nofollow", "noai, noimageai"]),
    });
  return metas;
}

function pageScripts(
  random: SeededRandom,
  site: Site,
): { path: string; type?: string; url: string }[] {
  const scripts: { path: string; type?: string; url: string }[] = [
    {
      path: "SCRIPT@/src",
      type: "text/javascript",
      url: `https://${site.host}/wp-includes/js/jquery/jquery.min.js?ver=3.7.1`,
    },
  ];
  for (let i = random.int(0, 4); i > 0; i--) {
    scripts.push({
      path: "SCRIPT@/src",
      url: `//${random.pick(CDN_HOSTS)}/js/${random.string(8, ALPHANUMERIC)}.js`,
    });
  }
  return scripts;
}

function headLinks(random: SeededRandom, capture: Capture): WatLink[] {
  const { site } = capture;
  const canonical = random.chance(0.05) ? capture.url.replace(/^https?:\/\//, "") : capture.url;
  return [
    link(
      "LINK@/href",
      `/wp-content/themes/${slugify(site.name)}/style.css?ver=${random.int(1, 9)}.${random.int(0, 9)}`,
      { rel: "stylesheet", type: "text/css" },
    ),
    link("LINK@/href", "/favicon.ico", { rel: "shortcut icon" }),
    link("LINK@/href", canonical, { rel: "canonical" }),
  ];
}

// ---------------------------------------------------------------------------------------------
// Source WARC records, described as the WAT envelopes of ia-web-commons
// ---------------------------------------------------------------------------------------------

type JsonObject = Record<string, unknown>;

/** A record of the source WARC file, as much of it as its WAT envelope describes. */
interface SourceRecord {
  id: string;
  /** The source record's WARC headers, in the order the WAT shows them. */
  headers: Record<string, string>;
  payload: JsonObject;
  /** Bytes of the source record's block (its Content-Length). */
  contentLength: number;
  warcHeaderLength: number;
  /** Size of the record's gzip member in the source WARC.gz, before and after compression. */
  inflatedLength: number;
  deflateLength: number;
  inflatedCrc: number;
  blockDigest: string;
}

type SourceRecordContent = Pick<SourceRecord, "id" | "headers" | "payload" | "contentLength">;

/** Adds the sizes and checksums of the record's gzip member in the source WARC.gz. */
function sourceRecord(
  random: SeededRandom,
  content: SourceRecordContent,
  deflateRatio: number,
): SourceRecord {
  let warcHeaderLength = "WARC/1.0\r\n".length + 2;
  for (const [name, value] of Object.entries(content.headers)) {
    warcHeaderLength += name.length + 2 + value.length + 2;
  }
  const inflatedLength = warcHeaderLength + content.contentLength + 4;
  const jitter = random.int(85, 115) / 100;
  return {
    ...content,
    warcHeaderLength,
    inflatedLength,
    deflateLength: Math.max(120, Math.round(inflatedLength * deflateRatio * jitter)),
    inflatedCrc: random.int(-2_147_483_648, 2_147_483_647),
    blockDigest: random.sha1Digest(),
  };
}

const CLD2_LANGUAGES: Readonly<Record<CaptionLanguage, readonly [string, string, string]>> = {
  en: ["en", "eng", "ENGLISH"],
  de: ["de", "deu", "GERMAN"],
  fr: ["fr", "fra", "FRENCH"],
  es: ["es", "spa", "SPANISH"],
  it: ["it", "ita", "ITALIAN"],
  pt: ["pt", "por", "PORTUGUESE"],
  nl: ["nl", "nld", "DUTCH"],
  ru: ["ru", "rus", "RUSSIAN"],
  uk: ["uk", "ukr", "UKRAINIAN"],
  pl: ["pl", "pol", "POLISH"],
  zh: ["zh", "zho", "Chinese"],
  ja: ["ja", "jpn", "Japanese"],
  ko: ["ko", "kor", "Korean"],
  ar: ["ar", "ara", "ARABIC"],
  hi: ["hi", "hin", "HINDI"],
  tr: ["tr", "tur", "TURKISH"],
  vi: ["vi", "vie", "VIETNAMESE"],
  el: ["el", "ell", "GREEK"],
  // CLD2 still reports Hebrew under its withdrawn code "iw".
  he: ["iw", "heb", "HEBREW"],
  th: ["th", "tha", "THAI"],
};

function sourceWarcinfo(random: SeededRandom, crawl: CrawlDescription): SourceRecord {
  const info = {
    hostname: crawl.crawlerHostname,
    software: "Apache Nutch 1.19 (modified, https://github.com/commoncrawl/nutch/)",
    format: "WARC File Format 1.1",
    publisher: "Common Crawl",
    description: `Wide crawl of the web for ${crawl.crawlMonth}`,
    robots: "checked via crawler-commons 1.4 (https://github.com/crawler-commons/crawler-commons)",
    isPartOf: crawl.crawlId,
    operator: "Common Crawl Admin (info@commoncrawl.org)",
  };
  let contentLength = 0;
  for (const [name, value] of Object.entries(info)) contentLength += name.length + value.length + 4;
  const content = {
    id: crawl.sourceWarcinfoId,
    headers: {
      "WARC-Filename": crawl.sourceWarcFilename,
      "WARC-Date": warcDate(crawl.segmentStartMs),
      "Content-Length": String(contentLength),
      "WARC-Record-ID": `<urn:uuid:${crawl.sourceWarcinfoId}>`,
      "WARC-Type": "warcinfo",
      "Content-Type": "application/warc-fields",
    },
    payload: {
      "Actual-Content-Type": "application/warc-fields",
      "Actual-Content-Length": String(contentLength),
      "Trailing-Slop-Length": "0",
      "WARC-Info-Metadata": info,
      // Real WAT files flag the warcinfo block this way: it is not HTTP.
      "Headers-Corrupt": true,
    },
    contentLength,
  };
  return sourceRecord(random, content, 0.63);
}

const CRAWLER_REQUEST_HEADERS = {
  Accept: "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  "User-Agent": "CCBot/2.0 (https://commoncrawl.org/faq/)",
  Connection: "Keep-Alive",
};

function sourceRequest(random: SeededRandom, capture: Capture, warcinfoId: string): SourceRecord {
  const path = capture.url.slice(capture.url.indexOf("/", capture.url.indexOf("//") + 2));
  const headers = {
    ...CRAWLER_REQUEST_HEADERS,
    Host: capture.site.host,
    "Accept-Language": "en-US,en;q=0.5",
    "Accept-Encoding": "br,gzip",
  };
  const headersLength = httpHeaderBlockLength(`GET ${path} HTTP/1.1`, headers);
  const id = random.uuid();
  const content = {
    id,
    headers: {
      "WARC-IP-Address": capture.site.ipAddress,
      "WARC-Target-URI": capture.url,
      "WARC-Warcinfo-ID": `<urn:uuid:${warcinfoId}>`,
      "WARC-Date": warcDate(capture.fetchedAtMs),
      "Content-Length": String(headersLength),
      "WARC-Record-ID": `<urn:uuid:${id}>`,
      "WARC-Type": "request",
      "Content-Type": "application/http; msgtype=request",
    },
    payload: {
      "Actual-Content-Type": "application/http; msgtype=request",
      "HTTP-Request-Metadata": {
        "Headers-Length": String(headersLength),
        "Entity-Trailing-Slop-Length": "0",
        "Entity-Length": "0",
        Headers: headers,
        "Request-Message": { Path: path, Version: "HTTP/1.1", Method: "GET" },
        "Entity-Digest": "sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ",
      },
      "Trailing-Slop-Length": "4",
    },
    contentLength: headersLength,
  };
  return sourceRecord(random, content, 0.62);
}

interface ResponseShape {
  status: string;
  reason: string;
  contentType: string | undefined;
  entityLength: number;
  deflateRatio: number;
}

function responseShape(random: SeededRandom, capture: Capture): ResponseShape {
  const ok = { status: "200", reason: "OK" };
  const html = { ...ok, contentType: "text/html; charset=UTF-8", deflateRatio: 0.24 };
  switch (capture.kind) {
    case "html":
    case "corrupt-headers": {
      const [min, max] = capture.isHuge ? [400_000, 2_000_000] : [12_000, 250_000];
      return { ...html, entityLength: random.int(min, max) };
    }
    case "not-found":
      return {
        ...html,
        status: "404",
        reason: "Not Found",
        entityLength: random.int(1_500, 30_000),
      };
    case "redirect":
      return {
        status: "301",
        reason: "Moved Permanently",
        contentType: "text/html; charset=iso-8859-1",
        entityLength: random.int(200, 400),
        deflateRatio: 0.6,
      };
    case "image":
      return {
        ...ok,
        contentType: "image/jpeg",
        entityLength: random.int(20_000, 900_000),
        deflateRatio: 0.99,
      };
    case "pdf":
      return {
        ...ok,
        contentType: "application/pdf",
        entityLength: random.int(50_000, 3_000_000),
        deflateRatio: 0.9,
      };
    case "robots":
      return {
        ...ok,
        contentType: "text/plain",
        entityLength: random.int(60, 4_000),
        deflateRatio: 0.4,
      };
  }
}

function responseHeaders(
  random: SeededRandom,
  capture: Capture,
  shape: ResponseShape,
): Record<string, string> {
  const { site } = capture;
  const headers: Record<string, string> = {};
  if (random.chance(0.5)) headers["Keep-Alive"] = "timeout=5, max=100";
  if (shape.contentType?.startsWith("text/") === true) {
    headers["X-Crawler-Content-Encoding"] = "gzip";
    headers["X-Crawler-Content-Length"] = String(Math.round(shape.entityLength * 0.22));
  }
  headers.Server = site.server;
  headers.Connection = "Keep-Alive";
  if (capture.redirectLocation !== undefined) headers.Location = capture.redirectLocation;
  headers.Vary = "Accept-Encoding";
  headers["Content-Length"] = String(shape.entityLength);
  headers.Date = httpDate(capture.fetchedAtMs - random.int(0, 2) * 1000);
  if (site.poweredBy !== undefined) headers["X-Powered-By"] = site.poweredBy;
  if (capture.url.startsWith("https:")) headers["Strict-Transport-Security"] = "max-age=31536000";
  if (random.chance(0.04)) {
    headers["X-Robots-Tag"] = random.pick(["noai", "noimageai", "noindex", "noai, noimageai"]);
  }
  if (shape.contentType !== undefined) headers["Content-Type"] = shape.contentType;
  if (capture.kind === "corrupt-headers") {
    // What a parser makes of a header block cut short by the start of the HTML body.
    headers["Set-Cookie"] = `session=${random.string(16, ALPHANUMERIC)}; path=/; HttpOnly`;
    headers["<!DOCTYPE html><html><head><title>"] = "";
  }
  return headers;
}

/**
 * The response record. Its `HTML-Metadata` is left out here (it is the costly part, and the
 * record's size in the source WARC does not depend on it): its key is reserved at its place in
 * the key order and filled when the capture is rendered.
 */
function sourceResponse(
  random: SeededRandom,
  capture: Capture,
  request: SourceRecord,
  warcinfoId: string,
): SourceRecord {
  const shape = responseShape(random, capture);
  const headers = responseHeaders(random, capture, shape);
  const headersLength = httpHeaderBlockLength(`HTTP/1.1 ${shape.status} ${shape.reason}`, headers);
  const contentLength = headersLength + shape.entityLength;
  const payloadDigest = random.sha1Digest();
  const id = random.uuid();

  const httpMetadata: JsonObject = {};
  if (capture.kind === "corrupt-headers") httpMetadata["Headers-Corrupt"] = true;
  httpMetadata["Headers-Length"] = String(headersLength);
  httpMetadata["Entity-Trailing-Slop-Length"] = "0";
  httpMetadata["Entity-Length"] = String(shape.entityLength);
  httpMetadata.Headers = headers;
  httpMetadata["Response-Message"] = {
    Status: shape.status,
    Version: "HTTP/1.1",
    Reason: shape.reason,
  };
  httpMetadata["HTML-Metadata"] = undefined;
  httpMetadata["Entity-Digest"] = payloadDigest;

  const warcHeaders: Record<string, string> = {};
  const identifiedType = shape.contentType?.split(";")[0];
  if (identifiedType !== undefined) warcHeaders["WARC-Identified-Payload-Type"] = identifiedType;
  Object.assign(warcHeaders, {
    "WARC-Payload-Digest": payloadDigest,
    "WARC-IP-Address": capture.site.ipAddress,
    "WARC-Block-Digest": random.sha1Digest(),
    "WARC-Target-URI": capture.url,
    "WARC-Warcinfo-ID": `<urn:uuid:${warcinfoId}>`,
    "WARC-Concurrent-To": `<urn:uuid:${request.id}>`,
    "WARC-Date": warcDate(capture.fetchedAtMs),
    "Content-Length": String(contentLength),
    "WARC-Record-ID": `<urn:uuid:${id}>`,
    "WARC-Type": "response",
    "Content-Type": "application/http; msgtype=response",
  });
  const content = {
    id,
    headers: warcHeaders,
    payload: {
      "Actual-Content-Type": "application/http; msgtype=response",
      "HTTP-Response-Metadata": httpMetadata,
      "Trailing-Slop-Length": "4",
    },
    contentLength,
  };
  return sourceRecord(random, content, shape.deflateRatio);
}

/** Fills the response's HTML-Metadata, with a marker where `linksJson` goes in later. */
function attachHtmlHead(response: SourceRecord, html: HtmlMetadata): void {
  const httpMetadata = response.payload["HTTP-Response-Metadata"] as JsonObject;
  httpMetadata["HTML-Metadata"] = { Head: html.Head, Links: LINKS_MARKER };
}

function sourceMetadata(
  random: SeededRandom,
  capture: Capture,
  response: SourceRecord,
  warcinfoId: string,
): SourceRecord {
  const records: { Value: string; Name: string }[] = [
    { Value: String(random.int(40, 4_000)), Name: "fetchTimeMs" },
  ];
  if (capture.hasHtml) {
    records.push({ Value: "UTF-8", Name: "charset-detected" });
    records.push({ Value: cld2Languages(random, capture.site.language), Name: "languages-cld2" });
  }
  let contentLength = 0;
  for (const { Name, Value } of records) contentLength += Name.length + Value.length + 4;
  const id = random.uuid();
  const content = {
    id,
    headers: {
      "WARC-Target-URI": capture.url,
      "WARC-Warcinfo-ID": `<urn:uuid:${warcinfoId}>`,
      "WARC-Concurrent-To": `<urn:uuid:${response.id}>`,
      "WARC-Date": warcDate(capture.fetchedAtMs),
      "Content-Length": String(contentLength),
      "WARC-Record-ID": `<urn:uuid:${id}>`,
      "WARC-Type": "metadata",
      "Content-Type": "application/warc-fields",
    },
    payload: {
      "Actual-Content-Type": "application/metadata-fields",
      "WARC-Metadata-Metadata": { "Metadata-Records": records },
      "Actual-Content-Length": String(contentLength),
      "Trailing-Slop-Length": "0",
    },
    contentLength,
  };
  return sourceRecord(random, content, 0.75);
}

/** The languages-cld2 value is itself JSON, written with a decimal point on the score. */
function cld2Languages(random: SeededRandom, language: CaptionLanguage): string {
  const [code, iso3, name] = CLD2_LANGUAGES[language];
  const textBytes = random.int(300, 40_000);
  const covered = random.int(80, 99) / 100;
  const score = random.int(200, 2_000);
  return `{"reliable":true,"text-bytes":${textBytes},"languages":[{"code":"${code}","code-iso-639-3":"${iso3}","text-covered":${covered},"score":${score}.0,"name":"${name}"}]}`;
}

function httpHeaderBlockLength(startLine: string, headers: Record<string, string>): number {
  let length = startLine.length + 2;
  for (const [name, value] of Object.entries(headers)) {
    length += name.length + 2 + Buffer.byteLength(value) + 2;
  }
  return length + 2;
}

// ---------------------------------------------------------------------------------------------
// One WAT file: its opening records and its captures, each a pure function of its index
// ---------------------------------------------------------------------------------------------

/** A capture to render: its index and the offset of its first record in the source WARC. */
interface CaptureJob {
  index: number;
  sourceOffset: number;
}

interface CaptureStats {
  htmlPages: number;
  imgLinks: number;
  imgLinksWithAlt: number;
}

interface RenderedCapture {
  /** One gzip member per WAT record: request, response, metadata. */
  members: Uint8Array[];
  stats: CaptureStats;
}

/** A capture planned in full, but for the HTML-Metadata of its response. */
interface PlannedCapture {
  capture: Capture;
  request: SourceRecord;
  response: SourceRecord;
  metadata: SourceRecord;
}

const MAX_KEPT_PLANS = 256;

class WatFileGenerator {
  readonly crawl: CrawlDescription;
  readonly #file: WatFileIdentity;
  readonly #sites: SitePool;
  readonly #sourceWarcinfo: SourceRecord;
  readonly #openingRandom: SeededRandom;
  /** Plans made to measure a capture, kept for rendering it on this thread. */
  readonly #plans = new Map<number, PlannedCapture>();

  constructor(file: WatFileIdentity) {
    this.#file = file;
    this.crawl = describeCrawl(file);
    this.#sites = new SitePool(file.seed);
    this.#openingRandom = new SeededRandom(mixSeed(file.seed, file.fileIndex, STREAM.opening));
    this.#sourceWarcinfo = sourceWarcinfo(this.#openingRandom, this.crawl);
  }

  /** Bytes of the source WARC before the first capture: its warcinfo record. */
  get openingSourceBytes(): number {
    return this.#sourceWarcinfo.deflateLength;
  }

  /** The WAT file's own warcinfo, then the envelope of the source WARC's warcinfo. */
  openingRecords(): string[] {
    const random = this.#openingRandom;
    return [
      watWarcinfoRecord(this.crawl, random),
      watMetadataRecord(this.crawl.sourceWarcFilename, this.#sourceWarcinfo, 0, this.crawl, random),
    ];
  }

  /** Bytes the capture's three records take in the source WARC. */
  sourceBytesOf(index: number): number {
    const plan = this.#plan(index);
    this.#plans.set(index, plan);
    if (this.#plans.size > MAX_KEPT_PLANS) this.#plans.delete(this.#plans.keys().next().value ?? 0);
    const { request, response, metadata } = plan;
    return request.deflateLength + response.deflateLength + metadata.deflateLength;
  }

  render(job: CaptureJob): { records: string[]; stats: CaptureStats } {
    const plan = this.#plans.get(job.index) ?? this.#plan(job.index);
    this.#plans.delete(job.index);
    const { capture, request, response, metadata } = plan;
    const random = new SeededRandom(this.#captureSeed(job.index, STREAM.captureRender));
    const html = capture.hasHtml ? htmlMetadata(random, capture, this.#file.captions) : undefined;
    if (html !== undefined) attachHtmlHead(response, html);
    let offset = job.sourceOffset;
    const records = [request, response, metadata].map((source) => {
      const links = source === response && html !== undefined ? html.Links : undefined;
      const record = watMetadataRecord(capture.url, source, offset, this.crawl, random, links);
      offset += source.deflateLength;
      return record;
    });
    return { records, stats: linkStats(html) };
  }

  #plan(index: number): PlannedCapture {
    const random = new SeededRandom(this.#captureSeed(index, STREAM.capturePlan));
    const site = this.#siteOf(index);
    const isHuge = index % HUGE_PAGE_PERIOD === HUGE_PAGE_PERIOD / 2;
    const kind = captureKind(random, isHuge);
    const topic = random.pick(CAPTIONS_BY_LANGUAGE[site.language]);
    const url = captureUrl(random, site, kind, topic);
    const capture: Capture = {
      index,
      site,
      kind,
      isHuge,
      url,
      topic,
      fetchedAtMs: this.crawl.segmentStartMs + index * FETCH_INTERVAL_MS + random.int(0, 400),
      redirectLocation: kind === "redirect" ? redirectLocation(random, site, url) : undefined,
      hasHtml: captureHasHtml(random, kind),
    };
    const warcinfoId = this.crawl.sourceWarcinfoId;
    const request = sourceRequest(random, capture, warcinfoId);
    const response = sourceResponse(random, capture, request, warcinfoId);
    const metadata = sourceMetadata(random, capture, response, warcinfoId);
    return { capture, request, response, metadata };
  }

  /** The site of a run of captures is drawn where the run starts. */
  #siteOf(index: number): Site {
    let runStart = index;
    while (runStart > 0 && !this.#startsRun(runStart)) runStart--;
    return this.#sites.pick(new SeededRandom(this.#captureSeed(runStart, STREAM.captureSite)));
  }

  #startsRun(index: number): boolean {
    return new SeededRandom(this.#captureSeed(index, STREAM.captureRun)).chance(NEW_RUN_CHANCE);
  }

  #captureSeed(index: number, stream: number): number {
    return mixSeed(this.#file.seed, this.#file.fileIndex, index, stream);
  }
}

function linkStats(html: HtmlMetadata | undefined): CaptureStats {
  const stats = { htmlPages: html === undefined ? 0 : 1, imgLinks: 0, imgLinksWithAlt: 0 };
  for (const entry of html?.Links ?? []) {
    if (entry.path !== "IMG@/src") continue;
    stats.imgLinks += 1;
    if (entry.alt !== undefined && entry.alt.trim() !== "") stats.imgLinksWithAlt += 1;
  }
  return stats;
}

// ---------------------------------------------------------------------------------------------
// WAT records
// ---------------------------------------------------------------------------------------------

function watWarcinfoRecord(crawl: CrawlDescription, random: SeededRandom): string {
  const body =
    "Software-Info: ia-web-commons.1.1.9-SNAPSHOT-20231117075513\r\n" +
    `Extracted-Date: ${httpDate(crawl.extractedAtMs)}\r\n` +
    `ip: ${crawl.extractorIp}\r\n` +
    `hostname: ${crawl.crawlerHostname}\r\n` +
    "format: WARC File Format 1.0\r\n" +
    "conformsTo: http://bibnum.bnf.fr/WARC/WARC_ISO_28500_version1_latestdraft.pdf\r\n";
  return warcRecord(
    [
      ["WARC-Type", "warcinfo"],
      ["WARC-Date", warcDate(crawl.extractedAtMs)],
      ["WARC-Filename", crawl.watFilename],
      ["WARC-Record-ID", `<urn:uuid:${random.uuid()}>`],
      ["Content-Type", "application/warc-fields"],
    ],
    body,
  );
}

/** A WAT `metadata` record: the JSON envelope describing one record of the source WARC. */
function watMetadataRecord(
  targetUri: string,
  source: SourceRecord,
  sourceOffset: number,
  crawl: CrawlDescription,
  random: SeededRandom,
  links?: readonly WatLink[],
): string {
  const envelope = {
    Container: {
      Filename: crawl.sourceWarcFilename,
      Compressed: true,
      Offset: String(sourceOffset),
      "Gzip-Metadata": {
        "Inflated-Length": String(source.inflatedLength),
        "Footer-Length": "8",
        "Inflated-CRC": String(source.inflatedCrc),
        "Deflate-Length": String(source.deflateLength),
        "Header-Length": "10",
      },
    },
    Envelope: {
      Format: "WARC",
      "WARC-Header-Length": String(source.warcHeaderLength),
      "Actual-Content-Length": String(source.contentLength),
      "WARC-Header-Metadata": source.headers,
      "Block-Digest": source.blockDigest,
      "Payload-Metadata": source.payload,
    },
  };
  return warcRecord(
    [
      ["WARC-Type", "metadata"],
      ["WARC-Target-URI", targetUri],
      ["WARC-Date", warcDate(crawl.extractedAtMs)],
      ["WARC-Record-ID", `<urn:uuid:${random.uuid()}>`],
      ["WARC-Refers-To", `<urn:uuid:${source.id}>`],
      ["Content-Type", "application/json"],
    ],
    links === undefined ? toJavaStyleJson(envelope) : envelopeJsonWithLinks(envelope, links),
  );
}

/**
 * The Links array is most of a WAT file, and JSON.stringify over millions of small objects is
 * its slowest step; so the array is written by hand from cached, pre-escaped strings and spliced
 * into the rest of the envelope where the marker stands.
 */
const LINKS_MARKER = "\u0000Links\u0000";
const LINKS_MARKER_JSON = JSON.stringify(LINKS_MARKER);

function envelopeJsonWithLinks(envelope: JsonObject, links: readonly WatLink[]): string {
  return toJavaStyleJson(envelope).replace(LINKS_MARKER_JSON, () => linksJson(links));
}

function linksJson(links: readonly WatLink[]): string {
  const entries = new Array<string>(links.length);
  for (let i = 0; i < links.length; i++) entries[i] = linkJson(links[i] as WatLink);
  return `[${entries.join(",")}]`;
}

/** Same keys, same order and same escaping as JSON.stringify plus `toJavaStyleJson` would give. */
function linkJson(entry: WatLink): string {
  let json = `{"path":${jsonString(entry.path)}`;
  if (entry.alt !== undefined) json += `,"alt":${jsonString(entry.alt)}`;
  if (entry.rel !== undefined) json += `,"rel":${jsonString(entry.rel)}`;
  if (entry.text !== undefined) json += `,"text":${jsonString(entry.text)}`;
  if (entry.title !== undefined) json += `,"title":${jsonString(entry.title)}`;
  if (entry.type !== undefined) json += `,"type":${jsonString(entry.type)}`;
  json += `,"url":${jsonString(entry.url)}`;
  if (entry.target !== undefined) json += `,"target":${jsonString(entry.target)}`;
  return `${json}}`;
}

/** Printable ASCII without quote, backslash and `<`: its own JSON text between quotes. */
const PLAIN_JSON_TEXT = /^[ !#-;=-[\]-~]*$/;
const jsonStringCache = new Map<string, string>();

function jsonString(text: string): string {
  if (PLAIN_JSON_TEXT.test(text)) return `"${text}"`;
  let json = jsonStringCache.get(text);
  if (json === undefined) {
    json = toJavaStyleJson(text);
    if (jsonStringCache.size < 50_000) jsonStringCache.set(text, json);
  }
  return json;
}

/**
 * JSON as org.json writes it: like JSON.stringify, but `</` becomes `<\/` and C1 controls and
 * the U+2000–U+20FF block (dashes, curly quotes, €) are \u-escaped.
 */
function toJavaStyleJson(value: unknown): string {
  return JSON.stringify(value).replace(/<\/|[\u0080-\u009f\u2000-\u20ff]/g, (match) =>
    match === "</" ? "<\\/" : `\\u${match.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function warcRecord(headers: readonly (readonly [string, string])[], body: string): string {
  let head = "WARC/1.0\r\n";
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  return `${head}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}\r\n\r\n`;
}

// ---------------------------------------------------------------------------------------------
// Rendering captures, here or on worker threads
// ---------------------------------------------------------------------------------------------

/** Common Crawl compresses its WAT members at zlib's default level. */
const GZIP_LEVEL = 6;
const CAPTURES_PER_BATCH = 16;

function compressRecord(record: string): Uint8Array {
  return gzipSync(record, { level: GZIP_LEVEL });
}

function renderAndCompress(generator: WatFileGenerator, job: CaptureJob): RenderedCapture {
  const { records, stats } = generator.render(job);
  return { members: records.map(compressRecord), stats };
}

/** Renders batches of captures; batches resolve in any order, each keeps its captures' order. */
interface CaptureRenderer {
  readonly maxPendingBatches: number;
  render(jobs: CaptureJob[]): Promise<RenderedCapture[]>;
  close(): Promise<void>;
}

class InlineCaptureRenderer implements CaptureRenderer {
  readonly maxPendingBatches = 1;

  constructor(private readonly generator: WatFileGenerator) {}

  async render(jobs: CaptureJob[]): Promise<RenderedCapture[]> {
    return jobs.map((job) => renderAndCompress(this.generator, job));
  }

  async close(): Promise<void> {}
}

const WORKER_ROLE = "clipcrawl-wat-capture-renderer";

interface RendererWorkerData {
  role: typeof WORKER_ROLE;
  file: WatFileIdentity;
}

interface RenderRequest {
  batch: number;
  jobs: CaptureJob[];
}

/**
 * A batch's gzip members travel packed in one transferred buffer: cloning them one by one would
 * copy each member's whole backing buffer, often zlib's shared pool.
 */
interface PackedCaptures {
  members: ArrayBuffer;
  /** Byte length of each member, three per capture. */
  memberLengths: number[];
  stats: CaptureStats[];
}

type RenderReply = { batch: number; captures: PackedCaptures } | { batch: number; error: string };

function packCaptures(captures: readonly RenderedCapture[]): PackedCaptures {
  const memberLengths = captures.flatMap(({ members }) => members.map((member) => member.length));
  const packed = new Uint8Array(memberLengths.reduce((sum, length) => sum + length, 0));
  let offset = 0;
  for (const member of captures.flatMap(({ members }) => members)) {
    packed.set(member, offset);
    offset += member.length;
  }
  return { members: packed.buffer, memberLengths, stats: captures.map(({ stats }) => stats) };
}

function unpackCaptures({ members, memberLengths, stats }: PackedCaptures): RenderedCapture[] {
  const views: Uint8Array[] = [];
  let offset = 0;
  for (const length of memberLengths) {
    views.push(new Uint8Array(members, offset, length));
    offset += length;
  }
  return stats.map((captureStats, capture) => ({
    members: views.slice(capture * 3, capture * 3 + 3),
    stats: captureStats,
  }));
}

/** Worker threads run this same module: see `serveCaptureRendering` at the end of the file. */
class WorkerCaptureRenderer implements CaptureRenderer {
  readonly maxPendingBatches: number;
  readonly #workers: Worker[];
  readonly #waiting = new Map<
    number,
    { resolve: (captures: RenderedCapture[]) => void; reject: (error: Error) => void }
  >();
  #nextBatch = 0;
  #failure: Error | undefined;

  constructor(file: WatFileIdentity, count: number) {
    const data: RendererWorkerData = { role: WORKER_ROLE, file };
    this.maxPendingBatches = count * 3;
    this.#workers = Array.from({ length: count }, () => {
      const worker = spawnRendererWorker(data);
      worker.on("message", (reply: RenderReply) => this.#settle(reply));
      worker.on("error", (error) => this.#fail(error));
      worker.on("exit", (code) => {
        if (code !== 0) this.#fail(new Error(`WAT renderer worker exited with code ${code}`));
      });
      return worker;
    });
  }

  render(jobs: CaptureJob[]): Promise<RenderedCapture[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const batch = this.#nextBatch++;
    const worker = this.#workers[batch % this.#workers.length] as Worker;
    return new Promise((resolve, reject) => {
      this.#waiting.set(batch, { resolve, reject });
      worker.postMessage({ batch, jobs } satisfies RenderRequest);
    });
  }

  async close(): Promise<void> {
    for (const worker of this.#workers) worker.removeAllListeners("exit");
    await Promise.all(this.#workers.map((worker) => worker.terminate()));
  }

  #settle(reply: RenderReply): void {
    const waiting = this.#waiting.get(reply.batch);
    this.#waiting.delete(reply.batch);
    if ("error" in reply) waiting?.reject(new Error(reply.error));
    else waiting?.resolve(unpackCaptures(reply.captures));
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const { reject } of this.#waiting.values()) reject(error);
    this.#waiting.clear();
  }
}

function spawnRendererWorker(data: RendererWorkerData): Worker {
  if (!import.meta.url.endsWith(".ts"))
    return new Worker(new URL(import.meta.url), { workerData: data });
  // Node 20 loads a worker's entry module before `--import` hooks apply, so a TypeScript entry
  // is reached through a script that registers tsx in the worker first.
  const tsx = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const entry = JSON.stringify(import.meta.url);
  const bootstrap = `import(${tsx}).then((tsx) => { tsx.register(); return import(${entry}); });`;
  return new Worker(bootstrap, { eval: true, workerData: data });
}

function serveCaptureRendering(data: RendererWorkerData): void {
  const generator = new WatFileGenerator(data.file);
  parentPort?.on("message", ({ batch, jobs }: RenderRequest) => {
    try {
      const captures = packCaptures(jobs.map((job) => renderAndCompress(generator, job)));
      const reply: RenderReply = { batch, captures };
      parentPort?.postMessage(reply, [captures.members]);
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      parentPort?.postMessage({ batch, error: message } satisfies RenderReply);
    }
  });
}

function isRendererWorkerData(data: unknown): data is RendererWorkerData {
  return (
    typeof data === "object" && data !== null && (data as { role?: unknown }).role === WORKER_ROLE
  );
}

if (!isMainThread && isRendererWorkerData(workerData)) serveCaptureRendering(workerData);

// ---------------------------------------------------------------------------------------------
// Output file
// ---------------------------------------------------------------------------------------------

class GzipMemberFile {
  bytes = 0;
  readonly memberOffsets: number[] = [];
  readonly #stream: WriteStream;
  readonly #recordOffsets: boolean;
  #error: Error | undefined;

  constructor(path: string, recordOffsets: boolean) {
    this.#stream = createWriteStream(path, { highWaterMark: 4 * 2 ** 20 });
    this.#stream.on("error", (error) => {
      this.#error ??= error;
    });
    this.#recordOffsets = recordOffsets;
  }

  async append(members: readonly Uint8Array[]): Promise<void> {
    for (const member of members) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#recordOffsets) this.memberOffsets.push(this.bytes);
      this.bytes += member.length;
      if (!this.#stream.write(member)) await once(this.#stream, "drain");
    }
  }

  async close(): Promise<void> {
    if (!this.#stream.closed) {
      this.#stream.end();
      await once(this.#stream, "close");
    }
    if (this.#error !== undefined) throw this.#error;
  }
}
