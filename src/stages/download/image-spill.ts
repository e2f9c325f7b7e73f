/**
 * Encoded images of a shard, parked as they finish (in whatever order the network gives) so the
 * shard can then be written in key order without holding every image in memory.
 *
 * The first `memoryBytes` stay in memory; the rest go to a temporary file in batches of a few
 * megabytes, and are read back through a read-ahead window. One write or read call per image
 * cost more main-thread time than the fetch itself (each is a trip through libuv's thread pool),
 * and images finish in roughly key order, so big sequential batches serve both directions.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export type SpilledImage =
  | { kind: "memory"; image: Buffer }
  | { kind: "file"; offset: number; length: number };

export interface ImageSpillOptions {
  /** Folder of the spill file, created only when the memory share is used up. */
  folder?: string;
  /** Bytes of images kept in memory before the file is used. */
  memoryBytes?: number;
  /** Size of one write to the file, and of one read-ahead. */
  batchBytes?: number;
}

const DEFAULT_MEMORY_BYTES = 128 * 1024 * 1024;
const DEFAULT_BATCH_BYTES = 4 * 1024 * 1024;

export class ImageSpill {
  private readonly folder: string;
  private readonly batchBytes: number;
  private memoryLeft: number;
  private file: { path: string; handle: Promise<FileHandle> } | undefined;
  /** Images appended to the file but not written yet, from `pendingOffset` on. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pendingOffset = 0;
  /** Writes in flight, in order; a read waits for them. */
  private writing: Promise<void> = Promise.resolve();
  /** The first failed write, reported by the next read (a rejection nobody awaits yet would crash). */
  private failure: Error | undefined;
  private window: { offset: number; bytes: Buffer } | undefined;

  constructor(options: ImageSpillOptions = {}) {
    this.folder = options.folder ?? tmpdir();
    this.memoryLeft = options.memoryBytes ?? DEFAULT_MEMORY_BYTES;
    this.batchBytes = options.batchBytes ?? DEFAULT_BATCH_BYTES;
  }

  /** Synchronous for images kept in memory, so the common case costs no promise. */
  append(image: Buffer): SpilledImage {
    if (image.length <= this.memoryLeft) {
      this.memoryLeft -= image.length;
      return { kind: "memory", image };
    }
    const offset = this.pendingOffset + this.pendingBytes;
    this.pending.push(image);
    this.pendingBytes += image.length;
    if (this.pendingBytes >= this.batchBytes) this.flush();
    return { kind: "file", offset, length: image.length };
  }

  async read(image: SpilledImage): Promise<Buffer> {
    if (image.kind === "memory") return image.image;
    const end = image.offset + image.length;
    if (end > this.pendingOffset) this.flush();
    await this.writing;
    if (this.failure !== undefined) throw this.failure;
    const window = this.window;
    if (window !== undefined && image.offset >= window.offset) {
      const start = image.offset - window.offset;
      if (start + image.length <= window.bytes.length) {
        return window.bytes.subarray(start, start + image.length);
      }
    }
    const handle = await (this.file as { handle: Promise<FileHandle> }).handle;
    const size = Math.max(image.length, this.batchBytes);
    const bytes = Buffer.allocUnsafe(size);
    const { bytesRead } = await handle.read(bytes, 0, size, image.offset);
    if (bytesRead < image.length) {
      throw new Error(`image spill file ${this.file?.path} is short`);
    }
    this.window = { offset: image.offset, bytes: bytes.subarray(0, bytesRead) };
    return bytes.subarray(0, image.length);
  }

  async dispose(): Promise<void> {
    await this.writing;
    if (this.file === undefined) return;
    const handle = await this.file.handle.catch(() => undefined);
    await handle?.close();
    await rm(this.file.path, { force: true });
  }

  private flush(): void {
    if (this.pendingBytes === 0) return;
    if (this.file === undefined) {
      const path = join(this.folder, `clipcrawl-images-${randomBytes(6).toString("hex")}.spill`);
      const handle = open(path, "w+");
      handle.catch(() => {}); // reported through the write that awaits it
      this.file = { path, handle };
    }
    const file = this.file;
    const chunks = this.pending;
    const offset = this.pendingOffset;
    this.pendingOffset += this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    // Chained, so a read never overtakes a write of the bytes it wants.
    this.writing = this.writing.then(async () => {
      try {
        const handle = await file.handle;
        const { bytesWritten } = await handle.writev(chunks, offset);
        const expected = chunks.reduce((sum, chunk) => sum + chunk.length, 0);
        if (bytesWritten !== expected) throw new Error(`short write to ${file.path}`);
      } catch (error) {
        this.failure ??= error as Error;
      }
    });
  }
}
