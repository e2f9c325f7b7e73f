/**
 * One pass over the image embeddings of an index, in id order, for what the server derives from
 * every row once (the aesthetic embeddings, the violence detector's flags). Reads the segments'
 * float16 `.npy` files the manifest names a few thousand rows at a time, by position, so a large
 * index is never held in memory twice, and lets requests in between batches.
 */
import { open } from "node:fs/promises";
import type { IndexManifest } from "../formats/index/index-manifest.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";
import { fromFloat16Bits } from "../models/float16.js";

const ROWS_PER_BATCH = 4096;

/** Every float16 bit pattern's value: one lookup a value instead of decoding each. */
let halfToFloat: Float32Array | undefined;

function float16Table(): Float32Array {
  halfToFloat ??= fromFloat16Bits(Uint16Array.from({ length: 65_536 }, (_, bits) => bits));
  return halfToFloat;
}

/** Calls `visit` with consecutive row ranges: `vectors` holds `rows × dimensions` floats. */
export async function scanImageVectors(
  storage: DatasetStorage,
  manifest: IndexManifest,
  visit: (firstId: number, rows: number, vectors: Float32Array) => void,
): Promise<void> {
  const dimensions = manifest.dimensions;
  const table = float16Table();
  const rowBytes = dimensions * 2;
  for (const segment of manifest.segments) {
    const path = layout.indexSegmentVectors(segment.name, "image");
    const file = await open(await storage.localPath(path), "r");
    try {
      const dataOffset = await float16DataOffset(file, storage.describe(path));
      const bytes = Buffer.alloc(Math.min(ROWS_PER_BATCH, segment.rows) * rowBytes);
      for (let start = 0; start < segment.rows; start += ROWS_PER_BATCH) {
        const rows = Math.min(ROWS_PER_BATCH, segment.rows - start);
        const length = rows * rowBytes;
        const { bytesRead } = await file.read(bytes, 0, length, dataOffset + start * rowBytes);
        if (bytesRead !== length) {
          throw new Error(
            `${storage.describe(path)} ends before row ${segment.firstId + start + rows - 1}`,
          );
        }
        const vectors = new Float32Array(rows * dimensions);
        for (let index = 0; index < vectors.length; index++) {
          vectors[index] = table[bytes.readUInt16LE(index * 2)] as number;
        }
        visit(segment.firstId + start, rows, vectors);
        // Let requests in between batches: the scan runs while the server answers.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      await file.close();
    }
  }
}

/** Where a float16 `.npy` file's data starts (format 1.0, as the index writes them). */
export async function float16DataOffset(
  file: Awaited<ReturnType<typeof open>>,
  name: string,
): Promise<number> {
  const preamble = Buffer.alloc(10);
  await file.read(preamble, 0, 10, 0);
  if (preamble.toString("latin1", 1, 6) !== "NUMPY") throw new Error(`${name} is not a .npy file`);
  const headerLength = preamble.readUInt16LE(8);
  const header = Buffer.alloc(headerLength);
  await file.read(header, 0, headerLength, 10);
  if (!header.toString("latin1").includes("'<f2'")) {
    throw new Error(
      `${name}: expected float16 embeddings, header ${header.toString("latin1").trim()}`,
    );
  }
  return 10 + headerLength;
}
