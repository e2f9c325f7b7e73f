import assert from "node:assert/strict";
import { copyFile, cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import onnxProto from "onnx-proto";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { ClipModel } from "../src/models/clip-model.js";
import { ModelError } from "../src/models/model-error.js";
import { tempDir } from "./support/temp.js";

const { onnx } = onnxProto;

let workDir: string;
let modelDir: string;
let copies = 0;

before(async () => {
  workDir = await tempDir("clip-loading");
  modelDir = join(workDir, "model");
  await generateTinyClipModel(modelDir);
});

after(() => rm(workDir, { recursive: true, force: true }));

/** A fresh copy of the tiny model to break. */
async function modelCopy(): Promise<string> {
  const copy = join(workDir, `copy-${copies++}`);
  await cp(modelDir, copy, { recursive: true });
  return copy;
}

/** Rewrites one ONNX file of a copy. */
async function editGraph(
  path: string,
  edit: (graph: onnxProto.onnx.IGraphProto) => void,
): Promise<void> {
  const model = onnx.ModelProto.decode(await readFile(path));
  edit(model.graph as onnxProto.onnx.IGraphProto);
  await writeFile(path, onnx.ModelProto.encode(model).finish());
}

function renameValue(graph: onnxProto.onnx.IGraphProto, from: string, to: string): void {
  for (const value of [...(graph.input ?? []), ...(graph.output ?? [])]) {
    if (value.name === from) value.name = to;
  }
  for (const node of graph.node ?? []) {
    node.input = (node.input ?? []).map((name) => (name === from ? to : name));
    node.output = (node.output ?? []).map((name) => (name === from ? to : name));
  }
}

async function loadError(folder: string, options = {}): Promise<ModelError> {
  try {
    const model = await ClipModel.load(folder, options);
    await model.release();
  } catch (error) {
    assert.ok(error instanceof ModelError, String(error));
    assert.doesNotMatch(error.message, /\n/);
    return error;
  }
  assert.fail("the model loaded");
}

test("every required file, when missing, is named together with the folder", async () => {
  const required = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "preprocessor_config.json",
    "onnx/text_model.onnx",
    "onnx/vision_model.onnx",
  ];
  for (const file of required) {
    const copy = await modelCopy();
    await rm(join(copy, file));
    const error = await loadError(copy);
    assert.equal(error.code, "CC_MODEL_MISSING_FILE");
    assert.equal(error.message, `model folder ${copy} has no ${file}`);
  }
  const missingFolder = await loadError(join(workDir, "nowhere"));
  assert.match(missingFolder.message, /model folder .*nowhere does not exist/);
});

test("a precision variant is loaded when asked for, and its absence is named", async () => {
  const copy = await modelCopy();
  const missing = await loadError(copy, { precision: "quantized" });
  assert.equal(
    missing.message,
    `model folder ${copy} has no onnx/text_model_quantized.onnx (precision quantized)`,
  );
  for (const tower of ["text_model", "vision_model"]) {
    await copyFile(join(copy, `onnx/${tower}.onnx`), join(copy, `onnx/${tower}_quantized.onnx`));
  }
  const model = await ClipModel.load(copy, { precision: "quantized" });
  assert.match(model.files.textModel, /text_model_quantized\.onnx$/);
  assert.match(model.files.visionModel, /vision_model_quantized\.onnx$/);
  await model.release();
});

test("a text tower without input_ids is refused, naming the inputs it has", async () => {
  const copy = await modelCopy();
  await editGraph(join(copy, "onnx/text_model.onnx"), (graph) =>
    renameValue(graph, "input_ids", "token_ids"),
  );
  const error = await loadError(copy);
  assert.equal(error.code, "CC_MODEL_INPUT");
  assert.match(error.message, /text_model\.onnx: expected input input_ids .*found token_ids$/);
});

test("a vision tower without pixel_values or image_embeds is refused", async () => {
  const renamedInput = await modelCopy();
  await editGraph(join(renamedInput, "onnx/vision_model.onnx"), (graph) =>
    renameValue(graph, "pixel_values", "images"),
  );
  const inputError = await loadError(renamedInput);
  assert.equal(inputError.code, "CC_MODEL_INPUT");
  assert.match(
    inputError.message,
    /vision_model\.onnx: expected input pixel_values, found images$/,
  );

  const renamedOutput = await modelCopy();
  await editGraph(join(renamedOutput, "onnx/vision_model.onnx"), (graph) =>
    renameValue(graph, "image_embeds", "pooled"),
  );
  const outputError = await loadError(renamedOutput);
  assert.equal(outputError.code, "CC_MODEL_OUTPUT");
  assert.match(outputError.message, /expected output image_embeds, found pooled$/);
});

test("towers whose embeddings differ in size are refused with both sizes", async () => {
  const copy = await modelCopy();
  await editGraph(join(copy, "onnx/vision_model.onnx"), (graph) => {
    const projection = graph.initializer?.find((tensor) => tensor.name === "joint_projection");
    assert.ok(projection?.dims && projection.rawData);
    const [rows, columns] = projection.dims.map(Number) as [number, number];
    const values = new Float32Array(new Uint8Array(projection.rawData).buffer);
    const narrower = new Float32Array(rows * 32);
    for (let row = 0; row < rows; row++) {
      narrower.set(values.subarray(row * columns, row * columns + 32), row * 32);
    }
    projection.dims = [rows, 32];
    projection.rawData = new Uint8Array(narrower.buffer);
    const output = graph.output?.[0]?.type?.tensorType?.shape?.dim?.[1];
    if (output) output.dimValue = 32;
  });
  const error = await loadError(copy);
  assert.equal(error.code, "CC_MODEL_EMBEDDING_SIZE");
  assert.equal(
    error.message,
    `model folder ${copy}: text_embeds has 48 dimensions but image_embeds has 32`,
  );
});

test("a corrupt ONNX file or config is refused with the file's name", async () => {
  const corruptGraph = await modelCopy();
  await writeFile(join(corruptGraph, "onnx/text_model.onnx"), "not a protobuf");
  const graphError = await loadError(corruptGraph);
  assert.equal(graphError.code, "CC_MODEL_INVALID_FILE");
  assert.match(graphError.message, /text_model\.onnx: not a loadable ONNX model/);

  const corruptConfig = await modelCopy();
  await writeFile(join(corruptConfig, "preprocessor_config.json"), '{"resample": 4}');
  const configError = await loadError(corruptConfig);
  assert.match(configError.message, /preprocessor_config\.json: /);
});
