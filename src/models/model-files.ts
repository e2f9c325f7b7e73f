/**
 * The files of a model folder in the Hugging Face / transformers.js layout, found and checked
 * before anything is loaded. A CLIP folder holds config.json, tokenizer.json,
 * tokenizer_config.json, preprocessor_config.json and two ONNX towers; a text-only folder (a
 * multilingual text encoder trained into a CLIP model's space) the same minus the vision parts.
 * Towers come in the precision asked for (`onnx/text_model.onnx`, `onnx/text_model_quantized.onnx`,
 * `onnx/vision_model_fp16.onnx`, …, named as transformers.js names its dtypes).
 */
import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ModelError } from "./model-error.js";

/** File-name suffix of each precision variant, as transformers.js maps its `dtype` option. */
export const MODEL_PRECISION_SUFFIX = {
  fp32: "",
  fp16: "_fp16",
  quantized: "_quantized",
  int8: "_int8",
  uint8: "_uint8",
  q4: "_q4",
  q4f16: "_q4f16",
  bnb4: "_bnb4",
} as const;

export type ModelPrecision = keyof typeof MODEL_PRECISION_SUFFIX;

/** A text-only model folder: a tokenizer and a text tower. */
export interface TextModelFiles {
  folder: string;
  config: string;
  tokenizer: string;
  tokenizerConfig: string;
  textModel: string;
}

export interface ClipModelFiles extends TextModelFiles {
  preprocessorConfig: string;
  visionModel: string;
}

/** Checks that every file is there; the error names the first missing file and the folder. */
export function locateClipModelFiles(
  folder: string,
  precision: ModelPrecision = "fp32",
): Promise<ClipModelFiles> {
  return locateModelFiles(folder, precision, (suffix) => ({
    config: "config.json",
    tokenizer: "tokenizer.json",
    tokenizerConfig: "tokenizer_config.json",
    preprocessorConfig: "preprocessor_config.json",
    textModel: `onnx/text_model${suffix}.onnx`,
    visionModel: `onnx/vision_model${suffix}.onnx`,
  }));
}

/** The text-only layout: the CLIP one without preprocessor_config.json and the vision tower. */
export function locateTextModelFiles(
  folder: string,
  precision: ModelPrecision = "fp32",
): Promise<TextModelFiles> {
  return locateModelFiles(folder, precision, (suffix) => ({
    config: "config.json",
    tokenizer: "tokenizer.json",
    tokenizerConfig: "tokenizer_config.json",
    textModel: `onnx/text_model${suffix}.onnx`,
  }));
}

/** `layout` gives each file's path in the folder, towers named with the precision's suffix. */
async function locateModelFiles<Files extends { folder: string }>(
  folder: string,
  precision: ModelPrecision,
  layout: (suffix: string) => Omit<Files, "folder">,
): Promise<Files> {
  const root = resolve(folder);
  const suffix = MODEL_PRECISION_SUFFIX[precision];
  if (suffix === undefined) {
    const known = Object.keys(MODEL_PRECISION_SUFFIX).join(", ");
    throw new ModelError("CC_MODEL_UNSUPPORTED", `unknown model precision ${precision} (${known})`);
  }
  const folderStat = await stat(root).catch(() => undefined);
  if (!folderStat?.isDirectory()) {
    throw new ModelError(
      "CC_MODEL_MISSING_FILE",
      `model folder ${root} does not exist: fetch one with clipcrawl model fetch <repo-id> (e.g. Xenova/clip-vit-base-patch32), or name a local Hugging Face-layout ONNX folder`,
    );
  }
  const relativePaths = layout(suffix) as Record<string, string>;
  const files: Record<string, string> = { folder: root };
  for (const [role, relative] of Object.entries(relativePaths)) {
    const path = join(root, relative);
    const fileStat = await stat(path).catch(() => undefined);
    if (!fileStat?.isFile()) {
      throw new ModelError(
        "CC_MODEL_MISSING_FILE",
        `model folder ${root} has no ${relative}${precision === "fp32" ? "" : ` (precision ${precision})`}`,
      );
    }
    files[role] = path;
  }
  return files as unknown as Files;
}

/** Reads a JSON file of a model folder; a parse error names the file. */
export async function readModelJson(path: string): Promise<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ModelError("CC_MODEL_INVALID_FILE", `${path}: not valid JSON (${reason})`, {
      cause: error,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ModelError("CC_MODEL_INVALID_FILE", `${path}: expected a JSON object`);
  }
  return parsed as Record<string, unknown>;
}
