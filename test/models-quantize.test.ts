import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { SeededRandom } from "../src/demo/sample/wat-generator.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { OnnxGraphBuilder, TensorType } from "../src/demo/tiny-clip/onnx-graph.js";
import { ClipModel, type EmbeddingMatrix } from "../src/models/clip-model.js";
import { ClipEmbedder, cosineSimilarity, embeddingRow } from "../src/models/embedder.js";
import { ModelError } from "../src/models/model-error.js";
import {
  type QuantizeOptions,
  quantizeClipModel,
  quantizeOnnxFile,
  quantizeOnnxModel,
  quantizeWeight,
} from "../src/models/onnx-quantize.js";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

const { onnx } = onnxProto;

let workDir: string;

before(async () => {
  workDir = await tempDir("quantize");
});

after(() => rm(workDir, { recursive: true, force: true }));

const TOKENS = 6;
const FEATURES = 64;
const HIDDEN = 48;
const OUTPUTS = 16;

function randomValues(random: SeededRandom, count: number, scale: number): Float32Array {
  return Float32Array.from({ length: count }, () => (random.next() * 2 - 1) * scale);
}

/**
 * A two-layer perceptron over tokens, as a transformer's MLP is exported:
 * MatMul + Add(bias) → Relu → MatMul (no bias), plus one product of two activations (x · xᵀ)
 * that has no constant weight to quantise.
 */
function mlpGraph(): Uint8Array {
  const random = new SeededRandom(7);
  const graph = new OnnxGraphBuilder("mlp");
  graph.input("x", TensorType.FLOAT, ["batch", TOKENS, FEATURES]);
  graph.floatTensor("w1", [FEATURES, HIDDEN], randomValues(random, FEATURES * HIDDEN, 0.2));
  graph.floatTensor("b1", [HIDDEN], randomValues(random, HIDDEN, 0.1));
  graph.floatTensor("w2", [HIDDEN, OUTPUTS], randomValues(random, HIDDEN * OUTPUTS, 0.2));
  graph.node("MatMul", ["x", "w1"], "h_raw");
  graph.node("Add", ["h_raw", "b1"], "h_biased");
  graph.node("Relu", ["h_biased"], "h");
  graph.node("MatMul", ["h", "w2"], "y");
  graph.int64Tensor("perm", [3], [0, 2, 1]);
  graph.node("Transpose", ["x"], "x_t", { perm: [0, 2, 1] });
  graph.node("MatMul", ["x", "x_t"], "gram");
  graph.output("y", TensorType.FLOAT, ["batch", TOKENS, OUTPUTS]);
  graph.output("gram", TensorType.FLOAT, ["batch", TOKENS, TOKENS]);
  return graph.encode("MLP for the quantiser tests");
}

/** A Linear layer as a Gemm: Y = X · Wᵀ + C, W stored [out, in] (transB). */
function gemmGraph(): Uint8Array {
  const random = new SeededRandom(11);
  const graph = new OnnxGraphBuilder("gemm");
  graph.input("x", TensorType.FLOAT, ["batch", FEATURES]);
  graph.floatTensor("w", [OUTPUTS, FEATURES], randomValues(random, OUTPUTS * FEATURES, 0.2));
  graph.floatTensor("c", [OUTPUTS], randomValues(random, OUTPUTS, 0.5));
  graph.node("Gemm", ["x", "w", "c"], "y", { transB: 1 });
  graph.output("y", TensorType.FLOAT, ["batch", OUTPUTS]);
  return graph.encode("Gemm for the quantiser tests");
}

async function run(
  model: Uint8Array,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
  try {
    const results = await session.run(feeds);
    return Object.fromEntries(
      Object.entries(results).map(([name, tensor]) => [name, tensor.data as Float32Array]),
    );
  } finally {
    await session.release();
  }
}

function opTypes(model: Uint8Array): string[] {
  return (onnx.ModelProto.decode(model).graph?.node ?? []).map((node) =>
    node.domain ? `${node.domain}:${node.opType}` : (node.opType as string),
  );
}

/** Largest |a − b| over the largest |a|: int8 weights and activations land near 1%. */
function relativeError(reference: Float32Array, other: Float32Array): number {
  let worst = 0;
  let largest = 0;
  for (let index = 0; index < reference.length; index++) {
    worst = Math.max(worst, Math.abs((reference[index] as number) - (other[index] as number)));
    largest = Math.max(largest, Math.abs(reference[index] as number));
  }
  return worst / largest;
}

const inputs = () => {
  const random = new SeededRandom(3);
  return new ort.Tensor("float32", randomValues(random, 4 * TOKENS * FEATURES, 1), [
    4,
    TOKENS,
    FEATURES,
  ]);
};

for (const options of [
  { operator: "DynamicQuantizeMatMul", perChannel: true },
  { operator: "DynamicQuantizeMatMul", perChannel: false },
  { operator: "MatMulInteger", perChannel: true },
] satisfies QuantizeOptions[]) {
  const label = `${options.operator}, ${options.perChannel ? "per column" : "per tensor"}`;
  test(`MatMuls with constant weights run in int8 within 3% of fp32 (${label})`, async () => {
    const fp32 = mlpGraph();
    const { model, report } = quantizeOnnxModel(fp32, "mlp.onnx", options);
    assert.equal(report.quantizedMatMuls, 2);
    assert.equal(report.fusedBiases, 1);
    assert.equal(report.floatMatMuls, 1, "the activation product stays float");
    const ops = opTypes(model);
    if (options.operator === "DynamicQuantizeMatMul") {
      assert.deepEqual(
        ops.filter((op) => op.endsWith("MatMul")),
        ["com.microsoft:DynamicQuantizeMatMul", "com.microsoft:DynamicQuantizeMatMul", "MatMul"],
      );
      assert.ok(!ops.includes("Add"), "the bias moved into the quantised op");
    } else {
      assert.equal(ops.filter((op) => op === "MatMulInteger").length, 2);
    }
    const weights = onnx.ModelProto.decode(model).graph?.initializer ?? [];
    assert.deepEqual(
      weights.filter((tensor) => tensor.dataType === TensorType.FLOAT && tensor.dims?.length === 2),
      [],
      "no float weight matrix is left",
    );

    const feeds = { x: inputs() };
    const reference = await run(fp32, feeds);
    const quantized = await run(model, feeds);
    const error = relativeError(reference.y as Float32Array, quantized.y as Float32Array);
    assert.ok(error > 0, "the outputs come from int8 arithmetic, not the float weights");
    assert.ok(error < 0.03, `relative error ${error}`);
    assert.deepEqual(quantized.gram, reference.gram);
  });
}

test("a Gemm with transposed weights and a bias is quantised as a MatMul", async () => {
  const fp32 = gemmGraph();
  const { model, report } = quantizeOnnxModel(fp32, "gemm.onnx");
  assert.equal(report.quantizedMatMuls, 1);
  assert.deepEqual(opTypes(model), ["com.microsoft:DynamicQuantizeMatMul"]);
  const feeds = {
    x: new ort.Tensor("float32", randomValues(new SeededRandom(5), 3 * FEATURES, 1), [3, FEATURES]),
  };
  const error = relativeError(
    (await run(fp32, feeds)).y as Float32Array,
    (await run(model, feeds)).y as Float32Array,
  );
  assert.ok(error > 0 && error < 0.03, `relative error ${error}`);
});

test("weights quantise symmetrically with each column's largest row-pair sum at 127, so no pair of codes passes 128; a zero column stays zero", () => {
  // Columns: [1, -4], [0.5, 2], [0, 0]: pair sums 5, 2.5 and 0.
  const weight = Float32Array.from([1, 0.5, 0, -4, 2, 0]);
  const perColumn = quantizeWeight(weight, 2, 3, true);
  assert.deepEqual(Array.from(perColumn.values), [25, 25, 0, -102, 102, 0]);
  assert.deepEqual(Array.from(perColumn.scales), [5 / 127, 2.5 / 127, 1].map(Math.fround));
  const perTensor = quantizeWeight(weight, 2, 3, false);
  assert.deepEqual(Array.from(perTensor.values), [25, 13, 0, -102, 51, 0]);
  assert.equal(perTensor.scales.length, 1);
  // An odd last row is a pair on its own.
  assert.deepEqual(
    Array.from(quantizeWeight(Float32Array.from([1, 1, 3]), 3, 1, true).values),
    [42, 42, 127],
  );
  const random = new SeededRandom(13);
  const rows = 64;
  const wide = quantizeWeight(randomValues(random, rows * 32, 1), rows, 32, true);
  for (let row = 0; row < rows; row += 2) {
    for (let column = 0; column < 32; column++) {
      const pair =
        Math.abs(wide.values[row * 32 + column] as number) +
        Math.abs(wide.values[(row + 1) * 32 + column] as number);
      assert.ok(pair <= 128, `rows ${row}-${row + 1}, column ${column}: ${pair}`);
    }
  }
});

test("a quantised tiny CLIP loads with precision quantized and embeds like fp32 (cosine ≥ 0.99)", async () => {
  const modelDir = join(workDir, "tiny");
  await generateTinyClipModel(modelDir);
  const result = await quantizeClipModel(modelDir);
  assert.deepEqual(
    result.towers.map((tower) => tower.output),
    [
      join(modelDir, "onnx/text_model_quantized.onnx"),
      join(modelDir, "onnx/vision_model_quantized.onnx"),
    ],
  );
  for (const tower of result.towers) assert.ok(tower.report.quantizedMatMuls >= 1, tower.output);

  const fp32 = await ClipModel.load(modelDir, { intraOpThreads: 1 });
  const int8 = await ClipModel.load(modelDir, { intraOpThreads: 1, precision: "quantized" });
  try {
    assert.equal(int8.files.visionModel, join(modelDir, "onnx/vision_model_quantized.onnx"));
    const images = await Promise.all([
      renderShapeImage("red", "circle", 1),
      renderShapeImage("blue", "square", 2),
      renderShapeImage("green", "triangle", 3),
    ]);
    const captions = ["a red circle", "a blue square icon", "green triangle on a white card"];
    const agreement: number[] = [];
    const sides: [string, EmbeddingMatrix, EmbeddingMatrix][] = [
      [
        "image",
        (await new ClipEmbedder(fp32).embedImages(images)).embeddings,
        (await new ClipEmbedder(int8).embedImages(images)).embeddings,
      ],
      [
        "text",
        (await new ClipEmbedder(fp32).embedTexts(captions)).embeddings,
        (await new ClipEmbedder(int8).embedTexts(captions)).embeddings,
      ],
    ];
    for (const [side, reference, quantized] of sides) {
      assert.equal(quantized.rows, reference.rows);
      for (let row = 0; row < reference.rows; row++) {
        const cosine = cosineSimilarity(embeddingRow(reference, row), embeddingRow(quantized, row));
        agreement.push(cosine);
        assert.ok(cosine >= 0.99, `${side} ${row}: cosine ${cosine}`);
      }
    }
    assert.ok(
      agreement.some((cosine) => cosine < 0.999999),
      "the towers really are int8",
    );
  } finally {
    await Promise.all([fp32.release(), int8.release()]);
  }
});

test("a file that is not ONNX is one clear error naming it", async () => {
  const path = join(workDir, "notes.onnx");
  await writeFile(path, "these are notes, not a model\n");
  await assert.rejects(
    quantizeOnnxFile(path, join(workDir, "out.onnx")),
    (error: unknown) =>
      error instanceof ModelError &&
      error.code === "CC_MODEL_INVALID_FILE" &&
      error.message.startsWith(`${path}: not an ONNX model`),
  );
  await assert.rejects(quantizeClipModel(join(workDir, "no-such-model")), /does not exist/);
});

test("clipcrawl model quantize writes both towers; a broken tower fails with exit code 1 and one line", async () => {
  const modelDir = join(workDir, "cli");
  await generateTinyClipModel(modelDir);
  const ok = await runCli(["model", "quantize", modelDir, "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  const summary = JSON.parse(ok.stdout) as { towers: { output: string }[] };
  assert.equal(summary.towers.length, 2);
  for (const tower of summary.towers) assert.ok((await readFile(tower.output)).byteLength > 0);

  await writeFile(join(modelDir, "onnx/vision_model.onnx"), Buffer.alloc(64, 0xff));
  const broken = await runCli(["model", "quantize", modelDir]);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /vision_model\.onnx: not an ONNX model/);
  assert.equal(broken.stderr.trim().split("\n").length, 1, broken.stderr);
});
