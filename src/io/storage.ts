/**
 * Where a dataset root lives. Stages address files by paths relative to the root and never touch
 * the file system directly, so object storage can be added behind the same interface later.
 * Every write is atomic: a reader sees the old file, the new file, or no file, never a part.
 */
import type { Readable } from "node:stream";

export interface FileInfo {
  path: string;
  bytes: number;
}

export interface DatasetStorage {
  /** A human-readable location for messages (a local path, later a URL). */
  describe(path: string): string;
  exists(path: string): Promise<boolean>;
  read(path: string): Promise<Buffer>;
  readText(path: string): Promise<string>;
  openRead(path: string): Readable;
  /** `length` bytes from `offset` (fewer where the file ends first). */
  readRange(path: string, offset: number, length: number): Promise<Buffer>;
  stat(path: string): Promise<FileInfo | undefined>;
  /** Files directly inside a folder, sorted by name; empty when the folder does not exist. */
  list(folder: string): Promise<string[]>;
  writeAtomic(path: string, data: string | Uint8Array): Promise<void>;
  /**
   * For writers that need a local file (DuckDB's COPY, tar writers): `produce` writes to the given
   * temporary local path, which is then moved into place atomically.
   */
  writeAtomicWith(path: string, produce: (localPath: string) => Promise<void>): Promise<void>;
  remove(path: string): Promise<void>;
  /**
   * `to` holds what `from` holds now, whatever later happens to `from` (a hard link on a local
   * disk, costing no space; a server-side copy on object storage).
   */
  copy(from: string, to: string): Promise<void>;
  /** A local file holding the content, for readers that need a path (DuckDB). */
  localPath(path: string): Promise<string>;
}
