/**
 * IEEE 754 half-precision conversion, for `_fp16` model variants whose inputs and outputs are
 * float16 (onnxruntime-node takes and returns them as raw 16-bit patterns; Node 20 has no
 * Float16Array).
 */

const scratch = new DataView(new ArrayBuffer(4));

/** Round-to-nearest-even conversion of each value to its float16 bit pattern. */
export function toFloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint16Array(values.length);
  for (let index = 0; index < values.length; index++) {
    bits[index] = float16Bits(values[index] as number);
  }
  return bits;
}

export function fromFloat16Bits(bits: Uint16Array): Float32Array {
  const values = new Float32Array(bits.length);
  for (let index = 0; index < bits.length; index++) {
    values[index] = float16Value(bits[index] as number);
  }
  return values;
}

function float16Bits(value: number): number {
  scratch.setFloat32(0, value);
  const single = scratch.getUint32(0);
  const sign = (single >>> 16) & 0x8000;
  const exponent = (single >>> 23) & 0xff;
  const mantissa = single & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    const full = mantissa | 0x800000;
    const shift = 14 - halfExponent;
    return sign | roundShift(full, shift);
  }
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

/** `value >> shift`, rounded to nearest, ties to even; may carry into the exponent, as it should. */
function roundShift(value: number, shift: number): number {
  const kept = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return remainder > half || (remainder === half && (kept & 1) === 1) ? kept + 1 : kept;
}

function float16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}
