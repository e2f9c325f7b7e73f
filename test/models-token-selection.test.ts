import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { PROJECTION_DIM } from "../src/demo/tiny-clip/concept-space.js";
import { generateTinyClipModel, TINY_CLIP_IMAGE_SIZE } from "../src/demo/tiny-clip/generate.js";
import { type Dimension, OnnxGraphBuilder, TensorType } from "../src/demo/tiny-clip/onnx-graph.js";
import { ClipModel } from "../src/models/clip-model.js";
import { selectTokensEarlyInBytes } from "../src/models/onnx-token-selection.js";
import { encodeWithWeightsInFile } from "../src/models/onnx-weights-in-file.js";
import { tempDir } from "./support/temp.js";

const { onnx } = onnxProto;

const TOKENS = 16; // a 64 × 64 image in 16 × 16 patches
const WIDTH = 8;
const HIDDEN = 16;
const PATCH = 16;

interface VitShape {
  /** "pixels": pixel_values [batch, 3, 64, 64] patchified by a Conv; "tokens": [batch, 16, 8]. */
  input: "pixels" | "tokens";
  /** Whether the input declares its shape (default true); without one, ranks are unknown. */
  declareShape?: boolean;
  /** The token the graph pools (CLIP pools token 0). */
  pooledToken?: number;
  layers?: number;
}

/**
 * A ViT-shaped tower as torch exports CLIP's: decomposed layer norms, attention-like token mixing
 * (transpose, a constant mix over tokens, transpose back), residuals, an MLP with QuickGELU, then
 * the pooled token's post layer norm and projection; `last_hidden_state` beside `image_embeds`.
 */
function vitTower(shape: VitShape): Uint8Array {
  const graph = new OnnxGraphBuilder("vit");
  let seed = 1;
  const values = (count: number, scale: number) =>
    Array.from({ length: count }, () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return (seed / 2147483648 - 0.5) * 2 * scale;
    });
  const declared = shape.declareShape ?? true;
  let x: string;
  if (shape.input === "pixels") {
    const dims: Dimension[] = ["batch", 3, TINY_CLIP_IMAGE_SIZE, TINY_CLIP_IMAGE_SIZE];
    graph.input("pixel_values", TensorType.FLOAT, dims);
    graph.floatTensor("patch", [WIDTH, 3, PATCH, PATCH], values(WIDTH * 3 * PATCH * PATCH, 0.05));
    graph.node("Conv", ["pixel_values", "patch"], "patches", {
      kernel_shape: [PATCH, PATCH],
      strides: [PATCH, PATCH],
    });
    graph.int64Tensor("flat", [3], [0, WIDTH, -1]);
    graph.node("Reshape", ["patches", "flat"], "patch_rows");
    x = graph.node("Transpose", ["patch_rows"], "embeddings", { perm: [0, 2, 1] });
  } else {
    x = graph.input("tokens", TensorType.FLOAT, ["batch", TOKENS, WIDTH]);
  }
  graph.floatTensor("two", [], [2]);
  graph.floatTensor("epsilon", [], [1e-5]);
  graph.floatTensor("gelu_scale", [], [1.702]);
  const layerNorm = (input: string, name: string): string => {
    graph.floatTensor(
      `${name}.weight`,
      [WIDTH],
      values(WIDTH, 1).map((v) => 1 + 0.2 * v),
    );
    graph.floatTensor(`${name}.bias`, [WIDTH], values(WIDTH, 0.1));
    graph.node("ReduceMean", [input], `${name}/mean`, { axes: [-1] });
    graph.node("Sub", [input, `${name}/mean`], `${name}/centred`);
    graph.node("Pow", [`${name}/centred`, "two"], `${name}/squared`);
    graph.node("ReduceMean", [`${name}/squared`], `${name}/variance`, { axes: [-1] });
    graph.node("Add", [`${name}/variance`, "epsilon"], `${name}/variance_eps`);
    graph.node("Sqrt", [`${name}/variance_eps`], `${name}/deviation`);
    graph.node("Div", [`${name}/centred`, `${name}/deviation`], `${name}/normalised`);
    graph.node("Mul", [`${name}/normalised`, `${name}.weight`], `${name}/scaled`);
    return graph.node("Add", [`${name}/scaled`, `${name}.bias`], `${name}/out`);
  };
  const linear = (input: string, name: string, from: number, to: number): string => {
    graph.floatTensor(`${name}.weight`, [from, to], values(from * to, from ** -0.5));
    graph.floatTensor(`${name}.bias`, [to], values(to, 0.05));
    graph.node("MatMul", [input, `${name}.weight`], `${name}/product`);
    return graph.node("Add", [`${name}.bias`, `${name}/product`], `${name}/out`);
  };
  for (let layer = 0; layer < (shape.layers ?? 2); layer++) {
    const name = `layers.${layer}`;
    const normed = layerNorm(x, `${name}/layer_norm1`);
    graph.node("Transpose", [normed], `${name}/by_channel`, { perm: [0, 2, 1] });
    graph.floatTensor(`${name}/mix`, [TOKENS, TOKENS], values(TOKENS * TOKENS, 0.3));
    graph.node("MatMul", [`${name}/by_channel`, `${name}/mix`], `${name}/mixed`);
    graph.node("Transpose", [`${name}/mixed`], `${name}/attention`, { perm: [0, 2, 1] });
    const attended = linear(`${name}/attention`, `${name}/out_proj`, WIDTH, WIDTH);
    const residual = graph.node("Add", [x, attended], `${name}/residual`);
    const normed2 = layerNorm(residual, `${name}/layer_norm2`);
    const hidden = linear(normed2, `${name}/fc1`, WIDTH, HIDDEN);
    graph.node("Mul", [hidden, "gelu_scale"], `${name}/act/scaled`);
    graph.node("Sigmoid", [`${name}/act/scaled`], `${name}/act/gate`);
    graph.node("Mul", [hidden, `${name}/act/gate`], `${name}/act/out`);
    const mlp = linear(`${name}/act/out`, `${name}/fc2`, HIDDEN, WIDTH);
    x = graph.node("Add", [residual, mlp], `${name}/out`);
  }
  graph.int64Tensor("pooled_index", [], [shape.pooledToken ?? 0]);
  graph.node("Gather", [x, "pooled_index"], "pooled", { axis: 1 });
  const post = layerNorm("pooled", "post_layernorm");
  graph.floatTensor("projection", [WIDTH, PROJECTION_DIM], values(WIDTH * PROJECTION_DIM, 0.3));
  graph.node("MatMul", [post, "projection"], "image_embeds");
  graph.node("Identity", [x], "last_hidden_state");
  graph.output("image_embeds", TensorType.FLOAT, ["batch", PROJECTION_DIM]);
  graph.output("last_hidden_state", TensorType.FLOAT, ["batch", TOKENS, WIDTH]);
  const bytes = graph.encode("ViT-shaped test tower");
  if (declared) return bytes;
  const model = onnx.ModelProto.decode(bytes);
  for (const input of model.graph?.input ?? []) {
    if (input.type?.tensorType) input.type.tensorType.shape = null;
  }
  return onnx.ModelProto.encode(model).finish();
}

async function run(model: Uint8Array, feed: ort.Tensor): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    const results = await session.run({ [session.inputNames[0] as string]: feed }, [
      "image_embeds",
    ]);
    return results.image_embeds?.data as Float32Array;
  } finally {
    await session.release();
  }
}

function tokenBatch(batch: number): ort.Tensor {
  const data = Float32Array.from({ length: batch * TOKENS * WIDTH }, (_, i) => Math.sin(i * 0.7));
  return new ort.Tensor("float32", data, [batch, TOKENS, WIDTH]);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  return a.reduce((max, value, i) => Math.max(max, Math.abs(value - (b[i] as number))), 0);
}

test("the last layer runs on the pooled token only, with the embeddings unchanged", async () => {
  const original = vitTower({ input: "tokens" });
  const narrowed = selectTokensEarlyInBytes(original, ["image_embeds"]);
  assert.ok(narrowed !== undefined);
  const { report } = narrowed;
  // out_proj (MatMul, Add), the residual Add, layer_norm2 (9 nodes), fc1 (2), QuickGELU (3),
  // fc2 (2) and the last residual Add: everything of the last layer after the token mixing.
  assert.equal(report.nodesNarrowed, 20);
  // The token is taken from the token mixing's output and from the last layer's input.
  assert.equal(report.gathersAdded, 2);
  const graph = narrowed.model.graph as onnxProto.onnx.IGraphProto;
  assert.deepEqual(
    graph.output?.map((output) => output.name),
    ["image_embeds"],
  );
  const gathers = graph.node?.filter((node) => node.opType === "Gather") ?? [];
  assert.deepEqual(gathers.map((node) => node.input?.[0]).sort(), [
    "layers.0/out",
    "layers.1/attention",
  ]);
  const feed = tokenBatch(3);
  const before = await run(original, feed);
  const after = await run(onnx.ModelProto.encode(narrowed.model).finish(), feed);
  assert.equal(after.length, 3 * PROJECTION_DIM);
  assert.ok(maxAbsDiff(before, after) < 1e-5, `max abs diff ${maxAbsDiff(before, after)}`);
});

test("a graph the pass cannot prove safe is left as exported", async (t) => {
  await t.test("input without a declared shape (the token axis could be the last)", () => {
    const model = vitTower({ input: "tokens", declareShape: false });
    assert.equal(selectTokensEarlyInBytes(model, ["image_embeds"]), undefined);
  });
  await t.test("pooling a token other than the first", () => {
    const model = vitTower({ input: "tokens", pooledToken: 3 });
    assert.equal(selectTokensEarlyInBytes(model, ["image_embeds"]), undefined);
  });
  await t.test("every token kept as an output", () => {
    const model = vitTower({ input: "tokens" });
    const kept = selectTokensEarlyInBytes(model, ["image_embeds", "last_hidden_state"]);
    assert.equal(kept, undefined);
  });
  await t.test("asked for an output the graph does not have", () => {
    const model = vitTower({ input: "tokens" });
    assert.equal(selectTokensEarlyInBytes(model, ["pooler_output"]), undefined);
  });
  await t.test("bytes that are not an ONNX model", () => {
    const junk = new TextEncoder().encode("not a model at all, just text");
    assert.equal(selectTokensEarlyInBytes(junk, ["image_embeds"]), undefined);
  });
});

let workDir: string;

before(async () => {
  workDir = await tempDir("token-selection");
});

after(() => rm(workDir, { recursive: true, force: true }));

test("ClipModel narrows a ViT vision tower by default, and agrees with the graph as exported", async () => {
  const folder = join(workDir, "model");
  await generateTinyClipModel(folder);
  await writeFile(join(folder, "onnx", "vision_model.onnx"), vitTower({ input: "pixels" }));
  const pixels = Float32Array.from(
    { length: 2 * 3 * TINY_CLIP_IMAGE_SIZE * TINY_CLIP_IMAGE_SIZE },
    (_, i) => Math.cos(i * 0.013),
  );
  const batch = { batchSize: 2, height: TINY_CLIP_IMAGE_SIZE, width: TINY_CLIP_IMAGE_SIZE, pixels };
  const embeddings: Float32Array[] = [];
  for (const selectPooledTokenEarly of [true, false]) {
    const model = await ClipModel.load(folder, { intraOpThreads: 1, selectPooledTokenEarly });
    try {
      const result = await model.encodeImages(batch);
      assert.equal(result.rows, 2);
      assert.equal(result.dimensions, PROJECTION_DIM);
      embeddings.push(result.data);
    } finally {
      await model.release();
    }
  }
  const [narrowed, exported] = embeddings as [Float32Array, Float32Array];
  assert.ok(
    maxAbsDiff(narrowed, exported) < 1e-5,
    `max abs diff ${maxAbsDiff(narrowed, exported)}`,
  );
  // The pixel path's narrowing is real: the same graph, as bytes, narrows.
  const report = selectTokensEarlyInBytes(vitTower({ input: "pixels" }), ["image_embeds"])?.report;
  assert.equal(report?.nodesNarrowed, 20);
});

test("a rewritten graph keeps its weights in the model file: a small model, the same outputs", async () => {
  const path = join(workDir, "tower.onnx");
  const original = vitTower({ input: "pixels" });
  await writeFile(path, original);
  const fileBytes = await readFile(path);
  const model = onnx.ModelProto.decode(fileBytes);
  const encoded = encodeWithWeightsInFile(model, fileBytes, "tower.onnx");
  const external = model.graph?.initializer?.filter((tensor) => tensor.externalData?.length) ?? [];
  assert.ok(external.length > 0, "no weight pointed into the file");
  assert.ok(encoded.byteLength < original.byteLength / 2, `${encoded.byteLength} bytes`);
  const session = await ort.InferenceSession.create(encoded, {
    intraOpNumThreads: 1,
    extra: { session: { model_external_initializers_file_folder_path: workDir } },
  });
  try {
    const size = TINY_CLIP_IMAGE_SIZE;
    const pixels = Float32Array.from({ length: 2 * 3 * size * size }, (_, i) => Math.sin(i));
    const feed = new ort.Tensor("float32", pixels, [2, 3, size, size]);
    const results = await session.run({ pixel_values: feed }, ["image_embeds"]);
    const before = await run(original, feed);
    assert.equal(maxAbsDiff(before, results.image_embeds?.data as Float32Array), 0);
  } finally {
    await session.release();
  }
});
