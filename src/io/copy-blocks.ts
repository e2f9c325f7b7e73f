/**
 * Copying a large file piecewise in big blocks (the `.npy` row filter, the tar range copy). The
 * blocks are lent from a free list rather than allocated per copy: a fresh buffer costs a page
 * fault per 4 KB on first touch, which measured as much as the copying itself on a virtual
 * machine. Concurrent copies each get their own blocks.
 */
import type { FileHandle } from "node:fs/promises";

/** Bytes read or written per step. */
export const COPY_BLOCK_BYTES = 8 * 1024 * 1024;

const free: Buffer[] = [];

/** Runs `use` with `count` blocks of COPY_BLOCK_BYTES, returned for reuse afterwards. */
export async function withCopyBlocks<T>(
  count: number,
  use: (blocks: Buffer[]) => Promise<T>,
): Promise<T> {
  const blocks = Array.from({ length: count }, () => free.pop() ?? Buffer.alloc(COPY_BLOCK_BYTES));
  try {
    return await use(blocks);
  } finally {
    free.push(...blocks);
  }
}

/**
 * Reads a file through one block at a time, for many small reads in file order. What `bytes`
 * returns is valid until the next call.
 */
export class BlockReader {
  #window: Buffer = Buffer.alloc(0);
  #windowStart = 0;

  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
    private readonly block: Buffer,
  ) {}

  /** `length` bytes at `offset` (at most a block; fewer at the end of the file). */
  async bytes(offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, this.size);
    if (offset < this.#windowStart || end > this.#windowStart + this.#window.length) {
      const wanted = Math.min(this.block.length, this.size - offset);
      const { bytesRead } = await this.handle.read(this.block, 0, wanted, offset);
      this.#window = this.block.subarray(0, bytesRead);
      this.#windowStart = offset;
    }
    return this.#window.subarray(offset - this.#windowStart, end - this.#windowStart);
  }
}
