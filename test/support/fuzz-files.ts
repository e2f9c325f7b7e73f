/**
 * Damage for the files stages hand each other, for the fuzz sweep: a Parquet file (its footer
 * length, its magic, random bytes of its size, nothing at all) and an `.npy` file (a header that
 * lies about shape, dtype or order, its length field, its version), or a byte-level mutation.
 */
import { encodeNpyHeader } from "../../src/io/npy.js";
import { type FuzzRandom, mutateBytes } from "./fuzz-mutations.js";

export function damagedParquet(
  original: Buffer,
  random: FuzzRandom,
): { name: string; bytes: Buffer } {
  const bytes = Buffer.from(original);
  switch (random.int(8)) {
    case 0:
      bytes.writeUInt32LE(random.pick([0, 1, bytes.length, 0xffffffff]), bytes.length - 8);
      return { name: `footer length ${bytes.readUInt32LE(bytes.length - 8)}`, bytes };
    case 1:
      bytes.write("PAR0", bytes.length - 4, "latin1");
      return { name: "no PAR1 at its end", bytes };
    case 2:
      return { name: "random bytes of its size", bytes: random.bytes(bytes.length) };
    case 3:
      return { name: "empty", bytes: Buffer.alloc(0) };
    default: {
      const mutation = mutateBytes(original, random);
      return { name: mutation.name, bytes: mutation.bytes };
    }
  }
}

export function damagedNpy(original: Buffer, random: FuzzRandom): { name: string; bytes: Buffer } {
  const headerLength = original.readUInt16LE(8);
  const header = original.toString("latin1", 10, 10 + headerLength);
  const rows = Number(/'shape': \((\d+),/.exec(header)?.[1]);
  const columns = Number(/'shape': \(\d+, (\d+)\)/.exec(header)?.[1]);
  const data = original.subarray(10 + headerLength);
  const withHeader = (dtype: string, shape: number[]) =>
    Buffer.concat([encodeNpyHeader(dtype as "<f2", shape), data]);
  switch (random.int(9)) {
    case 0: {
      const shape = random.pick([
        [rows + 1, columns],
        [Math.max(0, rows - 1), columns],
        [0, columns],
        [rows, columns + 1],
        [2 ** 40, columns],
        [rows * columns],
        [rows, columns, 1],
      ]);
      return {
        name: `header claiming shape (${shape.join(", ")})`,
        bytes: withHeader("<f2", shape),
      };
    }
    case 1: {
      const dtype = random.pick(["<f4", "<f8", ">f2", "|O", "<i8", "<U5"]);
      return { name: `header claiming dtype ${dtype}`, bytes: withHeader(dtype, [rows, columns]) };
    }
    case 2: {
      const bytes = Buffer.from(original);
      bytes.write(header.replace("False", "True "), 10, "latin1");
      return { name: "header claiming Fortran order", bytes };
    }
    case 3: {
      const bytes = Buffer.from(original);
      bytes.writeUInt16LE(random.pick([0, 1, 0xffff]), 8);
      return { name: `header length ${bytes.readUInt16LE(8)}`, bytes };
    }
    case 4: {
      const bytes = Buffer.from(original);
      bytes[6] = random.pick([2, 3, 9]);
      return { name: `version ${bytes[6]}.0`, bytes };
    }
    default: {
      const mutation = mutateBytes(original, random);
      return { name: mutation.name, bytes: mutation.bytes };
    }
  }
}
