import assert from "node:assert/strict";
import { test } from "node:test";
import { float16Table, fromFloat16Bits, toFloat16Bits } from "../src/models/float16.js";

const allBits = Uint16Array.from({ length: 65_536 }, (_, bits) => bits);
const isNaNBits = (bits: number) => (bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0;

test("every float16 bit pattern converts to its value and back to itself (NaNs stay NaN)", () => {
  const values = fromFloat16Bits(allBits);
  assert.deepEqual(values, float16Table());
  const back = toFloat16Bits(values);
  for (let bits = 0; bits < 65_536; bits++) {
    if (isNaNBits(bits)) {
      assert.ok(Number.isNaN(values[bits]), `bits ${bits}`);
      assert.ok(isNaNBits(back[bits] as number), `bits ${bits} back ${back[bits]}`);
    } else {
      assert.equal(back[bits], bits, `bits ${bits.toString(16)} value ${values[bits]}`);
    }
  }
  assert.equal(values[0x3c00], 1);
  assert.equal(values[0xc000], -2);
  assert.equal(values[0x7bff], 65_504);
  assert.equal(values[0x0001], 2 ** -24);
  assert.equal(values[0x7c00], Number.POSITIVE_INFINITY);
});

test("float32 values round to the nearest float16, ties to even, out of range to infinity or zero", () => {
  const one = 1;
  const step = 2 ** -10;
  const cases: [number, number][] = [
    [one + step / 2, 0x3c00], // tie: stays on the even 1.0
    [one + (3 * step) / 2, 0x3c02], // tie: up to the even 1 + 2 steps
    [one + step / 2 + 2 ** -20, 0x3c01], // past the tie: up
    [-(one + step * 0.49), 0xbc00],
    [65_520, 0x7c00], // past the largest half's rounding range: infinity
    [65_519, 0x7bff],
    [2 ** -26, 0x0000], // below half the smallest subnormal: zero
    [-(2 ** -25) * 1.5, 0x8001], // subnormal, rounded up
    [3 * 2 ** -25, 0x0002], // a tie between subnormals: to even
    [Number.NEGATIVE_INFINITY, 0xfc00],
  ];
  const values = Float32Array.from(cases.map(([value]) => value));
  assert.deepEqual(
    [...toFloat16Bits(values)].map((bits) => bits.toString(16)),
    cases.map(([, bits]) => bits.toString(16)),
  );
  assert.ok(isNaNBits(toFloat16Bits(Float32Array.of(Number.NaN))[0] as number));
});

test("a view into a larger buffer converts only its own values", () => {
  const whole = Float32Array.from({ length: 64 }, (_, index) => index / 8);
  const view = whole.subarray(17, 40);
  const bits = toFloat16Bits(view);
  assert.equal(bits.length, 23);
  assert.deepEqual(fromFloat16Bits(bits), view);
});

/** The plain conversion, step by step: round the mantissa to 10 bits, nearest, ties to even. */
function referenceBits(value: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setFloat32(0, value);
  const single = view.getUint32(0);
  const sign = (single >>> 16) & 0x8000;
  const exponent = (single >>> 23) & 0xff;
  const mantissa = single & 0x7fffff;
  const roundShift = (bits: number, shift: number) => {
    const kept = bits >>> shift;
    const remainder = bits & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return remainder > half || (remainder === half && (kept & 1) === 1) ? kept + 1 : kept;
  };
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    if (halfExponent < -10) return sign;
    return sign | roundShift(mantissa | 0x800000, 14 - halfExponent);
  }
  return sign | ((halfExponent << 10) + roundShift(mantissa, 13));
}

test("random float32 bit patterns of every exponent convert as the step-by-step rounding does", () => {
  let state = 12_345;
  const words = Uint32Array.from({ length: 400_000 }, () => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state;
  });
  const values = new Float32Array(words.buffer);
  const bits = toFloat16Bits(values);
  for (let index = 0; index < values.length; index++) {
    const value = values[index] as number;
    const expected = referenceBits(value);
    if (Number.isNaN(value)) assert.ok(isNaNBits(bits[index] as number));
    else assert.equal(bits[index], expected, `${value} (0x${words[index]?.toString(16)})`);
  }
});
