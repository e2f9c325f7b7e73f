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

/**
 * Part of a resized image, in its coordinates: what a centre crop keeps. Rows and columns outside
 * the resized image come out as zeros (Hugging Face pads a crop larger than the image so).
 */
export interface PixelRegion {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * Resizes like PIL's `Image.resize((width, height), resample=code)`. With a region, only the
 * pixels of that region are computed (each output pixel depends on the input alone, so they are
 * the same as PIL's) and the result is the region's size.
 */
export function pilResize(
  image: RgbImage,
  width: number,
  height: number,
  code: number,
  region?: PixelRegion,
): RgbImage {
  const area = region ?? { top: 0, left: 0, height, width };
  const rowStart = clamp(area.top, 0, height);
  const rowEnd = clamp(area.top + area.height, 0, height);
  const columnStart = clamp(area.left, 0, width);
  const columnEnd = clamp(area.left + area.width, 0, width);
  if (rowStart >= rowEnd || columnStart >= columnEnd) {
    return { data: new Uint8Array(area.height * area.width * 3), ...size(area) };
  }
  const window = { rowStart, rowEnd, columnStart, columnEnd };
  let resized: RgbImage;
  if (width === image.width && height === image.height) {
    resized = copyWindow(image, window);
  } else if (code === PIL_RESAMPLE.nearest) {
    resized = nearestResize(image, width, height, window);
  } else {
    const filter = FILTERS[code];
    if (filter === undefined) throw new RangeError(`unknown PIL resample filter ${code}`);
    resized = convolutionResize(image, width, height, code, window);
  }
  return placeInArea(resized, window, area);
}

/** The output rows and columns [start, end) that lie inside the resized image. */
interface OutputWindow {
  rowStart: number;
  rowEnd: number;
  columnStart: number;
  columnEnd: number;
}

function convolutionResize(
  image: RgbImage,
  width: number,
  height: number,
  code: number,
  window: OutputWindow,
): RgbImage {
  const resizesRows = height !== image.height;
  const vertical = resizesRows ? cachedCoefficients(image.height, height, code) : undefined;
  // Only the input rows the vertical pass reads are resampled horizontally, as PIL does.
  let firstRow = window.rowStart;
  let lastRow = window.rowEnd;
  if (vertical !== undefined) {
    firstRow = vertical.bounds[window.rowStart * 2] as number;
    const last = (window.rowEnd - 1) * 2;
    lastRow = (vertical.bounds[last] as number) + (vertical.bounds[last + 1] as number);
  }
  const rows =
    width !== image.width
      ? horizontalPass(
          image,
          firstRow,
          lastRow,
          window,
          cachedCoefficients(image.width, width, code),
        )
      : copyWindow(image, { ...window, rowStart: firstRow, rowEnd: lastRow });
  return vertical === undefined ? rows : verticalPass(rows, firstRow, window, vertical);
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

/**
 * Coefficients depend only on the sizes and the filter, and a dataset's images come in few
 * sizes: computing them costs as much as a pass, so they are kept.
 */
const coefficientCache = new Map<string, Coefficients>();
const COEFFICIENT_CACHE_SIZE = 256;

function cachedCoefficients(inputSize: number, outputSize: number, code: number): Coefficients {
  const key = `${inputSize}:${outputSize}:${code}`;
  let cached = coefficientCache.get(key);
  if (cached === undefined) {
    if (coefficientCache.size >= COEFFICIENT_CACHE_SIZE) coefficientCache.clear();
    cached = coefficients(inputSize, outputSize, FILTERS[code] as Filter);
    coefficientCache.set(key, cached);
  }
  return cached;
}

/** Input rows [firstRow, lastRow) → those rows resampled to the window's columns. */
function horizontalPass(
  image: RgbImage,
  firstRow: number,
  lastRow: number,
  window: OutputWindow,
  { bounds, weights, size }: Coefficients,
): RgbImage {
  const source = image.data;
  const sourceStride = image.width * 3;
  const width = window.columnEnd - window.columnStart;
  const height = lastRow - firstRow;
  const data = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    const rowOffset = (row + firstRow) * sourceStride;
    let target = row * width * 3;
    for (let column = window.columnStart; column < window.columnEnd; column++) {
      const first = rowOffset + (bounds[column * 2] as number) * 3;
      const taps = bounds[column * 2 + 1] as number;
      const weightOffset = column * size;
      let red = HALF;
      let green = HALF;
      let blue = HALF;
      for (let tap = 0; tap < taps; tap++) {
        const weight = weights[weightOffset + tap] as number;
        const at = first + tap * 3;
        red = (red + Math.imul(source[at] as number, weight)) | 0;
        green = (green + Math.imul(source[at + 1] as number, weight)) | 0;
        blue = (blue + Math.imul(source[at + 2] as number, weight)) | 0;
      }
      data[target] = clip8(red);
      data[target + 1] = clip8(green);
      data[target + 2] = clip8(blue);
      target += 3;
    }
  }
  return { data, height, width };
}

/** Rows resampled horizontally (starting at input row `firstRow`) → the window's rows. */
function verticalPass(
  image: RgbImage,
  firstRow: number,
  window: OutputWindow,
  { bounds, weights, size }: Coefficients,
): RgbImage {
  const source = image.data;
  const { width } = image;
  const stride = width * 3;
  const height = window.rowEnd - window.rowStart;
  const data = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    const output = row + window.rowStart;
    const first = ((bounds[output * 2] as number) - firstRow) * stride;
    const taps = bounds[output * 2 + 1] as number;
    const weightOffset = output * size;
    let target = row * stride;
    for (let offset = 0; offset < stride; offset += 3) {
      let red = HALF;
      let green = HALF;
      let blue = HALF;
      for (let tap = 0; tap < taps; tap++) {
        const weight = weights[weightOffset + tap] as number;
        const at = first + tap * stride + offset;
        red = (red + Math.imul(source[at] as number, weight)) | 0;
        green = (green + Math.imul(source[at + 1] as number, weight)) | 0;
        blue = (blue + Math.imul(source[at + 2] as number, weight)) | 0;
      }
      data[target] = clip8(red);
      data[target + 1] = clip8(green);
      data[target + 2] = clip8(blue);
      target += 3;
    }
  }
  return { data, height, width };
}

/** The window's pixels of an image that needs no resampling. */
function copyWindow(image: RgbImage, window: OutputWindow): RgbImage {
  const width = window.columnEnd - window.columnStart;
  const height = window.rowEnd - window.rowStart;
  if (width === image.width && height === image.height) return image;
  const data = new Uint8Array(width * height * 3);
  for (let row = 0; row < height; row++) {
    const from = ((row + window.rowStart) * image.width + window.columnStart) * 3;
    data.set(image.data.subarray(from, from + width * 3), row * width * 3);
  }
  return { data, height, width };
}

/** The window's pixels at their place in the region, zeros around them. */
function placeInArea(image: RgbImage, window: OutputWindow, area: PixelRegion): RgbImage {
  if (image.width === area.width && image.height === area.height) return image;
  const data = new Uint8Array(area.height * area.width * 3);
  const top = window.rowStart - area.top;
  const left = window.columnStart - area.left;
  for (let row = 0; row < image.height; row++) {
    const from = row * image.width * 3;
    data.set(
      image.data.subarray(from, from + image.width * 3),
      ((row + top) * area.width + left) * 3,
    );
  }
  return { data, ...size(area) };
}

function size(area: PixelRegion): { height: number; width: number } {
  return { height: area.height, width: area.width };
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

/**
 * PIL's nearest resize (ImagingScaleAffine): the source pixel under each output pixel's centre,
 * positions accumulated by repeated addition in double precision, as PIL does.
 */
function nearestResize(
  image: RgbImage,
  width: number,
  height: number,
  window: OutputWindow,
): RgbImage {
  const columns = sourcePositions(image.width, width);
  const rows = sourcePositions(image.height, height);
  const outputWidth = window.columnEnd - window.columnStart;
  const outputHeight = window.rowEnd - window.rowStart;
  const data = new Uint8Array(outputWidth * outputHeight * 3);
  let target = 0;
  for (let row = window.rowStart; row < window.rowEnd; row++) {
    const rowOffset = (rows[row] as number) * image.width;
    for (let column = window.columnStart; column < window.columnEnd; column++) {
      const source = (rowOffset + (columns[column] as number)) * 3;
      data[target] = image.data[source] as number;
      data[target + 1] = image.data[source + 1] as number;
      data[target + 2] = image.data[source + 2] as number;
      target += 3;
    }
  }
  return { data, height: outputHeight, width: outputWidth };
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

/** PIL's clip8 on its int32 accumulator. */
function clip8(accumulator: number): number {
  if (accumulator <= 0) return 0;
  if (accumulator >= 256 * FIXED_ONE) return 255;
  return accumulator >> PRECISION_BITS;
}

function sinc(x: number): number {
  if (x === 0) return 1;
  const angle = x * Math.PI;
  return Math.sin(angle) / angle;
}
