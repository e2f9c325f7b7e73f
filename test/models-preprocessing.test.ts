import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { SeededRandom } from "../src/demo/sample/wat-generator.js";
import {
  ClipImagePreprocessor,
  parsePreprocessorConfig,
  resizedSize,
} from "../src/models/image-preprocessing.js";
import { tempDir } from "./support/temp.js";

const PYTHON = "/usr/bin/python3";
const REFERENCE_SCRIPT = fileURLToPath(new URL("./reference/clip_preprocess.py", import.meta.url));

/**
 * clipcrawl resizes with PIL's own algorithm (fixed-point coefficients included) and decodes with
 * the same libjpeg-turbo / libpng, so the 8-bit pixels are identical; what remains is float32
 * rounding in rescale and normalise (≈ 1e-7). The bound is far below one level of one channel
 * (1/255/std ≈ 0.015): any resampling, offset or crop mistake fails it.
 */
const TOLERANCE = 1e-5;
const ONE_LEVEL = 1 / 255 / 0.26130258;

const CLIP_CONFIG = {
  do_convert_rgb: true,
  do_resize: true,
  size: { shortest_edge: 64 },
  resample: 3,
  do_center_crop: true,
  crop_size: { height: 64, width: 64 },
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
};

const pilAvailable =
  spawnSync(PYTHON, ["-c", "import PIL, numpy"], { stdio: "ignore" }).status === 0;
const skipWithoutPil = pilAvailable
  ? false
  : `${PYTHON} with PIL and numpy is not installed (apt-get install python3-pil python3-numpy)`;

let workDir: string;
let fixtures: { name: string; path: string }[];

before(async () => {
  workDir = await tempDir("clip-preprocess");
  fixtures = [];
  const add = async (name: string, bytes: Buffer) => {
    const path = join(workDir, name);
    await writeFile(path, bytes);
    fixtures.push({ name, path });
  };
  await add("shape-256.jpg", await renderShapeImage("purple", "star", 5));
  await add("shape-500.png", await renderShapeImage("orange", "triangle", 9, 500, "png"));
  await add("noise-landscape-301x203.jpg", await noiseImage(301, 203, "jpeg"));
  await add("noise-portrait-150x227.png", await noiseImage(150, 227, "png"));
  await add("upscaled-40x31.png", await noiseImage(40, 31, "png"));
  await add("alpha-120x90.png", await alphaImage(120, 90));
  await add("grey-97x130.png", await greyImage(97, 130));
});

after(() => rm(workDir, { recursive: true, force: true }));

test("shortest-edge sizes truncate the long side, as Hugging Face does", () => {
  assert.deepEqual(resizedSize(203, 301, { shortestEdge: 64 }), { height: 64, width: 94 });
  assert.deepEqual(resizedSize(227, 150, { shortestEdge: 64 }), { height: 96, width: 64 });
  assert.deepEqual(resizedSize(100, 100, { height: 20, width: 30 }), { height: 20, width: 30 });
});

test("preprocessor configs: bare sizes, defaults, and unsupported resampling", () => {
  const legacy = parsePreprocessorConfig({ ...CLIP_CONFIG, size: 224, crop_size: 224 }, "p.json");
  assert.deepEqual(legacy.resize, { shortestEdge: 224 });
  assert.deepEqual(legacy.crop, { height: 224, width: 224 });
  assert.equal(legacy.resample, 3);
  assert.throws(
    () => parsePreprocessorConfig({ ...CLIP_CONFIG, resample: 7 }, "p.json"),
    /p\.json: resample 7 is not a PIL filter/,
  );
  assert.throws(
    () => parsePreprocessorConfig({ ...CLIP_CONFIG, image_mean: "grey" }, "p.json"),
    /p\.json: image_mean/,
  );
});

test("an undecodable image is an error, not a tensor", async () => {
  const preprocessor = new ClipImagePreprocessor(parsePreprocessorConfig(CLIP_CONFIG, "p.json"));
  await assert.rejects(preprocessor.preprocess(Buffer.from("not an image")));
});

const referenceCases = [
  { label: "CLIP's own settings (bicubic, shortest edge, centre crop)", config: CLIP_CONFIG },
  {
    label: "bilinear resampling to a fixed size without a crop",
    config: {
      ...CLIP_CONFIG,
      resample: 2,
      size: { height: 48, width: 56 },
      do_center_crop: false,
    },
  },
  ...[
    [1, "lanczos"],
    [4, "box"],
    [5, "hamming"],
    [0, "nearest"],
  ].map(([resample, name]) => ({
    label: `${name} resampling`,
    config: { ...CLIP_CONFIG, resample },
  })),
  {
    label: "a crop larger than the resized image, zero-padded",
    config: { ...CLIP_CONFIG, size: { shortest_edge: 40 }, crop_size: { height: 64, width: 48 } },
  },
];

for (const { label, config } of referenceCases) {
  test(`pixel tensors match PIL + numpy to float rounding: ${label}`, {
    skip: skipWithoutPil,
  }, async (context) => {
    const caseDir = await tempDir("clip-preprocess-case");
    try {
      const configPath = join(caseDir, "preprocessor_config.json");
      await writeFile(configPath, JSON.stringify(config));
      const lines = execFileSync(
        PYTHON,
        [REFERENCE_SCRIPT, configPath, caseDir, ...fixtures.map((fixture) => fixture.path)],
        { encoding: "utf8" },
      )
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as { index: number; shape: number[] });
      const preprocessor = await ClipImagePreprocessor.load(configPath);
      const report: string[] = [];
      let worst = 0;
      for (const { index, shape } of lines) {
        const fixture = fixtures[index];
        assert.ok(fixture);
        const reference = new Float32Array(
          new Uint8Array(await readFile(join(caseDir, `${index}.f32`))).buffer,
        );
        const ours = await preprocessor.preprocess(await readFile(fixture.path));
        assert.deepEqual([3, ours.height, ours.width], shape, fixture.name);
        let maxDiff = 0;
        let sumDiff = 0;
        for (let value = 0; value < reference.length; value++) {
          const diff = Math.abs((reference[value] as number) - (ours.pixels[value] as number));
          maxDiff = Math.max(maxDiff, diff);
          sumDiff += diff;
        }
        worst = Math.max(worst, maxDiff);
        report.push(
          `${fixture.name}: max abs diff ${maxDiff.toExponential(2)} (${(maxDiff / ONE_LEVEL).toFixed(2)} levels), mean ${(sumDiff / reference.length).toExponential(2)}`,
        );
      }
      context.diagnostic(`tolerance ${TOLERANCE}; ${report.join("; ")}`);
      assert.ok(worst <= TOLERANCE, report.join("\n"));
    } finally {
      await rm(caseDir, { recursive: true, force: true });
    }
  });
}

/** Seeded noise over smooth gradients: resampling differences cannot hide in flat areas. */
function noiseImage(width: number, height: number, format: "jpeg" | "png"): Promise<Buffer> {
  const random = new SeededRandom(width * 1000 + height);
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 3;
      pixels[offset] = Math.min(255, (x * 255) / width + random.int(0, 40));
      pixels[offset + 1] = Math.min(255, (y * 255) / height + random.int(0, 40));
      pixels[offset + 2] = (x * y) % 7 === 0 ? 250 : random.int(0, 255);
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  return format === "png" ? image.png().toBuffer() : image.jpeg({ quality: 95 }).toBuffer();
}

function alphaImage(width: number, height: number): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 4);
  for (let pixel = 0; pixel < width * height; pixel++) {
    pixels[pixel * 4] = (pixel * 7) % 256;
    pixels[pixel * 4 + 1] = (pixel * 13) % 256;
    pixels[pixel * 4 + 2] = 90;
    pixels[pixel * 4 + 3] = pixel % width < width / 2 ? 255 : 40;
  }
  return sharp(pixels, { raw: { width, height, channels: 4 } })
    .png()
    .toBuffer();
}

function greyImage(width: number, height: number): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height);
  for (let pixel = 0; pixel < width * height; pixel++) pixels[pixel] = (pixel * 31) % 256;
  return sharp(pixels, { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
}
