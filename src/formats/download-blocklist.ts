/**
 * Download's blocklist (`download.blocklist`, plus the root's governance lists): one file of
 * image URLs, domains and digests of image bytes, one entry a line, each read with the filter's
 * parsers (blocklists.ts). A line with `://` is a URL; 64, 40 or 32 hexadecimal characters are a
 * SHA-256, SHA-1 or MD5 digest (as takedown lists give them); anything else is a domain, which
 * covers its subdomains. A URL or a domain keeps the image from being fetched; a digest keeps a
 * fetched image from being kept (the bytes must be in to be hashed). Either way the sample is
 * `opted_out`, with the kind of entry that matched in its error_message.
 */
import { readFile } from "node:fs/promises";
import { InputError } from "../errors.js";
import {
  type BadBlocklistLine,
  type BlocklistKind,
  DIGEST_KINDS,
  type DigestKind,
  NORMALISE_BLOCKLIST_ENTRY,
  parseListLines,
} from "./blocklists.js";

const DIGEST_LENGTHS: Record<number, DigestKind> = { 64: "sha256", 40: "sha1", 32: "md5" };

export class DownloadBlocklist {
  private readonly entries: Record<BlocklistKind, Set<string>> = {
    url: new Set(),
    domain: new Set(),
    sha256: new Set(),
    md5: new Set(),
    sha1: new Set(),
  };
  private badLineList: BadBlocklistLine[] = [];

  static async load(path: string): Promise<DownloadBlocklist> {
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (error) {
      throw new InputError("CC_BLOCKLIST", path, `cannot read the blocklist: ${String(error)}`);
    }
    return DownloadBlocklist.parse(text, path);
  }

  /** `file` names the list in the bad lines' messages. */
  static parse(text: string, file = "blocklist"): DownloadBlocklist {
    const list = new DownloadBlocklist();
    const parsed = parseListLines(text, file, (entry) => {
      const kind = entryKind(entry);
      const normalised = NORMALISE_BLOCKLIST_ENTRY[kind](entry);
      if (typeof normalised === "string") return normalised;
      // The kind travels with each value, so one pass fills every list.
      return { values: normalised.values.map((value) => `${kind} ${value}`) };
    });
    for (const tagged of parsed.entries) {
      const space = tagged.indexOf(" ");
      list.entries[tagged.slice(0, space) as BlocklistKind].add(tagged.slice(space + 1));
    }
    list.badLineList = parsed.badLines;
    return list;
  }

  get size(): number {
    return Object.values(this.entries).reduce((sum, entries) => sum + entries.size, 0);
  }

  /** Lines that are not a valid entry of any kind (reported; the rest of the list applies). */
  get badLines(): readonly BadBlocklistLine[] {
    return this.badLineList;
  }

  /** Why the URL is blocked (`blocklisted url`, `blocklisted domain`), or undefined. */
  match(url: URL): string | undefined {
    const withoutFragment = new URL(url);
    withoutFragment.hash = "";
    if (this.entries.url.has(url.href) || this.entries.url.has(withoutFragment.href)) {
      return "blocklisted url";
    }
    let host = url.hostname.toLowerCase();
    for (;;) {
      if (this.entries.domain.has(host)) return "blocklisted domain";
      const dot = host.indexOf(".");
      if (dot < 0) return undefined;
      host = host.slice(dot + 1);
    }
  }

  /** Why the image bytes with these digests are blocked (`blocklisted md5`, …), or undefined. */
  matchDigests(digests: Record<DigestKind, string>): string | undefined {
    const kind = DIGEST_KINDS.find((kind) => this.entries[kind].has(digests[kind].toLowerCase()));
    return kind === undefined ? undefined : `blocklisted ${kind}`;
  }
}

function entryKind(entry: string): BlocklistKind {
  if (entry.includes("://")) return "url";
  const digest = /^[0-9a-f]+$/i.test(entry) ? DIGEST_LENGTHS[entry.length] : undefined;
  return digest ?? "domain";
}
