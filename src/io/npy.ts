/**
 * NumPy's `.npy` format, version 1.0: the magic string, a Python-dict header padded with spaces
 * to a multiple of 64 bytes and ended by a newline, then the array's bytes in C order. That is
 * what `numpy.save` writes and what clip-retrieval and autofaiss read for embeddings.
 *
 * Only little-endian float arrays (`<f2`, `<f4`, `<f8`), the dtypes embeddings come in. Float16
 * values travel as their raw 16-bit patterns (Node 20 has no Float16Array).
 */

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
const HEADER_ALIGNMENT = 64;

export type NpyDtype = "<f2" | "<f4" | "<f8";

export type NpyArray =
  | { dtype: "<f2"; shape: number[]; data: Uint16Array }
  | { dtype: "<f4"; shape: number[]; data: Float32Array }
  | { dtype: "<f8"; shape: number[]; data: Float64Array };

/** A malformed or unsupported `.npy` file. */
export class NpyFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NpyFormatError";
  }
}

/** What an `.npy` header says: the array's dtype and shape, and where its data starts. */
export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  /** Bytes before the data: magic, version, header length and the header itself. */
  dataOffset: number;
}

/** The magic string, version and header of a C-order array, as `numpy.save` writes them. */
export function encodeNpyHeader(dtype: NpyDtype, shape: readonly number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${dtype}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // magic (6) + version (2) + header length (2) + dict + padding + newline
  const unpadded = MAGIC.length + 4 + dict.length + 1;
  const padding = (HEADER_ALIGNMENT - (unpadded % HEADER_ALIGNMENT)) % HEADER_ALIGNMENT;
  const header = `${dict}${" ".repeat(padding)}\n`;
  if (header.length > 0xffff) throw new RangeError("npy header too long for format 1.0");
  const prefix = Buffer.alloc(MAGIC.length + 4);
  MAGIC.copy(prefix, 0);
  prefix[6] = 1;
  prefix[7] = 0;
  prefix.writeUInt16LE(header.length, 8);
  return Buffer.concat([prefix, Buffer.from(header, "latin1")]);
}

export function encodeNpy(array: NpyArray): Buffer {
  const elements = array.shape.reduce((product, size) => product * size, 1);
  if (elements !== array.data.length) {
    throw new RangeError(
      `npy shape [${array.shape.join(", ")}] needs ${elements} values, got ${array.data.length}`,
    );
  }
  return Buffer.concat([encodeNpyHeader(array.dtype, array.shape), littleEndianBytes(array.data)]);
}

/**
 * The header of an `.npy` file from its first bytes (the whole file, or a prefix at least as long
 * as the header: 65,546 bytes always are for version 1.0).
 */
export function decodeNpyHeader(bytes: Uint8Array): NpyHeader {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 10 || !buffer.subarray(0, 6).equals(MAGIC)) {
    throw new NpyFormatError("not a .npy file (bad magic string)");
  }
  const major = buffer[6] as number;
  let headerLength: number;
  let headerStart: number;
  if (major === 1) {
    headerLength = buffer.readUInt16LE(8);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (buffer.length < 12) throw new NpyFormatError("truncated .npy header");
    headerLength = buffer.readUInt32LE(8);
    headerStart = 12;
  } else {
    throw new NpyFormatError(`unsupported .npy version ${major}.${buffer[7]}`);
  }
  const dataOffset = headerStart + headerLength;
  if (buffer.length < dataOffset) throw new NpyFormatError("truncated .npy header");
  const header = buffer.toString(major === 3 ? "utf8" : "latin1", headerStart, dataOffset);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    // Damaged bytes are shown escaped, so the message stays one readable line.
    const shown = JSON.stringify(header.trim()).replace(
      /[^\x20-\x7e]/g,
      (character) => `\\x${character.charCodeAt(0).toString(16).padStart(2, "0")}`,
    );
    throw new NpyFormatError(`unreadable .npy header ${shown}`);
  }
  if (fortran === "True") throw new NpyFormatError("Fortran-ordered .npy arrays are not supported");
  const shape = shapeText
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "")
    .map(Number);
  if (shape.some((size) => !Number.isInteger(size) || size < 0)) {
    throw new NpyFormatError(`bad .npy shape (${shapeText})`);
  }
  if (!Object.hasOwn(ITEM_SIZES, descr))
    throw new NpyFormatError(`unsupported .npy dtype ${descr}`);
  return { dtype: descr as NpyDtype, shape, dataOffset };
}

/** Bytes of one value of the dtype. */
export function npyItemSize(dtype: NpyDtype): number {
  return ITEM_SIZES[dtype];
}

export function decodeNpy(bytes: Uint8Array): NpyArray {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const { dtype, shape, dataOffset } = decodeNpyHeader(buffer);
  const elements = shape.reduce((product, size) => product * size, 1);
  const itemSize = ITEM_SIZES[dtype];
  const body = buffer.subarray(dataOffset);
  if (body.length !== elements * itemSize) {
    throw new NpyFormatError(
      `.npy data is ${body.length} bytes, shape [${shape.join(", ")}] of ${dtype} needs ${elements * itemSize}`,
    );
  }
  // Copy into an aligned buffer: the data may start at any offset of the file's buffer.
  const aligned = new Uint8Array(body).buffer;
  const view = new DataView(aligned);
  switch (dtype) {
    case "<f2": {
      const data = new Uint16Array(elements);
      for (let index = 0; index < elements; index++) data[index] = view.getUint16(index * 2, true);
      return { dtype: "<f2", shape, data };
    }
    case "<f4": {
      const data = new Float32Array(elements);
      for (let index = 0; index < elements; index++) data[index] = view.getFloat32(index * 4, true);
      return { dtype: "<f4", shape, data };
    }
    case "<f8": {
      const data = new Float64Array(elements);
      for (let index = 0; index < elements; index++) data[index] = view.getFloat64(index * 8, true);
      return { dtype: "<f8", shape, data };
    }
  }
}

const ITEM_SIZES: Record<NpyDtype, number> = { "<f2": 2, "<f4": 4, "<f8": 8 };

function littleEndianBytes(data: Uint16Array | Float32Array | Float64Array): Buffer {
  const out = Buffer.alloc(data.byteLength);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  for (let index = 0; index < data.length; index++) {
    const value = data[index] as number;
    if (data instanceof Uint16Array) view.setUint16(index * 2, value, true);
    else if (data instanceof Float32Array) view.setFloat32(index * 4, value, true);
    else view.setFloat64(index * 8, value, true);
  }
  return out;
}
