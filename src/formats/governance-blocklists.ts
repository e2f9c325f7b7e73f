/**
 * How the stages honour what `clipcrawl remove` took out, so removed content never comes back:
 *
 * - filter drops a pair whose URL, domain or image digest (SHA-256, MD5, SHA-1) is in the root's
 *   governance lists, as it drops those of its own blocklists (the lists' entries are merged);
 * - download does not fetch a URL or a domain of the governance lists, and does not keep an
 *   image whose digest is in them (status `opted_out`): the lists are handed to its workers
 *   together with the configured blocklist.
 *
 * The governance lists are not part of download's shard digests: a removal rewrites the shards
 * it touches itself, so finished shards stay finished, and shards downloaded later skip the
 * removed links.
 */
import { randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputError } from "../errors.js";
import type { DatasetStorage } from "../io/storage.js";
import type { Blocklist, Blocklists } from "./blocklists.js";
import { loadGovernanceLists, type RemovalList } from "./removal-lists.js";

/** The filter's lists with the root's governance entries added (keys are not a filter list). */
export async function withGovernanceBlocklists(
  storage: DatasetStorage,
  lists: Blocklists,
): Promise<Blocklists> {
  const governance = await loadGovernanceLists(storage);
  const merge = (list: Blocklist, extra: RemovalList): Blocklist =>
    extra.entries.size === 0 && extra.badLines.length === 0
      ? list
      : {
          ...list,
          entries: new Set([...list.entries, ...extra.entries]),
          badLines: [...list.badLines, ...extra.badLines],
        };
  return {
    url: merge(lists.url, governance.urls),
    domain: merge(lists.domain, governance.domains),
    sha256: merge(lists.sha256, governance.sha256),
    md5: merge(lists.md5, governance.md5),
    sha1: merge(lists.sha1, governance.sha1),
  };
}

export interface DownloadBlocklistFile {
  /** What download's workers load ("" for no list at all). */
  path: string;
  dispose(): Promise<void>;
}

/**
 * Download's blocklist (`configured`: an absolute path, or "" for none) with the governance URL,
 * domain and digest lists added, as one file in download's blocklist format
 * (download-blocklist.ts); a temporary file when the root has governance entries, else the
 * configured list itself.
 */
export async function downloadBlocklistFile(
  storage: DatasetStorage,
  configured: string,
): Promise<DownloadBlocklistFile> {
  const governance = await loadGovernanceLists(storage);
  const entries = [
    ...governance.urls.entries,
    ...governance.domains.entries,
    ...governance.sha256.entries,
    ...governance.md5.entries,
    ...governance.sha1.entries,
  ];
  if (entries.length === 0) return { path: configured, dispose: async () => {} };
  let text = "";
  if (configured !== "") {
    text = await readFile(configured, "utf8").catch((error: NodeJS.ErrnoException) => {
      throw new InputError(
        "CC_BLOCKLIST",
        configured,
        `cannot read the blocklist: ${error.message}`,
      );
    });
  }
  const path = join(tmpdir(), `clipcrawl-download-blocklist-${randomBytes(6).toString("hex")}.txt`);
  await writeFile(path, `${text}\n${entries.join("\n")}\n`);
  return { path, dispose: () => rm(path, { force: true }) };
}
