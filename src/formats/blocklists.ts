/**
 * The filter's blocklists: image URLs, domains (each covering its subdomains) and digests of the
 * image bytes: SHA-256, MD5 and SHA-1 (takedown lists like Re-LAION's come as MD5 and SHA-1;
 * download records all three). One entry a line; `#` starts a comment (as in download's
 * blocklist: dataset URLs carry no fragment, extract strips them). A line that is not a valid
 * entry is reported with its file and line number and the rest of the list still applies: one
 * typo must not switch a takedown list off. The same parser reads `clipcrawl remove`'s lists
 * (removal-lists.ts) and download's blocklist (download-blocklist.ts).
 *
 * Entries are normalised the way the dataset's values are written (URLs by the WHATWG parser
 * that extract uses, host names lower-case and punycoded, digests lower-case hex), so a list
 * written by hand matches the same pairs as a machine-made one. The digest of the entries goes
 * into every shard digest: editing a list redoes the shards.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { DuckDBConnection } from "@duckdb/node-api";
import { InputError } from "../errors.js";

export const BLOCKLIST_KINDS = ["url", "domain", "sha256", "md5", "sha1"] as const;
export type BlocklistKind = (typeof BLOCKLIST_KINDS)[number];

/** The kinds a sample is matched on by its image bytes, with the column that holds each. */
export const DIGEST_KINDS = ["sha256", "md5", "sha1"] as const;
export type DigestKind = (typeof DIGEST_KINDS)[number];

/** The filter config key naming each kind's file. */
export const BLOCKLIST_CONFIG_KEYS = {
  url: "urlBlocklist",
  domain: "domainBlocklist",
  sha256: "sha256Blocklist",
  md5: "md5Blocklist",
  sha1: "sha1Blocklist",
} as const satisfies Record<BlocklistKind, string>;

/** The files of the lists, by filter's config keys (filter's config section satisfies it). */
export type BlocklistConfig = Record<(typeof BLOCKLIST_CONFIG_KEYS)[BlocklistKind], string>;

export interface BadBlocklistLine {
  file: string;
  line: number;
  text: string;
  reason: string;
}

export interface Blocklist {
  kind: BlocklistKind;
  /** The file it was read from; "" when none is configured. */
  file: string;
  entries: ReadonlySet<string>;
  badLines: readonly BadBlocklistLine[];
}

export type Blocklists = Record<BlocklistKind, Blocklist>;

/** Table names the shard queries join against; temporary, so private to one connection. */
export const BLOCKLIST_TABLES: Record<BlocklistKind, { table: string; column: string }> = {
  url: { table: "filter_blocked_urls", column: "url" },
  domain: { table: "filter_blocked_domains", column: "domain" },
  sha256: { table: "filter_blocked_sha256", column: "sha256" },
  md5: { table: "filter_blocked_md5", column: "md5" },
  sha1: { table: "filter_blocked_sha1", column: "sha1" },
};

/** Characters of a URL that are not part of its host (`:` outside an IPv6 literal). */
const NOT_IN_A_HOST = /[/?@\\\s]|^[^[].*:/;
/** What the WHATWG parser leaves in a host name or IP literal. */
const HOST_CHARACTERS = /^[a-z0-9._-]+$|^\[[0-9a-f:.]+\]$/;

/** Reads the lists the config names (paths relative to `cwd`); a list that cannot be read stops the stage. */
export async function loadBlocklists(config: BlocklistConfig, cwd: string): Promise<Blocklists> {
  const lists = emptyBlocklists();
  for (const kind of BLOCKLIST_KINDS) {
    lists[kind] = await loadBlocklist(kind, config[BLOCKLIST_CONFIG_KEYS[kind]], cwd);
  }
  return lists;
}

export function emptyBlocklists(): Blocklists {
  return Object.fromEntries(
    BLOCKLIST_KINDS.map((kind) => [kind, { kind, file: "", entries: new Set(), badLines: [] }]),
  ) as unknown as Blocklists;
}

/** Every bad line of the lists, in kind order. */
export function blocklistBadLines(lists: Blocklists): BadBlocklistLine[] {
  return BLOCKLIST_KINDS.flatMap((kind) => lists[kind].badLines);
}

async function loadBlocklist(kind: BlocklistKind, path: string, cwd: string): Promise<Blocklist> {
  if (path.trim() === "") return { kind, file: "", entries: new Set(), badLines: [] };
  const file = resolve(cwd, path);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const reason =
      (error as NodeJS.ErrnoException).code === "ENOENT" ? "does not exist" : String(error);
    throw new InputError("CC_BLOCKLIST", file, `cannot read the ${kind} blocklist: ${reason}`);
  }
  return parseBlocklist(kind, text, file);
}

export function parseBlocklist(kind: BlocklistKind, text: string, file: string): Blocklist {
  return { kind, ...parseListLines(text, file, NORMALISE_BLOCKLIST_ENTRY[kind]) };
}

/** The values an entry matches, or why it is not a valid entry. */
export type EntryNormaliser = (entry: string) => { values: string[] } | string;

/**
 * A list file's lines (one entry a line, `#` starts a comment) through `normalise`: the values
 * of the good lines, and each bad line with its file, number and reason. Shared with the lists
 * of `clipcrawl remove` (src/governance/), which adds MD5, SHA-1 and key lists.
 */
export function parseListLines(
  text: string,
  file: string,
  normalise: EntryNormaliser,
): { file: string; entries: Set<string>; badLines: BadBlocklistLine[] } {
  const entries = new Set<string>();
  const badLines: BadBlocklistLine[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, index) => {
    const entry = raw.replace(/#.*/, "").trim();
    if (entry === "") return;
    const parsed = normalise(entry);
    if (typeof parsed === "string") {
      badLines.push({ file, line: index + 1, text: entry, reason: parsed });
      return;
    }
    for (const value of parsed.values) entries.add(value);
  });
  return { file, entries, badLines };
}

export const NORMALISE_BLOCKLIST_ENTRY: Record<BlocklistKind, EntryNormaliser> = {
  url: (entry) => {
    if (!URL.canParse(entry)) return "not a URL";
    const url = new URL(entry);
    if (url.protocol !== "http:" && url.protocol !== "https:") return "not an http(s) URL";
    url.hash = "";
    // The entry as written too: URLs from tars and image folders were never normalised.
    return { values: [...new Set([url.href, entry])] };
  },
  domain: (entry) => {
    if (entry.includes("://")) return "not a domain (a URL? URLs go in urlBlocklist)";
    const bare = entry
      .replace(/^\*?\./, "")
      .replace(/\.$/, "")
      .toLowerCase();
    // A host and nothing else: the parser would read `a.com/x` or `a.com:80` as host a.com.
    if (bare === "" || NOT_IN_A_HOST.test(bare) || !URL.canParse(`http://${bare}/`)) {
      return "not a domain";
    }
    const host = new URL(`http://${bare}/`).hostname;
    return HOST_CHARACTERS.test(host) ? { values: [host] } : "not a domain";
  },
  sha256: hexDigest("a SHA-256", 64),
  md5: hexDigest("an MD5", 32),
  sha1: hexDigest("a SHA-1", 40),
};

function hexDigest(name: string, length: number): EntryNormaliser {
  const pattern = new RegExp(`^[0-9a-f]{${length}}$`);
  return (entry) => {
    const digest = entry.toLowerCase();
    return pattern.test(digest)
      ? { values: [digest] }
      : `not ${name} digest (${length} hexadecimal characters)`;
  };
}

/** One line per bad entry, for the reporter. */
export function describeBadLine(bad: BadBlocklistLine): string {
  return `${bad.file}:${bad.line}: ${bad.reason}, line ignored: ${JSON.stringify(bad.text)}`;
}

/** What the lists contribute to a shard digest: their entries, not where the files are. */
export function blocklistsDigest(lists: Blocklists): Record<BlocklistKind, string> {
  const digest = (list: Blocklist) => {
    const hash = createHash("sha256");
    for (const entry of [...list.entries].sort()) hash.update(`${entry}\n`);
    return hash.digest("hex");
  };
  return Object.fromEntries(BLOCKLIST_KINDS.map((kind) => [kind, digest(lists[kind])])) as Record<
    BlocklistKind,
    string
  >;
}

/** Loads the lists into temporary tables of the connection the shard queries run on. */
export async function createBlocklistTables(
  connection: DuckDBConnection,
  lists: Blocklists,
): Promise<void> {
  for (const kind of BLOCKLIST_KINDS) {
    const { table, column } = BLOCKLIST_TABLES[kind];
    await connection.run(`CREATE OR REPLACE TEMP TABLE ${table} (${column} VARCHAR)`);
    const appender = await connection.createAppender(table);
    for (const entry of lists[kind].entries) {
      appender.appendVarchar(entry);
      appender.endRow();
    }
    appender.closeSync();
  }
}

export async function dropBlocklistTables(connection: DuckDBConnection): Promise<void> {
  for (const { table } of Object.values(BLOCKLIST_TABLES)) {
    await connection.run(`DROP TABLE IF EXISTS ${table}`);
  }
}
