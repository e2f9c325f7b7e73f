/**
 * PIL's resampling (Pillow's `Image.resize` on 8-bit RGB, libImaging/Resample.c), reimplemented so
 * that clipcrawl's pixel tensors are the ones a Hugging Face CLIPImageProcessor computes.
 *
 * libvips (sharp) resamples differently enough to matter: it box-shrinks before its kernel when
 * reducing by more than 2×, and it aligns pixel centres differently when enlarging (measured on
 * the test fixtures: up to 9 levels apart when shrinking, over 100 when enlarging). This is the
 * same algorithm as PIL: a separable convolution, horizontal pass then vertical, each output pixel
 * a normalised window of the filter widened by the scale when shrinking, coefficients in 22-bit
 * fixed point, each pass rounded and clipped to 8 bits. No `reducing_gap`, as Hugging Face calls it.
 */

/** PIL's resampling filter codes, as preprocessor_config.json's `resample` gives them. */
export const PIL_RESAMPLE = {
  nearest: 0,
  lanczos: 1,
  bilinear: 2,
  bicubic: 3,
  box: 4,
  hamming: 5,
} as const;

export interface RgbImage {
  /** Interleaved RGB, 8 bits a channel. */
  data: Uint8Array;
  height: number;
  width: number;
}

interface Filter {
  support: number;
  weight(x: number): number;
}

const PRECISION_BITS = 32 - 8 - 2;
const FIXED_ONE = 2 ** PRECISION_BITS;
const HALF = 2 ** (PRECISION_BITS - 1);

const FILTERS: Readonly<Record<number, Filter>> = {
  [PIL_RESAMPLE.box]: { support: 0.5, weight: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  [PIL_RESAMPLE.bilinear]: {
    support: 1,
    weight: (x) => {
      const distance = Math.abs(x);
      return distance < 1 ? 1 - distance : 0;
    },
  },
  [PIL_RESAMPLE.hamming]: {
    support: 1,
    weight: (x) => {
      const distance = Math.abs(x);
      if (distance === 0) return 1;
      if (distance >= 1) return 0;
      const angle = distance * Math.PI;
      return (Math.sin(angle) / angle) * (0.54 + 0.46 * Math.cos(angle));
    },
  },
  [PIL_RESAMPLE.bicubic]: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      const distance = Math.abs(x);
      if (distance < 1) return ((a + 2) * distance - (a + 3)) * distance * distance + 1;
      if (distance < 2) return (((distance - 5) * distance + 8) * distance - 4) * a;
      return 0;
    },
  },
  [PIL_RESAMPLE.lanczos]: {
    support: 3,
    weight: (x) => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0),
  },
};

export function isSupportedResample(code: number): boolean {
  return code === PIL_RESAMPLE.nearest || FILTERS[code] !== undefined;
}

/** Resizes like PIL's `Image.resize((width, height), resample=code)`. */
export function pilResize(image: RgbImage, width: number, height: number, code: number): RgbImage {
  if (width === image.width && height === image.height) return image;
  if (code === PIL_RESAMPLE.nearest) return nearestResize(image, width, height);
  const filter = FILTERS[code];
  if (filter === undefined) throw new RangeError(`unknown PIL resample filter ${code}`);
  const horizontal = coefficients(image.width, width, filter);
  const vertical = coefficients(image.height, height, filter);
  let current = image;
  if (width !== image.width) {
    // Only the rows the vertical pass reads are resampled horizontally, as PIL does.
    const firstRow = vertical.bounds[0] as number;
    const lastRow =
      (vertical.bounds[(height - 1) * 2] as number) +
      (vertical.bounds[(height - 1) * 2 + 1] as number);
    current = horizontalPass(image, firstRow, lastRow, horizontal);
    for (let row = 0; row < height; row++) {
      vertical.bounds[row * 2] = (vertical.bounds[row * 2] as number) - firstRow;
    }
  }
  if (height !== image.height) current = verticalPass(current, height, vertical);
  return current;
}

interface Coefficients {
  /** Per output pixel: first input index, number of taps. */
  bounds: Int32Array;
  /** Per output pixel, `size` fixed-point weights. */
  weights: Int32Array;
  size: number;
}

/** precompute_coeffs + normalize_coeffs_8bpc. */
function coefficients(inputSize: number, outputSize: number, filter: Filter): Coefficients {
  const scale = inputSize / outputSize;
  const filterScale = Math.max(scale, 1);
  const inverseFilterScale = 1 / filterScale;
  const support = filter.support * filterScale;
  const size = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outputSize * 2);
  const weights = new Int32Array(outputSize * size);
  const window = new Float64Array(size);
  for (let output = 0; output < outputSize; output++) {
    const centre = (output + 0.5) * scale;
    // C's (int) cast truncates towards zero.
    const first = Math.max(0, Math.trunc(centre - support + 0.5));
    const taps = Math.min(inputSize, Math.trunc(centre + support + 0.5)) - first;
    let total = 0;
    for (let tap = 0; tap < taps; tap++) {
      const weight = filter.weight((tap + first - centre + 0.5) * inverseFilterScale);
      window[tap] = weight;
      total += weight;
    }
    for (let tap = 0; tap < taps; tap++) {
      const weight = total === 0 ? (window[tap] as number) : (window[tap] as number) / total;
      weights[output * size + tap] =
        weight < 0 ? Math.trunc(-0.5 + weight * FIXED_ONE) : Math.trunc(0.5 + weight * FIXED_ONE);
    }
    bounds[output * 2] = first;
    bounds[output * 2 + 1] = taps;
  }
  return { bounds, weights, size };
}

function horizontalPass(
  image: RgbImage,
  firstRow: number,
  lastRow: number,
  { bounds, weights, size }: Coefficients,
): RgbImage {
  const width = bounds.length / 2;
  const height = lastRow - firstRow;
  const data = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    const sourceRow = (row + firstRow) * image.width * 3;
    for (let column = 0; column < width; column++) {
      const first = bounds[column * 2] as number;
      const taps = bounds[column * 2 + 1] as number;
      let red = HALF;
      let green = HALF;
      let blue = HALF;
      for (let tap = 0; tap < taps; tap++) {
        const weight = weights[column * size + tap] as number;
        const source = sourceRow + (first + tap) * 3;
        red += (image.data[source] as number) * weight;
        green += (image.data[source + 1] as number) * weight;
        blue += (image.data[source + 2] as number) * weight;
      }
      const target = (row * width + column) * 3;
      data[target] = clip8(red);
      data[target + 1] = clip8(green);
      data[target + 2] = clip8(blue);
    }
  }
  return { data, height, width };
}

function verticalPass(
  image: RgbImage,
  height: number,
  { bounds, weights, size }: Coefficients,
): RgbImage {
  const { width } = image;
  const data = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    const first = bounds[row * 2] as number;
    const taps = bounds[row * 2 + 1] as number;
    for (let column = 0; column < width; column++) {
      let red = HALF;
      let green = HALF;
      let blue = HALF;
      for (let tap = 0; tap < taps; tap++) {
        const weight = weights[row * size + tap] as number;
        const source = ((first + tap) * width + column) * 3;
        red += (image.data[source] as number) * weight;
        green += (image.data[source + 1] as number) * weight;
        blue += (image.data[source + 2] as number) * weight;
      }
      const target = (row * width + column) * 3;
      data[target] = clip8(red);
      data[target + 1] = clip8(green);
      data[target + 2] = clip8(blue);
    }
  }
  return { data, height, width };
}

/**
 * PIL's nearest resize (ImagingScaleAffine): the source pixel under each output pixel's centre,
 * positions accumulated by repeated addition in double precision, as PIL does.
 */
function nearestResize(image: RgbImage, width: number, height: number): RgbImage {
  const columns = sourcePositions(image.width, width);
  const rows = sourcePositions(image.height, height);
  const data = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    for (let column = 0; column < width; column++) {
      const source = ((rows[row] as number) * image.width + (columns[column] as number)) * 3;
      data.set(image.data.subarray(source, source + 3), (row * width + column) * 3);
    }
  }
  return { data, height, width };
}

function sourcePositions(inputSize: number, outputSize: number): Int32Array {
  const scale = inputSize / outputSize;
  const positions = new Int32Array(outputSize);
  let position = scale * 0.5;
  for (let output = 0; output < outputSize; output++) {
    positions[output] = Math.min(inputSize - 1, Math.trunc(position));
    position += scale;
  }
  return positions;
}

function clip8(accumulator: number): number {
  if (accumulator <= 0) return 0;
  if (accumulator >= 256 * FIXED_ONE) return 255;
  return Math.floor(accumulator / FIXED_ONE);
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const angle = x * Math.PI;
  return Math.sin(angle) / angle;
}
