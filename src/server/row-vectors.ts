/**
 * One row's stored embedding, read from its segment's float16 `.npy` file by position: the query
 * of "more like this" (`like_id`), which then needs neither the image (often gone from its site)
 * nor a model run.
 */
import { open } from "node:fs/promises";
import {
  type IndexManifest,
  type Modality,
  segmentHolding,
} from "../formats/index/index-manifest.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";
import { fromFloat16Bits } from "../models/float16.js";
import { float16DataOffset } from "./image-vector-scan.js";

/** The row's embedding, or undefined when the index has no such row. */
export async function rowVector(
  storage: DatasetStorage,
  manifest: IndexManifest,
  id: number,
  modality: Modality,
): Promise<Float32Array | undefined> {
  if (!Number.isInteger(id) || id < 0 || id >= manifest.rows || manifest.segments.length === 0) {
    return undefined;
  }
  const segment = segmentHolding(manifest.segments, id);
  const path = layout.indexSegmentVectors(segment.name, modality);
  const file = await open(await storage.localPath(path), "r");
  try {
    const dataOffset = await float16DataOffset(file, storage.describe(path));
    const bytes = Buffer.alloc(manifest.dimensions * 2);
    const position = dataOffset + (id - segment.firstId) * bytes.length;
    const { bytesRead } = await file.read(bytes, 0, bytes.length, position);
    if (bytesRead !== bytes.length) {
      throw new Error(
        `${storage.describe(layout.indexSegmentVectors(segment.name, modality))} ends before row ${id}`,
      );
    }
    const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, manifest.dimensions);
    return fromFloat16Bits(bits);
  } finally {
    await file.close();
  }
}
