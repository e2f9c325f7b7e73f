/**
 * What the shard kit records of a file. An input's identity (size and modification time: a
 * rewritten file changes at least the latter) goes into shard digests, so a changed input redoes
 * the shard; an output's size goes into the done marker, so a damaged output is rebuilt.
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import type { DatasetStorage, FileInfo } from "./storage.js";

export type FileIdentity =
  | { bytes: number; modified: number; version?: string }
  | { missing: true };

/** The identity of a file of the root (with its version tag on object storage). */
export async function fileIdentity(storage: DatasetStorage, path: string): Promise<FileIdentity> {
  const info = await storage.stat(path);
  if (info === undefined) return { missing: true };
  const { bytes, modified, version } = info;
  return version === undefined ? { bytes, modified } : { bytes, modified, version };
}

/** The identity of a local file outside the root (a blocklist, a model, an input given by path). */
export async function localFileIdentity(path: string): Promise<FileIdentity> {
  const info = await stat(path).catch(() => undefined);
  return info === undefined ? { missing: true } : { bytes: info.size, modified: info.mtimeMs };
}

/** The outputs' sizes for a done marker; a missing one gets -1, so the marker never matches. */
export async function outputInfo(
  storage: DatasetStorage,
  paths: readonly string[],
): Promise<FileInfo[]> {
  const infos = await Promise.all(paths.map((path) => storage.stat(path)));
  return infos.map((info, index) => ({
    path: paths[index] as string,
    bytes: info === undefined ? -1 : info.bytes,
  }));
}

/** How `endsChecksum` values begin. */
export const ENDS_CHECKSUM_SCHEME = "ends-sha256:";
const ENDS_BYTES = 64 * 1024;

/**
 * SHA-256 over the first and last 64 KiB (the whole file when it is smaller than both): a
 * constant cost per file, where hashing a multi-GB tar whole would make every skip check read it.
 */
export async function endsChecksum(
  storage: DatasetStorage,
  path: string,
  bytes: number,
): Promise<string> {
  const hash = createHash("sha256");
  if (bytes <= 2 * ENDS_BYTES) hash.update(await storage.readRange(path, 0, bytes));
  else {
    hash.update(await storage.readRange(path, 0, ENDS_BYTES));
    hash.update(await storage.readRange(path, bytes - ENDS_BYTES, ENDS_BYTES));
  }
  return `${ENDS_CHECKSUM_SCHEME}${hash.digest("hex")}`;
}
