/**
 * Encoded images of a shard, parked in a temporary file as they finish (in whatever order the
 * network gives), so the shard can then be written in key order without holding every image
 * in memory.
 */
import { randomBytes } from "node:crypto";
import { type FileHandle, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface SpilledImage {
  offset: number;
  length: number;
}

export class ImageSpill {
  private size = 0;

  private constructor(
    private readonly path: string,
    private readonly file: FileHandle,
  ) {}

  static async create(folder = tmpdir()): Promise<ImageSpill> {
    const path = join(folder, `clipcrawl-images-${randomBytes(6).toString("hex")}.spill`);
    return new ImageSpill(path, await open(path, "w+"));
  }

  async append(image: Uint8Array): Promise<SpilledImage> {
    // The offset is taken before the write, so concurrent appends never overlap.
    const offset = this.size;
    this.size += image.length;
    await this.file.write(image, 0, image.length, offset);
    return { offset, length: image.length };
  }

  async read(image: SpilledImage): Promise<Buffer> {
    const buffer = Buffer.allocUnsafe(image.length);
    const { bytesRead } = await this.file.read(buffer, 0, image.length, image.offset);
    if (bytesRead !== image.length) throw new Error(`image spill file ${this.path} is short`);
    return buffer;
  }

  async dispose(): Promise<void> {
    await this.file.close();
    await rm(this.path, { force: true });
  }
}
