/**
 * Writes the tiny fixture CLIP model: a folder in the Hugging Face / transformers.js layout that
 * clipcrawl loads exactly as it loads a real CLIP checkpoint.
 *
 *   npx tsx src/demo/tiny-clip/generate.ts --out DIR
 *
 * The folder holds config.json, tokenizer.json, tokenizer_config.json, preprocessor_config.json,
 * onnx/text_model.onnx and onnx/vision_model.onnx; a few KB of ONNX in all. Its weights are
 * designed, not trained (see concept-space.ts): on the bundled sample's coloured-shape images a
 * caption that names the right colour and shape scores a high cosine, any other a low one.
 * The output is deterministic: the same bytes on every run.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { CAPTIONS_BY_LANGUAGE, NAVIGATION_LABELS } from "../sample/sample-captions.js";
import { SHAPE_COLOURS, SHAPE_NAMES } from "../sample/wat-generator.js";
import {
  END_OF_TEXT,
  START_OF_TEXT,
  tokenizerConfigJson,
  tokenizerJson,
  trainBpe,
} from "./bpe-tokenizer.js";
import { PROJECTION_DIM } from "./concept-space.js";
import { buildTextTower, meaningfulWords } from "./text-tower.js";
import { buildVisionTower } from "./vision-tower.js";

/** CLIP's context length. */
export const TINY_CLIP_CONTEXT_LENGTH = 77;
/** Side of the square the preprocessor crops to; enough pixels to measure a shape's fill. */
export const TINY_CLIP_IMAGE_SIZE = 64;
/** OpenAI CLIP's normalisation constants, as every CLIP preprocessor_config.json states them. */
const CLIP_IMAGE_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
const CLIP_IMAGE_STD = [0.26862954, 0.26130258, 0.27577711] as const;
/** PIL's code for bicubic resampling. */
const PIL_BICUBIC = 3;

export interface TinyClipSummary {
  folder: string;
  files: { path: string; bytes: number }[];
  vocabularySize: number;
  embeddingSize: number;
}

export async function generateTinyClipModel(outDir: string): Promise<TinyClipSummary> {
  const folder = resolve(outDir);
  const bpe = trainBpe(tokenizerCorpus(), meaningfulWords());
  const startId = bpe.vocab.get(START_OF_TEXT) as number;
  const endId = bpe.vocab.get(END_OF_TEXT) as number;

  const files: ModelFile[] = [
    ["config.json", json(modelConfig(bpe.vocab.size, startId, endId))],
    ["tokenizer.json", json(tokenizerJson(bpe))],
    ["tokenizer_config.json", json(tokenizerConfigJson(TINY_CLIP_CONTEXT_LENGTH))],
    ["preprocessor_config.json", json(preprocessorConfig())],
    ["onnx/text_model.onnx", buildTextTower(bpe.vocab)],
    [
      "onnx/vision_model.onnx",
      buildVisionTower({
        imageSize: TINY_CLIP_IMAGE_SIZE,
        imageMean: CLIP_IMAGE_MEAN,
        imageStd: CLIP_IMAGE_STD,
      }),
    ],
  ];
  return {
    folder,
    files: await writeModelFolder(folder, files),
    vocabularySize: bpe.vocab.size,
    embeddingSize: PROJECTION_DIM,
  };
}

/** A file of a model folder: its path in the folder and its contents. */
export type ModelFile = [string, Uint8Array | string];

/** Writes the files under `folder`, creating the folders they name, and lists their sizes. */
export async function writeModelFolder(
  folder: string,
  files: readonly ModelFile[],
): Promise<{ path: string; bytes: number }[]> {
  for (const [path, contents] of files) {
    await mkdir(dirname(join(folder, path)), { recursive: true });
    await writeFile(join(folder, path), contents);
  }
  return files.map(([path, contents]) => ({
    path,
    bytes: typeof contents === "string" ? Buffer.byteLength(contents) : contents.byteLength,
  }));
}

/** English text the sample holds: its captions, its navigation labels, and the shape alts. */
function tokenizerCorpus(): string[] {
  const shapePhrases = SHAPE_COLOURS.flatMap((colour) =>
    SHAPE_NAMES.map(
      (shape) =>
        `a simple ${colour} ${shape} shape, illustration of a ${colour} ${shape} icon, ` +
        `${colour} ${shape} sticker in a flat design, plain ${colour} ${shape} printed on a ` +
        `white card, on a black background`,
    ),
  );
  return [...CAPTIONS_BY_LANGUAGE.en, ...NAVIGATION_LABELS.en, ...shapePhrases];
}

function modelConfig(vocabularySize: number, startId: number, endId: number): object {
  return {
    _name_or_path: "clipcrawl/tiny-clip",
    architectures: ["CLIPModel"],
    model_type: "clip",
    projection_dim: PROJECTION_DIM,
    logit_scale_init_value: 2.6592,
    torch_dtype: "float32",
    text_config: {
      model_type: "clip_text_model",
      vocab_size: vocabularySize,
      max_position_embeddings: TINY_CLIP_CONTEXT_LENGTH,
      hidden_size: 13,
      intermediate_size: 0,
      num_hidden_layers: 0,
      num_attention_heads: 1,
      projection_dim: PROJECTION_DIM,
      bos_token_id: startId,
      eos_token_id: endId,
      pad_token_id: endId,
    },
    vision_config: {
      model_type: "clip_vision_model",
      image_size: TINY_CLIP_IMAGE_SIZE,
      patch_size: TINY_CLIP_IMAGE_SIZE,
      num_channels: 3,
      hidden_size: 8,
      intermediate_size: 0,
      num_hidden_layers: 0,
      num_attention_heads: 1,
      projection_dim: PROJECTION_DIM,
    },
  };
}

function preprocessorConfig(): object {
  return {
    image_processor_type: "CLIPImageProcessor",
    feature_extractor_type: "CLIPFeatureExtractor",
    do_convert_rgb: true,
    do_resize: true,
    size: { shortest_edge: TINY_CLIP_IMAGE_SIZE },
    resample: PIL_BICUBIC,
    do_center_crop: true,
    crop_size: { height: TINY_CLIP_IMAGE_SIZE, width: TINY_CLIP_IMAGE_SIZE },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: CLIP_IMAGE_MEAN,
    image_std: CLIP_IMAGE_STD,
  };
}

export function json(value: object): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { out: { type: "string" } } });
  if (values.out === undefined) {
    process.stderr.write("usage: generate.ts --out DIR\n");
    process.exitCode = 2;
    return;
  }
  const summary = await generateTinyClipModel(values.out);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
