/**
 * Re-ranks candidate ids by exact inner product with their float16 vectors, read from the
 * embeddings `.npy` shards on disk one row at a time (positioned reads, nothing kept resident):
 * what a compressed tier may do for its top candidates.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { decodeNpyHeader } from "../../src/io/npy.js";
import { fromFloat16Bits } from "../../src/models/float16.js";

export class Float16Reranker {
  private readonly files: { descriptor: number; dataOffset: number; rows: number }[] = [];
  private readonly rowBytes: number;
  private readonly buffer: Buffer;
  private readonly bits: Uint16Array;
  /** Every float16 bit pattern's value, so a row converts by lookup. */
  private readonly halfValues = fromFloat16Bits(
    Uint16Array.from({ length: 65536 }, (_, bits) => bits),
  );

  constructor(
    paths: readonly string[],
    private readonly dimensions: number,
  ) {
    this.rowBytes = dimensions * 2;
    this.buffer = Buffer.alloc(this.rowBytes);
    this.bits = new Uint16Array(this.buffer.buffer, this.buffer.byteOffset, dimensions);
    const head = Buffer.alloc(512);
    for (const path of paths) {
      const descriptor = openSync(path, "r");
      readSync(descriptor, head, 0, head.length, 0);
      const header = decodeNpyHeader(head);
      if (header.dtype !== "<f2" || header.shape[1] !== dimensions) {
        throw new Error(
          `${path}: expected float16 rows of ${dimensions}, found ${header.dtype} ${JSON.stringify(header.shape)}`,
        );
      }
      this.files.push({
        descriptor,
        dataOffset: header.dataOffset,
        rows: header.shape[0] as number,
      });
    }
  }

  /** The k best of `candidates` by exact inner product with `query`, best first. */
  rerank(query: Float32Array, candidates: ArrayLike<number>, count: number, k: number): number[] {
    const scored: { id: number; score: number }[] = [];
    for (let index = 0; index < count; index++) {
      const id = candidates[index] as number;
      scored.push({ id, score: this.dot(query, id) });
    }
    scored.sort((left, right) => right.score - left.score);
    return scored.slice(0, k).map((entry) => entry.id);
  }

  close(): void {
    for (const file of this.files) closeSync(file.descriptor);
  }

  private dot(query: Float32Array, id: number): number {
    let row = id;
    let file = 0;
    while (row >= (this.files[file]?.rows ?? Number.POSITIVE_INFINITY)) {
      row -= this.files[file]?.rows as number;
      file++;
    }
    const { descriptor, dataOffset } = this.files[file] as {
      descriptor: number;
      dataOffset: number;
    };
    readSync(descriptor, this.buffer, 0, this.rowBytes, dataOffset + row * this.rowBytes);
    const { bits, halfValues } = this;
    let sum = 0;
    for (let dim = 0; dim < this.dimensions; dim++) {
      sum += (query[dim] as number) * (halfValues[bits[dim] as number] as number);
    }
    return sum;
  }
}
