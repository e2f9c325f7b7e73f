/**
 * `.npy` files on disk, streamed (npy.ts reads and writes whole arrays in memory): the header
 * alone, to know a matrix's rows without reading it, and a copy that leaves some rows out, a
 * block of rows at a time, so a shard's matrix need not fit in memory.
 */
import { open } from "node:fs/promises";
import { COPY_BLOCK_BYTES, withCopyBlocks } from "./copy-blocks.js";
import {
  decodeNpyHeader,
  encodeNpyHeader,
  NpyFormatError,
  type NpyHeader,
  npyItemSize,
} from "./npy.js";

/** Magic, version, a 4-byte length and the longest header version 1.0 allows. */
const LONGEST_HEADER = 12 + 0xffff;

/** The header of the `.npy` file at `path`; NpyFormatError when it is not one. */
export async function readNpyFileHeader(path: string): Promise<NpyHeader> {
  const handle = await open(path, "r");
  try {
    const head = Buffer.alloc(LONGEST_HEADER);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return decodeNpyHeader(head.subarray(0, bytesRead));
  } finally {
    await handle.close();
  }
}

/**
 * Writes to `target` the array of `source` without the rows at `dropped` (positions along the
 * first dimension), with a header giving the rows that are left. NpyFormatError when `source` is
 * not an `.npy` file or ends before its data does.
 */
export async function copyNpyWithoutRows(
  source: string,
  target: string,
  dropped: ReadonlySet<number>,
): Promise<{ rowsBefore: number; rowsAfter: number }> {
  const header = await readNpyFileHeader(source);
  const [rows = 0, ...rowShape] = header.shape;
  const rowBytes =
    rowShape.reduce((product, size) => product * size, 1) * npyItemSize(header.dtype);
  let rowsAfter = rows;
  for (const position of dropped) if (position >= 0 && position < rows) rowsAfter--;
  const input = await open(source, "r");
  const output = await open(target, "w");
  try {
    await output.write(encodeNpyHeader(header.dtype, [rowsAfter, ...rowShape]));
    const blockRows = Math.max(1, Math.floor(COPY_BLOCK_BYTES / Math.max(rowBytes, 1)));
    const copyBlock = async (block: Buffer, packed: Buffer) => {
      for (let first = 0; first < rows; first += blockRows) {
        const count = Math.min(blockRows, rows - first);
        const { bytesRead } = await input.read(
          block,
          0,
          count * rowBytes,
          header.dataOffset + first * rowBytes,
        );
        if (bytesRead < count * rowBytes) throw new NpyFormatError("the file ends early");
        // The kept rows of the block are packed and written in one go.
        let length = 0;
        for (let row = 0; row < count; row++) {
          if (dropped.has(first + row)) continue;
          block.copy(packed, length, row * rowBytes, (row + 1) * rowBytes);
          length += rowBytes;
        }
        if (length > 0) await output.write(packed, 0, length);
      }
    };
    if (blockRows * rowBytes <= COPY_BLOCK_BYTES) {
      await withCopyBlocks(2, ([block, packed]) => copyBlock(block as Buffer, packed as Buffer));
    } else {
      // One row is larger than a block: a row at a time.
      await copyBlock(Buffer.alloc(rowBytes), Buffer.alloc(rowBytes));
    }
  } finally {
    await Promise.all([input.close(), output.close()]);
  }
  return { rowsBefore: rows, rowsAfter };
}
