/**
 * A bounded local copy of remote files, for readers that need a path (DuckDB reading Parquet,
 * usearch memory-mapping an index, `serve` reading tars for thumbnails).
 *
 * - A file is named by a hash of its identity (the store, the key and the object's version), so
 *   a rewritten object is fetched again, never served stale, and processes sharing the folder
 *   (workers, threads) agree on names without talking: each fetches into a temporary name and
 *   renames it into place, so a reader never sees a part.
 * - Use is recorded as the file's modification time; past the size bound the least recently
 *   used files are removed. A file used in the last `graceMs` is kept even past the bound: it was
 *   just handed to a reader that may not have opened it yet. Removing a file that a reader
 *   already holds open (or mapped) is safe on POSIX systems: its data stays until it is closed.
 * - So the bound can be passed for a while by the files in use, and by one file larger than it.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { join } from "node:path";

export interface LocalFileCacheOptions {
  folder: string;
  /** The size the cache is trimmed to after each fetch, in bytes. */
  maxBytes: number;
  /** Files used this recently are never evicted (default 10 minutes). */
  graceMs?: number;
}

/** Temporary files older than this were left by a process that died mid-fetch. */
const STALE_PART_MS = 60 * 60 * 1000;

export class LocalFileCache {
  readonly folder: string;
  readonly maxBytes: number;
  private readonly graceMs: number;
  private readonly fetching = new Map<string, Promise<string>>();

  constructor(options: LocalFileCacheOptions) {
    this.folder = options.folder;
    this.maxBytes = options.maxBytes;
    this.graceMs = options.graceMs ?? 10 * 60 * 1000;
  }

  /**
   * The local file for `identity`, fetched by `fill` (which writes the given path) when the cache
   * does not hold it. `name` ends the file name, so the file keeps its extension.
   */
  async file(
    identity: string,
    name: string,
    fill: (temporaryPath: string) => Promise<void>,
  ): Promise<string> {
    const path = join(this.folder, `${hash(identity)}-${safeName(name)}`);
    if (await touch(path)) return path;
    const running = this.fetching.get(path);
    if (running !== undefined) return running;
    const fetched = this.fetch(path, fill).finally(() => this.fetching.delete(path));
    this.fetching.set(path, fetched);
    return fetched;
  }

  /** Every cached file with its size and last use, oldest use first. */
  async entries(): Promise<{ path: string; bytes: number; used: number }[]> {
    const names = await readdir(this.folder).catch(() => [] as string[]);
    const entries: { path: string; bytes: number; used: number }[] = [];
    for (const name of names) {
      const path = join(this.folder, name);
      const info = await stat(path).catch(() => undefined);
      if (info === undefined || !info.isFile()) continue;
      if (name.startsWith(".")) {
        if (Date.now() - info.mtimeMs > STALE_PART_MS) await rm(path, { force: true });
        continue;
      }
      entries.push({ path, bytes: info.size, used: info.mtimeMs });
    }
    return entries.sort((a, b) => a.used - b.used);
  }

  private async fetch(path: string, fill: (temporaryPath: string) => Promise<void>) {
    await mkdir(this.folder, { recursive: true });
    const temporary = join(this.folder, `.${randomBytes(6).toString("hex")}.part`);
    try {
      await fill(temporary);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    await this.trim(path);
    return path;
  }

  /** Removes the least recently used files until the cache fits its bound (see the top). */
  private async trim(keep: string): Promise<void> {
    const entries = await this.entries();
    let total = entries.reduce((sum, entry) => sum + entry.bytes, 0);
    const recent = Date.now() - this.graceMs;
    for (const entry of entries) {
      if (total <= this.maxBytes) break;
      if (entry.path === keep || entry.used > recent) continue;
      await rm(entry.path, { force: true });
      total -= entry.bytes;
    }
  }
}

/** Marks a cached file as used now; false when it is not there. */
async function touch(path: string): Promise<boolean> {
  const now = new Date();
  try {
    await utimes(path, now, now);
    return true;
  } catch {
    return false;
  }
}

function hash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 32);
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, "_").slice(-80);
}
