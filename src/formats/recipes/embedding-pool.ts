/**
 * The image embeddings a recipe works over, shard by shard, as float32 rows read a block at a
 * time (a shard's matrix never needs to fit in memory). A shard is an `.npy` file of
 * `embeddings/img_emb/` and, for a dataset shard (`subset`), which of its rows are in the pool;
 * pool rows are numbered shard after shard, in that order.
 */
import { open } from "node:fs/promises";
import { InputError } from "../../errors.js";
import { NpyFormatError, npyItemSize } from "../../io/npy.js";
import { readNpyFileHeader } from "../../io/npy-file.js";
import { fromFloat16Bits } from "../../models/float16.js";

export interface EmbeddingShard {
  /** The shard's name (NNNNN), for messages and per-shard results. */
  name: string;
  /** Local path of the `.npy` matrix. */
  path: string;
  /** Where the path is, as messages name it. */
  describe: string;
  /** The matrix rows in the pool, ascending; undefined: every row. */
  rows?: Int32Array;
}

export interface EmbeddingBlock {
  /** Pool position of the block's first row within its shard. */
  first: number;
  rows: number;
  /** rows × dim float32 values. */
  values: Float32Array;
}

/** Bytes read from the file at a time. */
const READ_BYTES = 16 * 1024 * 1024;

/** Every float16 bit pattern's value, so a conversion is one lookup per value. */
let float16Table: Float32Array | undefined;

export class EmbeddingPool {
  private constructor(
    readonly shards: readonly EmbeddingShard[],
    /** Pool rows of each shard. */
    readonly shardRows: readonly number[],
    readonly dim: number,
  ) {}

  /** Reads the shards' headers: every matrix must have the same width. */
  static async open(shards: readonly EmbeddingShard[]): Promise<EmbeddingPool> {
    const shardRows: number[] = [];
    let dim = 0;
    for (const shard of shards) {
      const header = await readNpyFileHeader(shard.path).catch((error: unknown) => {
        const reason = error instanceof NpyFormatError ? error.message : "cannot be read";
        throw new InputError("CC_BAD_EMBEDDINGS", shard.describe, reason);
      });
      const [rows = 0, width = 0] = header.shape;
      if (header.shape.length !== 2) {
        throw new InputError("CC_BAD_EMBEDDINGS", shard.describe, "not a 2-D matrix of embeddings");
      }
      if (dim !== 0 && width !== dim) {
        throw new InputError(
          "CC_BAD_EMBEDDINGS",
          shard.describe,
          `embeddings of dimension ${width}, the other shards' are ${dim}`,
        );
      }
      dim = width;
      shardRows.push(shard.rows?.length ?? rows);
    }
    return new EmbeddingPool(shards, shardRows, dim);
  }

  get size(): number {
    return this.shardRows.reduce((sum, rows) => sum + rows, 0);
  }

  /** The pool rows of one shard as float32 blocks, in order. */
  async *blocks(shardIndex: number): AsyncGenerator<EmbeddingBlock> {
    const shard = this.shards[shardIndex] as EmbeddingShard;
    const header = await readNpyFileHeader(shard.path);
    const [fileRows = 0] = header.shape;
    const itemSize = npyItemSize(header.dtype);
    const rowBytes = this.dim * itemSize;
    const blockRows = Math.max(1, Math.floor(READ_BYTES / Math.max(rowBytes, 1)));
    const wanted = shard.rows;
    const handle = await open(shard.path, "r");
    try {
      const buffer = Buffer.alloc(blockRows * rowBytes);
      let poolRow = 0;
      for (let first = 0; first < fileRows; first += blockRows) {
        const count = Math.min(blockRows, fileRows - first);
        if (wanted !== undefined && !rangeHasRow(wanted, poolRow, first + count)) continue;
        const { bytesRead } = await handle.read(
          buffer,
          0,
          count * rowBytes,
          header.dataOffset + first * rowBytes,
        );
        if (bytesRead < count * rowBytes) {
          throw new InputError("CC_BAD_EMBEDDINGS", shard.describe, "the file ends early");
        }
        const all = toFloat32(buffer.subarray(0, count * rowBytes), header.dtype);
        if (wanted === undefined) {
          yield { first, rows: count, values: all };
          continue;
        }
        const start = poolRow;
        while (poolRow < wanted.length && (wanted[poolRow] as number) < first + count) poolRow++;
        const values = new Float32Array((poolRow - start) * this.dim);
        for (let position = start; position < poolRow; position++) {
          const row = (wanted[position] as number) - first;
          values.set(
            all.subarray(row * this.dim, (row + 1) * this.dim),
            (position - start) * this.dim,
          );
        }
        yield { first: start, rows: poolRow - start, values };
      }
      if (wanted !== undefined && poolRow < wanted.length) {
        throw new InputError(
          "CC_BAD_EMBEDDINGS",
          shard.describe,
          `has ${fileRows} rows, the dataset needs row ${wanted[poolRow]}`,
        );
      }
    } finally {
      await handle.close();
    }
  }
}

/** Whether `wanted` (ascending) holds a row below `end` from position `from` on. */
function rangeHasRow(wanted: Int32Array, from: number, end: number): boolean {
  return from < wanted.length && (wanted[from] as number) < end;
}

function toFloat32(bytes: Buffer, dtype: "<f2" | "<f4" | "<f8"): Float32Array {
  const copy = new Uint8Array(bytes).buffer;
  if (dtype === "<f4") return new Float32Array(copy);
  if (dtype === "<f8") return Float32Array.from(new Float64Array(copy));
  const bits = new Uint16Array(copy);
  float16Table ??= fromFloat16Bits(Uint16Array.from({ length: 65536 }, (_, index) => index));
  const table = float16Table;
  const values = new Float32Array(bits.length);
  for (let index = 0; index < bits.length; index++) {
    values[index] = table[bits[index] as number] as number;
  }
  return values;
}
