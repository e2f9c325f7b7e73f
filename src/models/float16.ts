/**
 * IEEE 754 half-precision conversion, for `_fp16` model variants whose inputs and outputs are
 * float16 (onnxruntime-node takes and returns them as raw 16-bit patterns; Node 20 has no
 * Float16Array).
 */

/** Round-to-nearest-even conversion of each value to its float16 bit pattern. */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  // The float32 bit patterns, read in place (a Float32Array is always 4-byte aligned).
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const bits = new Uint16Array(values.length);
  for (let index = 0; index < words.length; index++) {
    bits[index] = float16Bits(words[index] as number);
  }
  return bits;
}

let halfToFloat: Float32Array | undefined;

/** Every float16 bit pattern's value: one lookup a value, no branches. */
export function float16Table(): Float32Array {
  if (halfToFloat === undefined) {
    halfToFloat = new Float32Array(65_536);
    for (let bits = 0; bits < 65_536; bits++) halfToFloat[bits] = float16Value(bits);
  }
  return halfToFloat;
}

export function fromFloat16Bits(bits: Uint16Array): Float32Array {
  const table = float16Table();
  const values = new Float32Array(bits.length);
  for (let index = 0; index < bits.length; index++) {
    values[index] = table[bits[index] as number] as number;
  }
  return values;
}

const denormal = new Float32Array(1);
const denormalWord = new Uint32Array(denormal.buffer);
/** 0.5 × 2^-13 as a float32: adding it puts a tiny value's float16 subnormal bits at the bottom. */
const DENORMAL_MAGIC = (127 - 15 + 23 - 10 + 1) << 23;
const DENORMAL_MAGIC_VALUE = 2 ** (DENORMAL_MAGIC / 2 ** 23 - 127);

/**
 * The float16 bit pattern nearest the float32 whose bit pattern is `single`, ties to even
 * (integer steps on the bit pattern; the subnormal range through one float addition).
 */
function float16Bits(single: number): number {
  const sign = (single >>> 16) & 0x8000;
  const magnitude = single & 0x7fffffff;
  if (magnitude >= (127 + 16) << 23) {
    // At least 65,536 (past every half) or not finite: infinity, or a quiet NaN.
    return sign | (magnitude > 0x7f800000 ? 0x7e00 : 0x7c00);
  }
  if (magnitude < 113 << 23) {
    // Below the smallest normal half: the addition rounds to nearest even in float32 itself.
    denormalWord[0] = magnitude;
    denormal[0] = (denormal[0] as number) + DENORMAL_MAGIC_VALUE;
    return sign | ((denormalWord[0] as number) - DENORMAL_MAGIC);
  }
  const odd = (magnitude >>> 13) & 1;
  return sign | ((magnitude + ((15 - 127) << 23) + 0xfff + odd) >>> 13);
}

function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
