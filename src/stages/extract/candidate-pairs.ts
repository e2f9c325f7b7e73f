/**
 * From a WAT image link to a candidate (image URL, alt text) pair, or the reason it is dropped.
 * URLs are resolved as a browser would (WHATWG URL parser, against `<base href>` when the page has
 * one); alt text is cleaned the way it will be shown to CLIP.
 */
import { decodeHTML } from "entities";
import type { WatLink, WatPage } from "./wat-page.js";

/**
 * Why a link is not a candidate. `no_alt`: no alt text (no attribute, or one that is empty or
 * blank after clean-up); `short_text`: alt text shorter than `extract.minTextLength` characters.
 */
export type LinkDropReason =
  | "no_alt"
  | "short_text"
  | "invalid_url"
  | "unsupported_scheme"
  | "url_has_credentials";

export interface ResolvedPair {
  url: string;
  text: string;
}

export type LinkOutcome = { pair: ResolvedPair } | { dropped: LinkDropReason };

/** The URL relative links of the page resolve against: `<base href>` (itself resolved) or the page. */
export function pageBaseUrl(page: WatPage): string | undefined {
  const pageUrl = URL.parse(page.pageUrl);
  if (pageUrl === null) return undefined;
  if (page.baseHref === undefined || page.baseHref.trim() === "") return pageUrl.href;
  return (URL.parse(page.baseHref.trim(), pageUrl.href) ?? pageUrl).href;
}

const ABSOLUTE_HTTP = /^https?:\/\//i;

/** `base` is the page's base URL as a string (see pageBaseUrl); undefined when it has none. */
export function resolveLink(
  link: WatLink,
  base: string | undefined,
  minTextLength: number,
): LinkOutcome {
  if (link.alt === undefined) return { dropped: "no_alt" };
  const text = cleanText(link.alt);
  // `alt=""` marks an image as decoration: no text at all, as if the attribute were missing.
  if (text === "") return { dropped: "no_alt" };
  if (!hasAtLeastCharacters(text, minTextLength)) return { dropped: "short_text" };
  const url = ABSOLUTE_HTTP.test(link.url) ? URL.parse(link.url) : URL.parse(link.url, base);
  if (url === null) return { dropped: "invalid_url" };
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return { dropped: "unsupported_scheme" };
  if (url.username !== "" || url.password !== "") return { dropped: "url_has_credentials" };
  if (url.hostname === "") return { dropped: "invalid_url" };
  if (url.hash !== "") url.hash = "";
  return { pair: { url: url.href, text } };
}

const WHITESPACE_RUN = /[\s\u200b\u2028\u2029\ufeff]+/gu;
// C0/C1 control characters other than whitespace: never meaningful in a caption.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u0008\u000e-\u001f\u007f-\u009f]/g;

// Most alt texts are clean already: one test instead of three replacements.
const NEEDS_CLEANING =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
  /[&\u0000-\u001f\u007f-\u00a0\u1680\u2000-\u200b\u2028\u2029\u202f\u205f\u3000\ufeff]| {2}|^ | $/;

/**
 * ia-web-commons already decodes entities once; pages that double-encode (`&amp;amp;`) still leave
 * entities in the WAT, so one more decode gives the text a reader of the page sees.
 */
export function cleanText(raw: string): string {
  if (!NEEDS_CLEANING.test(raw)) return raw;
  const decoded = raw.includes("&") ? decodeHTML(raw) : raw;
  return decoded.replace(CONTROL, "").replace(WHITESPACE_RUN, " ").trim();
}

/** Counts code points, not UTF-16 units, so an emoji is one character. */
function hasAtLeastCharacters(text: string, minimum: number): boolean {
  if (text.length >= minimum * 2) return true;
  let count = 0;
  for (const _ of text) {
    count++;
    if (count >= minimum) return true;
  }
  return false;
}
