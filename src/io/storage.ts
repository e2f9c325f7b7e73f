/**
 * Where a dataset root lives: a local folder (local-storage.ts) or an object-storage prefix
 * (s3-storage.ts). Stages address files by paths relative to the root and never touch the file
 * system directly. Every write is atomic: a reader sees the old file, the new file, or no file,
 * never a part.
 */
import type { Readable } from "node:stream";

export interface FileInfo {
  path: string;
  bytes: number;
}

/** A file as `stat` finds it: its size, and what tells one version of it from the next. */
export interface StoredFile extends FileInfo {
  /** When it was last written, in milliseconds since the epoch. */
  modified: number;
  /** A version tag where the store keeps one (an S3 ETag); a local file has none. */
  version?: string;
}

export interface DatasetStorage {
  /** The root as `openRoot` accepts it (a resolved local path, an `s3://` URL): for other threads. */
  readonly root: string;
  /** A human-readable location for messages (a local path, a URL). */
  describe(path: string): string;
  exists(path: string): Promise<boolean>;
  read(path: string): Promise<Buffer>;
  readText(path: string): Promise<string>;
  openRead(path: string): Readable;
  /** `length` bytes from `offset` (fewer where the file ends first). */
  readRange(path: string, offset: number, length: number): Promise<Buffer>;
  stat(path: string): Promise<StoredFile | undefined>;
  /** Files directly inside a folder, sorted by name; empty when the folder does not exist. */
  list(folder: string): Promise<string[]>;
  /** Folders directly inside a folder, sorted by name; empty when the folder does not exist. */
  listFolders(folder: string): Promise<string[]>;
  writeAtomic(path: string, data: string | Uint8Array): Promise<void>;
  /**
   * For writers that need a local file (DuckDB's COPY, tar writers): `produce` writes to the given
   * temporary local path, which is then moved into place atomically.
   */
  writeAtomicWith(path: string, produce: (localPath: string) => Promise<void>): Promise<void>;
  /** Removes a file, or a folder with everything in it; nothing to remove is not an error. */
  remove(path: string): Promise<void>;
  /**
   * `to` holds what `from` holds now, whatever later happens to `from` (a hard link on a local
   * disk, costing no space; a server-side copy on object storage).
   */
  copy(from: string, to: string): Promise<void>;
  /**
   * A local file holding the content, for readers that need a path (DuckDB, a memory map). Read
   * it, never write it: on object storage it is a copy in a bounded local cache.
   */
  localPath(path: string): Promise<string>;
}
