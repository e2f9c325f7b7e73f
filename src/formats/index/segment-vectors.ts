/**
 * The vectors of the index's segments, float16 `.npy` files (`index/segments/S/image_emb.npy`),
 * for what the graph cannot do: exact search over a filtered subset, and over small indices.
 * They are held in memory when they fit the budget given to openIndex, else read by position
 * from the files on each exact search (the page cache keeps the hot ones).
 *
 * Rows are compared as float16 through a 65,536-entry table: one lookup per value, no branches.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { encodeNpy, NpyFormatError } from "../../io/npy.js";
import { float16Table, toFloat16Bits } from "../../models/float16.js";
import { segmentHolding } from "./index-manifest.js";

const HALF_TO_FLOAT = float16Table();

/** A float16 `.npy` file of a `rows × dimensions` matrix. */
export function encodeSegmentVectors(vectors: Float32Array, dimensions: number): Buffer {
  return encodeNpy({
    dtype: "<f2",
    shape: [vectors.length / dimensions, dimensions],
    data: toFloat16Bits(vectors),
  });
}

interface NpyLayout {
  rows: number;
  dimensions: number;
  dataOffset: number;
}

/** Where the data of a float16 `.npy` file (version 1.0, as encodeNpy writes) starts. */
function readLayout(header: Buffer, path: string): NpyLayout {
  if (header.length < 10 || header[0] !== 0x93 || header.toString("latin1", 1, 6) !== "NUMPY") {
    throw new NpyFormatError(`${path}: not a .npy file`);
  }
  const headerLength = header.readUInt16LE(8);
  const text = header.toString("latin1", 10, 10 + headerLength);
  const shape = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(text);
  if (!text.includes("'<f2'") || shape === null) {
    throw new NpyFormatError(`${path}: expected a 2-d float16 .npy, header ${text.trim()}`);
  }
  return { rows: Number(shape[1]), dimensions: Number(shape[2]), dataOffset: 10 + headerLength };
}

interface SegmentFile {
  path: string;
  firstId: number;
  rows: number;
  dataOffset: number;
  descriptor: number | undefined;
}

export class SegmentVectors {
  /** Where rows read from the files land, grown to the longest run read (dotMany). */
  private readBuffer = Buffer.allocUnsafeSlow(0);

  private constructor(
    readonly dimensions: number,
    private readonly files: SegmentFile[],
    /** All rows in id order, when held in memory. */
    private readonly bits: Uint16Array | undefined,
  ) {}

  /** `segments` in id order; `inMemory` loads them all. */
  static async open(
    segments: readonly { path: string; firstId: number; rows: number }[],
    dimensions: number,
    inMemory: boolean,
  ): Promise<SegmentVectors> {
    const total = segments.reduce((sum, segment) => sum + segment.rows, 0);
    const bits = inMemory ? new Uint16Array(total * dimensions) : undefined;
    const files: SegmentFile[] = [];
    for (const segment of segments) {
      let layout: NpyLayout;
      if (bits !== undefined) {
        const bytes = await readFile(segment.path);
        layout = readLayout(bytes, segment.path);
        checkLayout(layout, segment, dimensions);
        let data = bytes.subarray(layout.dataOffset);
        if (data.byteOffset % 2 !== 0) data = Buffer.from(data);
        // Little-endian on every platform Node runs on: the bytes are the values.
        bits.set(
          new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2),
          segment.firstId * dimensions,
        );
        files.push({ ...segment, dataOffset: layout.dataOffset, descriptor: undefined });
      } else {
        const descriptor = openSync(segment.path, "r");
        const header = Buffer.alloc(4096);
        readSync(descriptor, header, 0, header.length, 0);
        layout = readLayout(header, segment.path);
        checkLayout(layout, segment, dimensions);
        files.push({ ...segment, dataOffset: layout.dataOffset, descriptor });
      }
    }
    return new SegmentVectors(dimensions, files, bits);
  }

  get inMemory(): boolean {
    return this.bits !== undefined;
  }

  /**
   * The inner product of `query` with each row of `ids` (ascending) into `out`. Rows are read in
   * runs of consecutive ids when they come from the files.
   */
  dotMany(query: Float32Array, ids: Uint32Array, out: Float32Array): void {
    const dimensions = this.dimensions;
    if (this.bits !== undefined) {
      const bits = this.bits;
      for (let index = 0; index < ids.length; index++) {
        const base = (ids[index] as number) * dimensions;
        let sum = 0;
        for (let dim = 0; dim < dimensions; dim++) {
          sum += (query[dim] as number) * (HALF_TO_FLOAT[bits[base + dim] as number] as number);
        }
        out[index] = sum;
      }
      return;
    }
    const rowBytes = dimensions * 2;
    let start = 0;
    while (start < ids.length) {
      const first = ids[start] as number;
      const file = this.fileOf(first);
      const fileEnd = file.firstId + file.rows;
      let end = start + 1;
      while (
        end < ids.length &&
        ids[end] === first + (end - start) &&
        (ids[end] as number) < fileEnd
      ) {
        end++;
      }
      const runBytes = (end - start) * rowBytes;
      if (this.readBuffer.length < runBytes) this.readBuffer = Buffer.allocUnsafeSlow(runBytes);
      const buffer = this.readBuffer;
      readSync(
        file.descriptor as number,
        buffer,
        0,
        runBytes,
        file.dataOffset + (first - file.firstId) * rowBytes,
      );
      const bits = new Uint16Array(buffer.buffer, buffer.byteOffset, runBytes / 2);
      for (let row = 0; row < end - start; row++) {
        const base = row * dimensions;
        let sum = 0;
        for (let dim = 0; dim < dimensions; dim++) {
          sum += (query[dim] as number) * (HALF_TO_FLOAT[bits[base + dim] as number] as number);
        }
        out[start + row] = sum;
      }
      start = end;
    }
  }

  close(): void {
    for (const file of this.files) {
      if (file.descriptor !== undefined) closeSync(file.descriptor);
      file.descriptor = undefined;
    }
  }

  private fileOf(id: number): SegmentFile {
    return segmentHolding(this.files, id);
  }
}

function checkLayout(
  layout: NpyLayout,
  segment: { path: string; rows: number },
  dimensions: number,
): void {
  if (layout.rows !== segment.rows || layout.dimensions !== dimensions) {
    throw new NpyFormatError(
      `${segment.path}: shape [${layout.rows}, ${layout.dimensions}], the manifest says [${segment.rows}, ${dimensions}]`,
    );
  }
}
