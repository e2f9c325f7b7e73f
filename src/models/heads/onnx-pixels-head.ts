/**
 * kind "onnx-pixels": an ONNX image classifier over pixels, [batch, 3, size, size] float → [batch]
 * or [batch, k], as LAION's watermark detector (a timm EfficientNet-B3 at 256 px, ImageNet
 * normalisation, two logits) is once exported. It decodes the image bytes itself, because its
 * preprocessing is the classifier's, not CLIP's: resize as torchvision's Resize does on a PIL image
 * (PIL's own resampling, pil-resample.ts), to [0, 1], minus mean, over std.
 *
 * An image that does not decode, or that the shared header check refuses (not a raster format,
 * over the pixel limit), is a row error with download's stable wording; the rest of the batch is
 * scored.
 */
import sharp from "sharp";
import { asBuffer, decodeError } from "../../io/image-format.js";
import { assertSafeToDecode, decodeOptions, isRefusal } from "../../io/image-header.js";
import { resizedSize } from "../image-preprocessing.js";
import { ModelError } from "../model-error.js";
import { PIL_RESAMPLE, pilResize, type RgbImage } from "../pil-resample.js";
import { readScores } from "./head-readout.js";
import {
  declaredSize,
  type OnnxHeadModel,
  openOnnxHead,
  probeOnnxHead,
  runOnnxHead,
} from "./onnx-head-model.js";
import type { OnnxPixelsHeadConfig } from "./score-config.js";
import type { HeadInputs, HeadScores, ScoreHead } from "./score-head.js";

/** Images decoded at once; sharp decodes on its own threads. */
const DECODE_CONCURRENCY = 8;
const PROBE_ROWS = 2;

export class OnnxPixelsHead implements ScoreHead {
  readonly needsImageBytes = true;
  readonly files: readonly string[];

  private constructor(
    readonly name: string,
    readonly config: OnnxPixelsHeadConfig,
    readonly model: OnnxHeadModel,
    readonly maxImagePixels: number,
  ) {
    this.files = [model.path];
  }

  static async load(
    name: string,
    config: OnnxPixelsHeadConfig,
    path: string,
    context: { threads: number; maxImagePixels: number },
  ): Promise<OnnxPixelsHead> {
    const model = await openOnnxHead(name, path, {
      inputName: config.inputName,
      output: config.output,
      threads: context.threads,
    });
    try {
      const size = config.imageSize;
      const expected = `[batch, 3, ${size}, ${size}]`;
      if (model.inputShape.length > 0 && model.inputShape.length !== 4) {
        throw new ModelError(
          "CC_MODEL_INPUT",
          `${model.label}: input ${model.input} has shape [${model.inputShape.join(", ")}], expected ${expected}`,
        );
      }
      const channels = declaredSize(model, 1);
      const height = declaredSize(model, 2);
      const width = declaredSize(model, 3);
      if (channels !== undefined && channels !== 3) {
        throw new ModelError(
          "CC_MODEL_INPUT",
          `${model.label}: input ${model.input} takes ${channels} channels, expected 3 (RGB, channels first)`,
        );
      }
      if ((height !== undefined && height !== size) || (width !== undefined && width !== size)) {
        throw new ModelError(
          "CC_MODEL_INPUT",
          `${model.label}: input ${model.input} takes ${height ?? "any"}×${width ?? "any"} images, imageSize is ${size}`,
        );
      }
      await probeOnnxHead(model, [PROBE_ROWS, 3, size, size], config.outputIndex);
      return new OnnxPixelsHead(name, config, model, context.maxImagePixels);
    } catch (error) {
      await model.session.release();
      throw error;
    }
  }

  async score(inputs: HeadInputs): Promise<HeadScores> {
    const images = inputs.imageBytes;
    if (images === undefined) {
      throw new RangeError(`${this.name} head reads pixels: the batch has no image bytes`);
    }
    if (images.length !== inputs.image.rows) {
      throw new RangeError(
        `${this.name} head: ${images.length} images for ${inputs.image.rows} embedding rows`,
      );
    }
    const values: (number | null)[] = new Array(images.length).fill(null);
    const errors: (string | null)[] = new Array(images.length).fill(null);
    const decoded: { row: number; pixels: Float32Array }[] = [];
    for (let start = 0; start < images.length; start += DECODE_CONCURRENCY) {
      const group = images.slice(start, start + DECODE_CONCURRENCY);
      const results = await Promise.allSettled(group.map((bytes) => this.#pixels(bytes)));
      results.forEach((result, position) => {
        const row = start + position;
        if (result.status === "fulfilled") decoded.push({ row, pixels: result.value });
        else {
          const reason = decodeError(result.reason, asBuffer(group[position]));
          const what = isRefusal(result.reason) ? "image refused" : "image does not decode";
          errors[row] = `${this.name} head: ${what}: ${reason}`;
        }
      });
    }
    if (decoded.length === 0) return { values, errors };
    const size = this.config.imageSize;
    const imageLength = 3 * size * size;
    const batch = new Float32Array(decoded.length * imageLength);
    decoded.forEach(({ pixels }, index) => {
      batch.set(pixels, index * imageLength);
    });
    const output = await runOnnxHead(this.model, batch, [decoded.length, 3, size, size]);
    const scores = readScores(this.name, output, {
      column: this.config.outputIndex,
      activation: this.config.activation,
      scale: this.config.scale,
    });
    decoded.forEach(({ row }, index) => {
      values[row] = scores.values[index] ?? null;
      errors[row] = scores.errors[index] ?? null;
    });
    return { values, errors };
  }

  release(): Promise<void> {
    return this.model.session.release();
  }

  /** One image's bytes → float32 [3, size, size], normalised as the classifier expects. */
  async #pixels(bytes: Uint8Array): Promise<Float32Array> {
    const { imageSize: size, resizeMode, mean, std } = this.config;
    const resample = PIL_RESAMPLE[this.config.resample];
    await assertSafeToDecode(bytes, this.maxImagePixels);
    const rgb = await decodeRgb(bytes, this.maxImagePixels);
    let image: RgbImage;
    if (resizeMode === "squash") image = pilResize(rgb, size, size, resample);
    else {
      const target = resizedSize(rgb.height, rgb.width, { shortestEdge: size });
      image = centreCrop(pilResize(rgb, target.width, target.height, resample), size);
    }
    const plane = size * size;
    const tensor = new Float32Array(3 * plane);
    for (let channel = 0; channel < 3; channel++) {
      const channelMean = mean[channel] as number;
      const channelStd = std[channel] as number;
      for (let pixel = 0; pixel < plane; pixel++) {
        const value = (image.data[pixel * 3 + channel] as number) / 255;
        tensor[channel * plane + pixel] = (value - channelMean) / channelStd;
      }
    }
    return tensor;
  }
}

/** Decodes to 8-bit sRGB, three channels, EXIF orientation applied, alpha dropped (as PIL's convert("RGB")). */
async function decodeRgb(bytes: Uint8Array, maxPixels: number): Promise<RgbImage> {
  const { data, info } = await sharp(bytes, decodeOptions(maxPixels))
    .autoOrient()
    .removeAlpha()
    .toColourspace("srgb")
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.channels === 3) return { data, height: info.height, width: info.width };
  const rgb = new Uint8Array(info.width * info.height * 3);
  for (let pixel = 0; pixel < info.width * info.height; pixel++) {
    const grey = data[pixel * info.channels] as number;
    rgb.fill(grey, pixel * 3, pixel * 3 + 3);
  }
  return { data: rgb, height: info.height, width: info.width };
}

/** The centred size × size square of an image whose shorter side is `size`. */
function centreCrop(image: RgbImage, size: number): RgbImage {
  const top = Math.floor((image.height - size) / 2);
  const left = Math.floor((image.width - size) / 2);
  const data = new Uint8Array(size * size * 3);
  for (let row = 0; row < size; row++) {
    const from = ((row + top) * image.width + left) * 3;
    data.set(image.data.subarray(from, from + size * 3), row * size * 3);
  }
  return { data, height: size, width: size };
}
