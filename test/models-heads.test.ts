import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import sharp from "sharp";
import {
  conceptAxis,
  generateScoreHeads,
  LINEAR_JSON_BIAS,
  meanRedness,
  REDNESS_IMAGE_SIZE,
  redMlpWeights,
} from "../scripts/score-heads/generate.js";
import {
  renderShapeImage,
  type ShapeColour,
  type ShapeName,
} from "../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { OnnxGraphBuilder, TensorType } from "../src/demo/tiny-clip/onnx-graph.js";
import { encodeNpy } from "../src/io/npy.js";
import { ClipModel, type EmbeddingMatrix } from "../src/models/clip-model.js";
import { ClipEmbedder, cosineSimilarity, embeddingRow } from "../src/models/embedder.js";
import { sigmoid, softmax } from "../src/models/heads/head-readout.js";
import {
  type ScoreHeadConfig,
  scoreHeadSchema,
  scoresConfigSchema,
} from "../src/models/heads/score-config.js";
import { ScoreHeads } from "../src/models/heads/score-heads.js";
import { ModelError } from "../src/models/model-error.js";
import { PIL_RESAMPLE, pilResize } from "../src/models/pil-resample.js";
import { jpegDeclaring, svgDeclaring } from "./support/hostile-inputs.js";
import { tempDir } from "./support/temp.js";

let workDir: string;
let headsDir: string;
let model: ClipModel;
let embedder: ClipEmbedder;

/** Red circles, then blue squares, with the captions that describe them. */
const PAIRS: { colour: ShapeColour; shape: ShapeName; index: number }[] = [
  { colour: "red", shape: "circle", index: 3 },
  { colour: "red", shape: "circle", index: 57 },
  { colour: "blue", shape: "square", index: 3 },
  { colour: "blue", shape: "square", index: 141 },
];
let pairImages: Buffer[];
let pairBatch: { image: EmbeddingMatrix; text: EmbeddingMatrix; imageBytes: Buffer[] };

before(async () => {
  workDir = await tempDir("score-heads");
  await generateTinyClipModel(join(workDir, "model"));
  headsDir = join(workDir, "heads");
  await generateScoreHeads(headsDir);
  model = await ClipModel.load(join(workDir, "model"), { intraOpThreads: 1 });
  embedder = new ClipEmbedder(model);
  pairImages = await Promise.all(
    PAIRS.map(({ colour, shape, index }) => renderShapeImage(colour, shape, index)),
  );
  pairBatch = await batchOf(
    pairImages,
    PAIRS.map(({ colour, shape }) => `a ${colour} ${shape}`),
  );
});

after(async () => {
  await model?.release();
  await rm(workDir, { recursive: true, force: true });
});

async function batchOf(images: Buffer[], captions: string[]) {
  const embedded = await embedder.embedImages(images);
  assert.deepEqual(embedded.failures, []);
  const text = (await embedder.embedTexts(captions)).embeddings;
  return { image: embedded.embeddings, text, imageBytes: images };
}

async function loadHeads(config: Record<string, unknown>, baseDir = headsDir) {
  return ScoreHeads.load(scoresOf(config), { model, baseDir, threads: 1 });
}

function scoresOf(config: Record<string, unknown>): Record<string, ScoreHeadConfig> {
  return Object.fromEntries(
    Object.entries(config).map(([name, head]) => [name, scoreHeadSchema.parse(head)]),
  );
}

/** The scores of one head over a batch, with the row errors. */
async function scoreWith(head: Record<string, unknown>, batch = pairBatch) {
  const heads = await loadHeads({ score: head });
  try {
    const scored = await heads.score(batch);
    return { values: scored.values.score ?? [], errors: scored.errors };
  } finally {
    await heads.release();
  }
}

async function loadError(config: Record<string, unknown>): Promise<ModelError> {
  try {
    const heads = await loadHeads({ punsafe: config });
    await heads.release();
  } catch (error) {
    assert.ok(error instanceof ModelError, String(error));
    assert.doesNotMatch(error.message, /\n/);
    return error;
  }
  assert.fail("the head loaded");
}

function assertClose(actual: number | null | undefined, expected: number, tolerance = 1e-5) {
  assert.ok(
    typeof actual === "number" && Math.abs(actual - expected) <= tolerance,
    `${actual} is not within ${tolerance} of ${expected}`,
  );
}

test("the generator writes the same bytes every run, a few KB in all", async () => {
  const again = join(workDir, "heads-again");
  const summary = await generateScoreHeads(again);
  for (const { path, bytes } of summary.files) {
    assert.deepEqual(await readFile(join(again, path)), await readFile(join(headsDir, path)), path);
    assert.ok(bytes < 16 * 1024, `${path} is ${bytes} bytes`);
  }
});

test("the example scores config loads all four kinds and scores red circles and blue squares as designed", async () => {
  const config = scoresConfigSchema.parse(
    JSON.parse(await readFile(join(headsDir, "scores.json"), "utf8")),
  );
  const heads = await ScoreHeads.load(config, { model, baseDir: headsDir, threads: 1 });
  try {
    assert.deepEqual(heads.names, ["punsafe", "pwatermark", "ptoxic", "AESTHETIC_SCORE"]);
    assert.equal(heads.needsImageBytes, true);
    assert.deepEqual(
      heads.files,
      ["red-mlp.onnx", "redness.onnx", "red-circle.json"].map((file) => join(headsDir, file)),
    );
    const { values, errors } = await heads.score(pairBatch);
    assert.deepEqual(errors, [null, null, null, null]);
    const empty = { rows: 0, dimensions: 48, data: new Float32Array(0) };
    assert.deepEqual(await heads.score({ image: empty, text: empty, imageBytes: [] }), {
      values: { punsafe: [], pwatermark: [], ptoxic: [], AESTHETIC_SCORE: [] },
      errors: [],
    });
    const red = [0, 1];
    const blue = [2, 3];
    for (const row of red) {
      assert.ok((values.punsafe?.[row] ?? 0) > 0.99, `punsafe ${values.punsafe}`);
      assert.ok((values.pwatermark?.[row] ?? 0) > 0.9, `pwatermark ${values.pwatermark}`);
      assert.ok((values.ptoxic?.[row] ?? 0) > 0.8, `ptoxic ${values.ptoxic}`);
      assert.ok((values.AESTHETIC_SCORE?.[row] ?? 0) > 9.9, `aesthetic ${values.AESTHETIC_SCORE}`);
    }
    for (const row of blue) {
      assert.ok((values.punsafe?.[row] ?? 1) < 0.01, `punsafe ${values.punsafe}`);
      assert.ok((values.pwatermark?.[row] ?? 1) < 0.3, `pwatermark ${values.pwatermark}`);
      assert.ok((values.ptoxic?.[row] ?? 1) < 0, `ptoxic ${values.ptoxic}`);
      assert.ok((values.AESTHETIC_SCORE?.[row] ?? 10) < 0.1, `aesthetic ${values.AESTHETIC_SCORE}`);
    }
  } finally {
    await heads.release();
  }
});

test("an ONNX MLP head gives what the same MLP computes in JavaScript, on either embedding", async () => {
  const weights = redMlpWeights();
  const expected = (matrix: EmbeddingMatrix, row: number) => {
    const x = embeddingRow(matrix, row);
    const logits = [0, 1].map((output) => {
      let logit = weights.outputBias[output] as number;
      for (let unit = 0; unit < weights.hiddenSize; unit++) {
        let hidden = weights.hiddenBias[unit] as number;
        x.forEach((value, dimension) => {
          hidden +=
            value * (weights.hiddenWeights[dimension * weights.hiddenSize + unit] as number);
        });
        logit += Math.max(0, hidden) * (weights.outputWeights[unit * 2 + output] as number);
      }
      return logit;
    });
    return softmax(logits)[1] as number;
  };
  for (const input of ["image", "text"] as const) {
    const { values, errors } = await scoreWith({
      kind: "onnx",
      input,
      model: "red-mlp.onnx",
      output: "logits",
      activation: "softmax",
      outputIndex: 1,
    });
    assert.deepEqual(errors, [null, null, null, null]);
    values.forEach((value, row) => {
      assertClose(value, expected(pairBatch[input], row));
    });
  }
  // The raw logit column with a scale: no activation, just the number the graph gave.
  const raw = await scoreWith({ kind: "onnx", model: "red-mlp.onnx", outputIndex: 1, scale: 0.5 });
  assert.ok((raw.values[0] ?? 0) > 3, `red logit / 2 = ${raw.values[0]}`);
  assertClose(raw.values[2], 0);
});

test("a float16 head graph is fed float16 embeddings", async () => {
  const graph = new OnnxGraphBuilder("half_head");
  graph.input("embedding", TensorType.FLOAT16, ["batch", 48]);
  graph.node("Cast", ["embedding"], "embedding_float", { to: TensorType.FLOAT });
  graph.floatTensor("axis", [48, 1], conceptAxis("red", "circle"));
  graph.node("MatMul", ["embedding_float", "axis"], "cosine");
  graph.output("cosine", TensorType.FLOAT, ["batch", 1]);
  const path = join(workDir, "half.onnx");
  await writeFile(path, graph.encode("float16 input"));
  const { values } = await scoreWith({ kind: "onnx", model: path });
  values.forEach((value, row) => {
    const cosine = cosineSimilarity(
      embeddingRow(pairBatch.image, row),
      conceptAxis("red", "circle"),
    );
    assertClose(value, cosine, 2e-3);
  });
});

test("a linear head along the red-circle axis scores cos + bias, from .npy and from .json", async () => {
  const axis = conceptAxis("red", "circle");
  const cosines = PAIRS.map((_, row) => cosineSimilarity(embeddingRow(pairBatch.image, row), axis));
  assert.ok((cosines[0] ?? 0) > 0.9 && Math.abs(cosines[2] ?? 1) < 0.1, `cosines ${cosines}`);

  const npy = await scoreWith({ kind: "linear", weights: "red-circle.npy", bias: 0.05 });
  npy.values.forEach((value, row) => {
    assertClose(value, (cosines[row] as number) + 0.05);
  });

  const json = await scoreWith({ kind: "linear", weights: "red-circle.json", bias: 0.05 });
  json.values.forEach((value, row) => {
    assertClose(value, (cosines[row] as number) + LINEAR_JSON_BIAS + 0.05);
  });

  const squashed = await scoreWith({
    kind: "linear",
    weights: "red-circle.npy",
    activation: "sigmoid",
    scale: 10,
  });
  squashed.values.forEach((value, row) => {
    assertClose(value, 10 * sigmoid(cosines[row] as number));
  });
});

test("zero-shot prompts pick the prompt that describes the image, as CLIP's softmax does", async () => {
  const positive = ["a red circle", "a red square"];
  const negative = ["a blue square", "a green star"];
  const { values, errors } = await scoreWith({ kind: "zero-shot", positive, negative });
  assert.deepEqual(errors, [null, null, null, null]);
  const prompts = (await embedder.embedTexts([...positive, ...negative])).embeddings;
  values.forEach((value, row) => {
    const image = embeddingRow(pairBatch.image, row);
    const probabilities = softmax(
      [0, 1, 2, 3].map((prompt) => 100 * cosineSimilarity(image, embeddingRow(prompts, prompt))),
    );
    assertClose(value, (probabilities[0] as number) + (probabilities[1] as number));
  });
  assert.ok((values[0] ?? 0) > 0.99 && (values[2] ?? 1) < 0.01, `scores ${values}`);

  // Captions through the text side, with a temperature that softens and a scale to 0–10.
  const soft = await scoreWith({
    kind: "zero-shot",
    input: "text",
    positive: ["a red circle"],
    negative: ["a blue square"],
    temperature: 5,
    scale: 10,
  });
  assert.ok((soft.values[0] ?? 0) > 9 && (soft.values[0] ?? 10) < 10, `scores ${soft.values}`);
  assert.ok((soft.values[2] ?? 10) < 1 && (soft.values[2] ?? 0) > 0, `scores ${soft.values}`);
});

test("the pixel classifier puts warm images above neutral above cool, with the redness JavaScript measures", async () => {
  const images = [
    await renderShapeImage("red", "star", 7),
    await renderShapeImage("orange", "square", 2),
    await renderShapeImage("white", "triangle", 5),
    await renderShapeImage("blue", "circle", 9),
  ];
  const batch = await batchOf(images, ["", "", "", ""]);
  const { values, errors } = await scoreWith(
    {
      kind: "onnx-pixels",
      model: "redness.onnx",
      imageSize: REDNESS_IMAGE_SIZE,
      activation: "softmax",
      outputIndex: 1,
    },
    batch,
  );
  assert.deepEqual(errors, [null, null, null, null]);
  for (const [row, bytes] of images.entries()) {
    const { data, info } = await sharp(bytes)
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    const squashed = pilResize(
      { data, height: info.height, width: info.width },
      REDNESS_IMAGE_SIZE,
      REDNESS_IMAGE_SIZE,
      PIL_RESAMPLE.bilinear,
    );
    const redness = meanRedness(squashed.data);
    assertClose(values[row], softmax([-10 * redness, 10 * redness])[1] as number, 1e-4);
  }
  const [red, orange, white, blue] = values as [number, number, number, number];
  assert.ok(red > 0.6 && orange > 0.6, `scores ${values}`);
  assert.ok(Math.abs(white - 0.5) < 0.01, `scores ${values}`);
  assert.ok(blue < 0.1, `scores ${values}`);
});

test("squash keeps the whole picture and center_crop only its middle", async () => {
  // 300 × 100: red in the left third, white elsewhere.
  const width = 300;
  const height = 100;
  const rgb = Buffer.alloc(width * height * 3, 255);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width / 3; x++) rgb.set([220, 30, 30], (y * width + x) * 3);
  }
  const wide = await sharp(rgb, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
  const batch = await batchOf([wide], [""]);
  const head = {
    kind: "onnx-pixels",
    model: "redness.onnx",
    imageSize: REDNESS_IMAGE_SIZE,
    activation: "softmax",
    outputIndex: 1,
  };
  const squash = await scoreWith({ ...head, resizeMode: "squash" }, batch);
  const crop = await scoreWith({ ...head, resizeMode: "center_crop" }, batch);
  assert.ok((squash.values[0] ?? 0) > 0.85, `squash ${squash.values}`);
  assert.ok((crop.values[0] ?? 1) < 0.55, `center_crop ${crop.values}`);
});

test("a head that returns NaN on a row gives that row null and an error; the other rows and heads are intact", async () => {
  const heads = await loadHeads({
    punsafe: { kind: "onnx", model: "unstable-red-circle.onnx" },
    AESTHETIC_SCORE: {
      kind: "zero-shot",
      positive: ["a red circle"],
      negative: ["a blue square"],
      scale: 10,
    },
  });
  try {
    const { values, errors } = await heads.score(pairBatch);
    assert.deepEqual(errors, [
      null,
      null,
      "punsafe head returned NaN",
      "punsafe head returned NaN",
    ]);
    assert.equal(values.punsafe?.[2], null);
    assert.equal(values.punsafe?.[3], null);
    for (const row of [0, 1]) {
      const cosine = cosineSimilarity(
        embeddingRow(pairBatch.image, row),
        conceptAxis("red", "circle"),
      );
      assertClose(values.punsafe?.[row], Math.sqrt(cosine - 0.2), 1e-5);
    }
    assert.ok(values.AESTHETIC_SCORE?.every((value) => typeof value === "number"));
  } finally {
    await heads.release();
  }
});

test("an image that does not decode is a row error of the pixel head alone, joined with the row's other errors", async () => {
  const truncated = pairImages[2]?.subarray(0, 600) as Buffer;
  const garbage = Buffer.from("this is not an image at all");
  const heads = await loadHeads({
    punsafe: { kind: "onnx", model: "unstable-red-circle.onnx" },
    pwatermark: {
      kind: "onnx-pixels",
      model: "redness.onnx",
      imageSize: REDNESS_IMAGE_SIZE,
      activation: "softmax",
      outputIndex: 1,
    },
  });
  try {
    const { values, errors } = await heads.score({
      ...pairBatch,
      imageBytes: [pairImages[0] as Buffer, garbage, truncated, pairImages[3] as Buffer],
    });
    assert.deepEqual(errors, [
      null,
      "pwatermark head: image does not decode: invalid image: unsupported format",
      "punsafe head returned NaN; pwatermark head: image does not decode: truncated image",
      "punsafe head returned NaN",
    ]);
    assert.deepEqual(
      values.pwatermark?.map((value) => value === null),
      [false, true, true, false],
    );
    assert.ok(typeof values.punsafe?.[1] === "number");
    await assert.rejects(
      heads.score({ image: pairBatch.image, text: pairBatch.text }),
      /pwatermark head reads pixels: the batch has no image bytes/,
    );
  } finally {
    await heads.release();
  }
});

test("the pixel head refuses a decompression bomb and an SVG from their headers, before decoding", async () => {
  const { values, errors } = await scoreWith(
    {
      kind: "onnx-pixels",
      model: "redness.onnx",
      imageSize: REDNESS_IMAGE_SIZE,
      activation: "softmax",
      outputIndex: 1,
    },
    {
      ...pairBatch,
      imageBytes: [
        pairImages[0] as Buffer,
        await jpegDeclaring(16000, 16000),
        svgDeclaring(16000, 16000),
        pairImages[3] as Buffer,
      ],
    },
  );
  assert.deepEqual(errors, [
    null,
    "score head: image refused: decompression bomb: 16000x16000 pixels, over the limit of 89478485",
    "score head: image refused: unsupported image format svg",
    null,
  ]);
  assert.deepEqual(
    values.map((value) => value === null),
    [false, true, true, false],
  );
});

test("a head that cannot load stops with one line naming the head and the file", async () => {
  const missing = await loadError({ kind: "onnx", model: "models/nsfw.onnx" });
  assert.equal(missing.code, "CC_MODEL_MISSING_FILE");
  assert.equal(
    missing.message,
    `punsafe head: ${join(headsDir, "models/nsfw.onnx")} does not exist`,
  );

  const notOnnx = join(workDir, "not-a-model.onnx");
  await writeFile(notOnnx, "not protobuf");
  const invalid = await loadError({ kind: "onnx", model: notOnnx });
  assert.equal(invalid.code, "CC_MODEL_INVALID_FILE");
  assert.match(invalid.message, /^punsafe head: .*not-a-model\.onnx: not a loadable ONNX model/);

  const wrongInput = await loadError({
    kind: "onnx",
    model: "red-mlp.onnx",
    inputName: "dense_input",
  });
  assert.equal(wrongInput.code, "CC_MODEL_INPUT");
  assert.match(wrongInput.message, /red-mlp\.onnx: no input dense_input \(inputs: embedding\)$/);

  const wrongOutput = await loadError({ kind: "onnx", model: "red-mlp.onnx", output: "probs" });
  assert.equal(wrongOutput.code, "CC_MODEL_OUTPUT");
  assert.match(wrongOutput.message, /red-mlp\.onnx: no output probs \(outputs: logits\)$/);

  const wrongColumn = await loadError({ kind: "onnx", model: "red-mlp.onnx", outputIndex: 2 });
  assert.equal(wrongColumn.code, "CC_MODEL_OUTPUT");
  assert.match(wrongColumn.message, /outputIndex 2 is out of range, output logits has 2 columns$/);

  const wrongPixels = await loadError({
    kind: "onnx-pixels",
    model: "redness.onnx",
    imageSize: 64,
  });
  assert.equal(wrongPixels.code, "CC_MODEL_INPUT");
  assert.match(
    wrongPixels.message,
    /redness\.onnx: input pixel_values takes 32×32 images, imageSize is 64$/,
  );
});

test("a head trained for another CLIP's embedding size is refused at load", async () => {
  // Declared 768-d input, as LAION's ViT-L/14 NSFW detector has.
  const declared = new OnnxGraphBuilder("vit_l_head");
  declared.input("dense_input", TensorType.FLOAT, ["batch", 768]);
  declared.floatTensor("weights", [768, 1], new Float32Array(768));
  declared.node("MatMul", ["dense_input", "weights"], "score");
  declared.output("score", TensorType.FLOAT, ["batch", 1]);
  await writeFile(join(workDir, "vit-l.onnx"), declared.encode("768-d head"));
  const declaredError = await loadError({ kind: "onnx", model: join(workDir, "vit-l.onnx") });
  assert.equal(declaredError.code, "CC_MODEL_EMBEDDING_SIZE");
  assert.match(
    declaredError.message,
    /vit-l\.onnx: input dense_input takes 768-d embeddings, the CLIP model's are 48-d$/,
  );

  // Size left symbolic: the probe batch finds out.
  const symbolic = new OnnxGraphBuilder("symbolic_head");
  symbolic.input("embedding", TensorType.FLOAT, ["batch", "dim"]);
  symbolic.floatTensor("weights", [768, 1], new Float32Array(768));
  symbolic.node("MatMul", ["embedding", "weights"], "score");
  symbolic.output("score", TensorType.FLOAT, ["batch", 1]);
  await writeFile(join(workDir, "symbolic.onnx"), symbolic.encode("768-d head, symbolic input"));
  const probeError = await loadError({ kind: "onnx", model: join(workDir, "symbolic.onnx") });
  assert.equal(probeError.code, "CC_MODEL_INPUT");
  assert.match(
    probeError.message,
    /symbolic\.onnx: fails on input embedding of shape \[2, 48\] \(/,
  );

  await writeFile(join(workDir, "short.json"), JSON.stringify({ weights: [1, 2, 3] }));
  const linearError = await loadError({ kind: "linear", weights: join(workDir, "short.json") });
  assert.equal(linearError.code, "CC_MODEL_EMBEDDING_SIZE");
  assert.match(
    linearError.message,
    /short\.json: 3 weights, the CLIP model's embeddings are 48-d$/,
  );
});

test("linear weights files are checked: shape, JSON fields, finite values, existence", async () => {
  const matrix = join(workDir, "matrix.npy");
  await writeFile(matrix, encodeNpy({ dtype: "<f4", shape: [4, 12], data: new Float32Array(48) }));
  const shapeError = await loadError({ kind: "linear", weights: matrix });
  assert.equal(shapeError.code, "CC_MODEL_INVALID_FILE");
  assert.match(shapeError.message, /matrix\.npy: weights of shape \[4, 12\], expected \[dim\]/);

  const misnamed = join(workDir, "misnamed.json");
  await writeFile(misnamed, JSON.stringify({ weight: [1] }));
  assert.match(
    (await loadError({ kind: "linear", weights: misnamed })).message,
    /misnamed\.json: weights: expected array, received undefined$/,
  );

  const infinite = join(workDir, "infinite.npy");
  const values = new Float32Array(48);
  values[5] = Number.POSITIVE_INFINITY;
  await writeFile(infinite, encodeNpy({ dtype: "<f4", shape: [48], data: values }));
  assert.match(
    (await loadError({ kind: "linear", weights: infinite })).message,
    /infinite\.npy: weight 5 is Infinity$/,
  );

  const missing = await loadError({ kind: "linear", weights: "nowhere.npy" });
  assert.equal(missing.code, "CC_MODEL_MISSING_FILE");
  assert.equal(missing.message, `punsafe head: ${join(headsDir, "nowhere.npy")} does not exist`);
});

test("the schema rejects a bad head config with a message naming the field", () => {
  const issues = (value: unknown) => {
    const result = scoresConfigSchema.safeParse(value);
    assert.equal(result.success, false);
    return (result.error?.issues ?? []).map((issue) => `${issue.path.join(".")}: ${issue.message}`);
  };
  assert.deepEqual(issues({ punsafe: { kind: "onnx" } }), [
    "punsafe.model: expected the path of an .onnx file",
  ]);
  assert.deepEqual(issues({ pwatermark: { kind: "nsfw-detector", model: "x.onnx" } }), [
    "pwatermark.kind: expected kind onnx, linear, zero-shot or onnx-pixels",
  ]);
  assert.deepEqual(issues({ ptoxic: { kind: "zero-shot", positive: [], negative: ["a poem"] } }), [
    "ptoxic.positive: expected at least one positive prompt",
  ]);
  assert.deepEqual(issues({ punsafe: { kind: "linear", weights: "w.txt" } }), [
    'punsafe.weights: expected a .npy file or a .json file {"weights": [...], "bias": b}',
  ]);
  assert.deepEqual(issues({ punsafe: { kind: "onnx", model: "a.onnx", treshold: 0.5 } }), [
    'punsafe: Unrecognized key: "treshold"',
  ]);
  assert.deepEqual(issues({ nsfw: {} }), [': Unrecognized key: "nsfw"']);
});

test("by default every score is a zero-shot prompt set, written out in the config, that loads and scores", async () => {
  const config = scoresConfigSchema.parse({});
  assert.deepEqual(Object.keys(config), ["punsafe", "pwatermark", "ptoxic", "AESTHETIC_SCORE"]);
  for (const head of Object.values(config)) {
    assert.equal(head.kind, "zero-shot");
    if (head.kind !== "zero-shot") continue;
    assert.ok(head.positive.length > 0 && head.negative.length > 0);
  }
  assert.equal(config.ptoxic.kind === "zero-shot" && config.ptoxic.input, "text");
  assert.equal(config.AESTHETIC_SCORE.kind === "zero-shot" && config.AESTHETIC_SCORE.scale, 10);

  const heads = await ScoreHeads.load(config, { model, baseDir: headsDir });
  try {
    assert.equal(heads.needsImageBytes, false);
    assert.deepEqual(heads.files, []);
    const { values, errors } = await heads.score(pairBatch);
    assert.deepEqual(errors, [null, null, null, null]);
    for (const name of ["punsafe", "pwatermark", "ptoxic"]) {
      assert.ok(
        values[name]?.every((value) => value !== null && value >= 0 && value <= 1),
        name,
      );
    }
    assert.ok(
      values.AESTHETIC_SCORE?.every((value) => value !== null && value >= 0 && value <= 10),
    );
  } finally {
    await heads.release();
  }
});
