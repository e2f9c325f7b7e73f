/**
 * Image preprocessing exactly as a model's `preprocessor_config.json` (CLIPImageProcessor) says,
 * into the float32 CHW tensor its vision tower takes: decode and convert to RGB, resize (shortest
 * edge, or a fixed height × width) with the stated resampling, centre crop (zero-padding an image
 * smaller than the crop, as Hugging Face does), rescale, normalise.
 *
 * Decoding is libvips (sharp), at full size (PIL does not shrink JPEGs on load either). Resizing
 * is PIL's own algorithm (pil-resample.ts), because libvips's kernels, though nominally the same
 * (cubic is Catmull-Rom in both), give pixels several levels apart; output sizes, crop offsets and
 * arithmetic follow Hugging Face's Python code. test/models-preprocessing compares the tensors
 * with PIL + numpy. Like Hugging Face's image loader, EXIF orientation is applied and alpha is
 * dropped, not composited. Before anything is decoded, the header must pass the shared rule
 * (src/io/image-header.ts: a raster format, at most `maxImagePixels` pixels); a refused image
 * throws an ImageRefusedError saying why.
 */
import sharp from "sharp";
import * as z from "zod";
import { assertSafeToDecode, DEFAULT_MAX_IMAGE_PIXELS, decodeOptions } from "../io/image-header.js";
import { ModelError } from "./model-error.js";
import { readModelJson } from "./model-files.js";
import { isSupportedResample, type PixelRegion, pilResize, type RgbImage } from "./pil-resample.js";

export type ResizeTarget = { shortestEdge: number } | { height: number; width: number };

export interface ImagePreprocessorConfig {
  convertRgb: boolean;
  resize: ResizeTarget | undefined;
  /** PIL's resampling filter code (3: bicubic). */
  resample: number;
  crop: { height: number; width: number } | undefined;
  rescaleFactor: number | undefined;
  normalize: { mean: [number, number, number]; std: [number, number, number] } | undefined;
}

/** Preprocessed images, row-major [batchSize, 3, height, width]. */
export interface PixelBatch {
  batchSize: number;
  height: number;
  width: number;
  pixels: Float32Array;
}

const sizeSchema = z.union([
  z.number().int().positive(),
  z.object({ shortest_edge: z.number().int().positive() }),
  z.object({ height: z.number().int().positive(), width: z.number().int().positive() }),
]);
const channelTriple = z.union([
  z.number().transform((value) => [value, value, value] as [number, number, number]),
  z.tuple([z.number(), z.number(), z.number()]),
]);
const preprocessorSchema = z.object({
  do_convert_rgb: z.boolean().default(true),
  do_resize: z.boolean().default(true),
  size: sizeSchema.optional(),
  resample: z.number().int().default(3),
  do_center_crop: z.boolean().default(true),
  crop_size: sizeSchema.optional(),
  do_rescale: z.boolean().default(true),
  rescale_factor: z
    .number()
    .positive()
    .default(1 / 255),
  do_normalize: z.boolean().default(true),
  image_mean: channelTriple.optional(),
  image_std: channelTriple.optional(),
});

/** Reads preprocessor_config.json; every problem names the file and the field. */
export function parsePreprocessorConfig(
  document: Record<string, unknown>,
  source: string,
): ImagePreprocessorConfig {
  const parsed = preprocessorSchema.safeParse(document);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join(".") || "(root)";
    throw new ModelError("CC_MODEL_INVALID_FILE", `${source}: ${field}: ${issue?.message}`);
  }
  const config = parsed.data;
  const invalid = (message: string) =>
    new ModelError("CC_MODEL_INVALID_FILE", `${source}: ${message}`);
  if (!isSupportedResample(config.resample)) {
    throw new ModelError(
      "CC_MODEL_UNSUPPORTED",
      `${source}: resample ${config.resample} is not a PIL filter (0 to 5)`,
    );
  }
  if (config.do_resize && config.size === undefined) throw invalid("do_resize without size");
  if (config.do_center_crop && config.crop_size === undefined) {
    throw invalid("do_center_crop without crop_size");
  }
  if (config.do_normalize && (config.image_mean === undefined || config.image_std === undefined)) {
    throw invalid("do_normalize without image_mean and image_std");
  }
  return {
    convertRgb: config.do_convert_rgb,
    // A bare number is a shortest edge for the size and a square for the crop, as in HF.
    resize: config.do_resize && config.size !== undefined ? resizeTarget(config.size) : undefined,
    resample: config.resample,
    crop:
      config.do_center_crop && config.crop_size !== undefined
        ? squareOrBox(config.crop_size, source)
        : undefined,
    rescaleFactor: config.do_rescale ? config.rescale_factor : undefined,
    normalize:
      config.do_normalize && config.image_mean && config.image_std
        ? { mean: config.image_mean, std: config.image_std }
        : undefined,
  };
}

function resizeTarget(size: z.infer<typeof sizeSchema>): ResizeTarget {
  if (typeof size === "number") return { shortestEdge: size };
  return "shortest_edge" in size ? { shortestEdge: size.shortest_edge } : size;
}

function squareOrBox(
  size: z.infer<typeof sizeSchema>,
  source: string,
): { height: number; width: number } {
  if (typeof size === "number") return { height: size, width: size };
  if ("shortest_edge" in size) {
    throw new ModelError("CC_MODEL_INVALID_FILE", `${source}: crop_size needs height and width`);
  }
  return size;
}

export interface ImageDecodeLimits {
  /** Images with more pixels are refused from their header (default: Pillow's limit). */
  maxImagePixels?: number;
}

export class ClipImagePreprocessor {
  readonly config: ImagePreprocessorConfig;
  readonly maxImagePixels: number;
  readonly #channelTables: Float32Array[];

  constructor(config: ImagePreprocessorConfig, limits: ImageDecodeLimits = {}) {
    this.config = config;
    this.maxImagePixels = limits.maxImagePixels ?? DEFAULT_MAX_IMAGE_PIXELS;
    this.#channelTables = channelTables(config);
  }

  static async load(
    preprocessorConfigPath: string,
    limits: ImageDecodeLimits = {},
  ): Promise<ClipImagePreprocessor> {
    const document = await readModelJson(preprocessorConfigPath);
    return new ClipImagePreprocessor(
      parsePreprocessorConfig(document, preprocessorConfigPath),
      limits,
    );
  }

  /**
   * Output height and width when every image comes out the same size (a centre crop or a fixed
   * resize); undefined when it depends on the image.
   */
  get outputSize(): { height: number; width: number } | undefined {
    const { crop, resize } = this.config;
    if (crop) return crop;
    return resize && "height" in resize ? resize : undefined;
  }

  /**
   * One image's encoded bytes → float32 [3, height, width]. Throws on undecodable bytes, and an
   * ImageRefusedError on an image the header check refuses.
   */
  async preprocess(image: Uint8Array): Promise<PixelBatch> {
    await assertSafeToDecode(image, this.maxImagePixels);
    return this.preprocessRgb(await decodeRgb(image, this.config.convertRgb, this.maxImagePixels));
  }

  /**
   * Decoded pixels → float32 [3, height, width]. The resize computes only the pixels the centre
   * crop keeps, which are PIL's own (each output pixel depends on the input alone).
   */
  preprocessRgb(rgb: RgbImage): PixelBatch {
    const target = this.config.resize;
    const resized = target === undefined ? rgb : resizedSize(rgb.height, rgb.width, target);
    const cropped = pilResize(
      rgb,
      resized.width,
      resized.height,
      this.config.resample,
      centreCropRegion(resized, this.config.crop),
    );
    const pixels = this.#toTensor(cropped);
    return { batchSize: 1, height: cropped.height, width: cropped.width, pixels };
  }

  /** Rescale and normalise, through a table of the 256 values each channel can take. */
  #toTensor(image: RgbImage): Float32Array {
    const planeSize = image.height * image.width;
    const tensor = new Float32Array(3 * planeSize);
    const source = image.data;
    for (let channel = 0; channel < 3; channel++) {
      const table = this.#channelTables[channel] as Float32Array;
      const plane = channel * planeSize;
      for (let pixel = 0; pixel < planeSize; pixel++) {
        tensor[plane + pixel] = table[source[pixel * 3 + channel] as number] as number;
      }
    }
    return tensor;
  }
}

/** Per channel, the float32 of (level × rescale − mean) / std for every 8-bit level. */
function channelTables(config: ImagePreprocessorConfig): Float32Array[] {
  const { rescaleFactor, normalize } = config;
  return [0, 1, 2].map((channel) => {
    const scale = rescaleFactor ?? 1;
    const mean = normalize?.mean[channel] ?? 0;
    const std = normalize?.std[channel] ?? 1;
    return Float32Array.from({ length: 256 }, (_, level) => (level * scale - mean) / std);
  });
}

/**
 * Decodes to 8-bit sRGB with three channels. Decoding happens at full size (no JPEG
 * shrink-on-load, which PIL does not do either) before any resampling.
 */
async function decodeRgb(
  image: Uint8Array,
  convertRgb: boolean,
  maxPixels: number,
): Promise<RgbImage> {
  let pipeline = sharp(image, decodeOptions(maxPixels)).autoOrient();
  if (convertRgb) pipeline = pipeline.removeAlpha().toColourspace("srgb");
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels === 3) return { data, height: info.height, width: info.width };
  // Grey (1 or 2 bands) images when do_convert_rgb is off: repeat the grey as R, G and B.
  const rgb = new Uint8Array(info.width * info.height * 3);
  for (let pixel = 0; pixel < info.width * info.height; pixel++) {
    const grey = data[pixel * info.channels] as number;
    rgb[pixel * 3] = grey;
    rgb[pixel * 3 + 1] = grey;
    rgb[pixel * 3 + 2] = grey;
  }
  return { data: rgb, height: info.height, width: info.width };
}

/** Hugging Face's get_resize_output_image_size: the long side is truncated, not rounded. */
export function resizedSize(
  height: number,
  width: number,
  target: ResizeTarget,
): { height: number; width: number } {
  if ("height" in target) return target;
  const edge = target.shortestEdge;
  if (width <= height) return { width: edge, height: Math.trunc((edge * height) / width) };
  return { height: edge, width: Math.trunc((edge * width) / height) };
}

/**
 * Hugging Face's center_crop as a region of the resized image: offset floor((size − crop) / 2);
 * where the image is smaller than the crop, the region reaches outside it and those pixels are
 * zeros (black before normalisation).
 */
function centreCropRegion(
  image: { height: number; width: number },
  crop: { height: number; width: number } | undefined,
): PixelRegion {
  if (crop === undefined) return { top: 0, left: 0, height: image.height, width: image.width };
  return {
    top: Math.floor((image.height - crop.height) / 2),
    left: Math.floor((image.width - crop.width) / 2),
    height: crop.height,
    width: crop.width,
  };
}
