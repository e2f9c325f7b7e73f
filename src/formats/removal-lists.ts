/**
 * The lists `clipcrawl remove` takes and keeps: image URLs, domains (each covering its
 * subdomains), SHA-256 / MD5 / SHA-1 digests of the image bytes (Re-LAION's takedown lists come
 * as MD5 and SHA-1), and sample keys. A request file is parsed as the filter's blocklists are
 * (blocklists.ts: one entry a line, `#` comments, entries normalised, a bad
 * line reported and the rest applied: one typo must not switch a takedown list off).
 *
 * What a removal took out is kept under `_governance/blocklists/KIND.txt`, append-only, each
 * removal's entries under a comment naming it: the entries it was asked for, and the URLs and
 * digests of the samples it removed (found by key or hash), so that a re-download of the same
 * link or a new copy of the same image is caught by download and filter.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { InputError } from "../errors.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";
import {
  type BadBlocklistLine,
  type EntryNormaliser,
  NORMALISE_BLOCKLIST_ENTRY,
  parseListLines,
} from "./blocklists.js";

export const REMOVAL_KINDS = ["urls", "domains", "sha256", "md5", "sha1", "keys"] as const;
export type RemovalKind = (typeof REMOVAL_KINDS)[number];

export interface RemovalList {
  kind: RemovalKind;
  /** The file it was read from ("" when built in memory). */
  file: string;
  entries: ReadonlySet<string>;
  badLines: readonly BadBlocklistLine[];
}

export type RemovalLists = Record<RemovalKind, RemovalList>;

const NORMALISE: Record<RemovalKind, EntryNormaliser> = {
  urls: NORMALISE_BLOCKLIST_ENTRY.url,
  domains: NORMALISE_BLOCKLIST_ENTRY.domain,
  sha256: NORMALISE_BLOCKLIST_ENTRY.sha256,
  md5: NORMALISE_BLOCKLIST_ENTRY.md5,
  sha1: NORMALISE_BLOCKLIST_ENTRY.sha1,
  keys: (entry) => (/^\S+$/.test(entry) ? { values: [entry] } : "not a sample key"),
};

export function emptyRemovalLists(): RemovalLists {
  return Object.fromEntries(
    REMOVAL_KINDS.map((kind) => [kind, { kind, file: "", entries: new Set(), badLines: [] }]),
  ) as unknown as RemovalLists;
}

export function parseRemovalList(kind: RemovalKind, text: string, file: string): RemovalList {
  return { kind, ...parseListLines(text, file, NORMALISE[kind]) };
}

/** The request files named per kind (paths relative to `cwd`); an unreadable file stops the removal. */
export async function readRemovalRequest(
  files: Partial<Record<RemovalKind, string>>,
  cwd: string,
): Promise<RemovalLists> {
  const lists = emptyRemovalLists();
  for (const kind of REMOVAL_KINDS) {
    const path = files[kind];
    if (path === undefined || path === "") continue;
    const file = resolve(cwd, path);
    const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
      const reason = error.code === "ENOENT" ? "does not exist" : error.message;
      throw new InputError("CC_REMOVAL_LIST", file, `cannot read the ${kind} list: ${reason}`);
    });
    lists[kind] = parseRemovalList(kind, text, file);
  }
  return lists;
}

export function countEntries(lists: RemovalLists): number {
  return REMOVAL_KINDS.reduce((sum, kind) => sum + lists[kind].entries.size, 0);
}

/** What the root's governance lists hold; a missing list is empty. */
export async function loadGovernanceLists(storage: DatasetStorage): Promise<RemovalLists> {
  const lists = emptyRemovalLists();
  for (const kind of REMOVAL_KINDS) {
    const path = layout.governanceBlocklist(kind);
    if (!(await storage.exists(path))) continue;
    lists[kind] = parseRemovalList(kind, await storage.readText(path), storage.describe(path));
  }
  return lists;
}

/** Entries to add to the governance lists under one heading (a removal, and what it found). */
export interface ListBlock {
  /** The comment line above the entries, naming the removal; also what makes adding idempotent. */
  heading: string;
  entries: Partial<Record<RemovalKind, Iterable<string>>>;
}

/**
 * Appends each block's entries (those the list does not hold yet) to the root's lists, each list
 * rewritten atomically. A block whose heading is already in a list was added before (a resumed
 * removal) and is skipped there.
 */
export async function appendToGovernanceLists(
  storage: DatasetStorage,
  blocks: readonly ListBlock[],
): Promise<void> {
  const current = await loadGovernanceLists(storage);
  for (const kind of REMOVAL_KINDS) {
    const path = layout.governanceBlocklist(kind);
    const existing = (await storage.exists(path)) ? await storage.readText(path) : listHeader(kind);
    const held = new Set(current[kind].entries);
    let added = "";
    for (const block of blocks) {
      if (existing.includes(`\n${block.heading}\n`)) continue;
      const fresh = [...(block.entries[kind] ?? [])].filter((entry) => !held.has(entry));
      if (fresh.length === 0) continue;
      for (const entry of fresh) held.add(entry);
      added += `${block.heading}\n${fresh.join("\n")}\n`;
    }
    if (added !== "") await storage.writeAtomic(path, `${existing}${added}`);
  }
}

function listHeader(kind: RemovalKind): string {
  return `# clipcrawl governance list (${kind}): what \`clipcrawl remove\` took out of this root. Download and filter honour it.\n# One entry a line; # starts a comment. Entries are added by clipcrawl remove, never taken out.\n`;
}
