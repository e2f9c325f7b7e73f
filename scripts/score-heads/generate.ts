/**
 * Writes small score heads whose answers are known on the tiny fixture CLIP model's embeddings and
 * on the sample's coloured-shape images: one of each kind, for the tests and as examples of the
 * file formats a user's own heads take.
 *
 *   npx tsx scripts/score-heads/generate.ts --out DIR
 *
 * - red-mlp.onnx          kind onnx: an MLP over the 48-d embedding, logits [not red, red]
 * - unstable-red-circle.onnx  kind onnx: sqrt(cos(red circle) − 0.2), NaN away from red circles
 * - red-circle.npy        kind linear: the red-circle axis, shape [48, 1] float32
 * - red-circle.json       kind linear: the same axis as {"weights": [...], "bias": -0.1}
 * - redness.onnx          kind onnx-pixels: how red a 32 × 32 ImageNet-normalised image is,
 *                         logits [not red, red]
 * - scores.json           a `scores` config using all four kinds over these files
 *
 * The weights are designed, not trained, from the tiny CLIP model's concept space: every colour
 * and shape pair has its own orthonormal axis, and both towers put a red circle (image or caption)
 * within a few degrees of the red-circle axis. Deterministic: the same bytes on every run.
 */
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { ShapeColour, ShapeName } from "../../src/demo/sample/shape-images.js";
import { SHAPE_COLOURS, SHAPE_NAMES } from "../../src/demo/sample/wat-generator.js";
import {
  COLOUR_AXES,
  jointProjection,
  PROJECTION_DIM,
  SHAPE_AXES,
} from "../../src/demo/tiny-clip/concept-space.js";
import { json, type ModelFile, writeModelFolder } from "../../src/demo/tiny-clip/generate.js";
import { OnnxGraphBuilder, TensorType } from "../../src/demo/tiny-clip/onnx-graph.js";
import { encodeNpy } from "../../src/io/npy.js";
import { IMAGENET_MEAN, IMAGENET_STD } from "../../src/models/heads/score-config.js";

/** Side of the images the redness classifier takes. */
export const REDNESS_IMAGE_SIZE = 32;
/** Logit per unit of mean redness (R − (G + B) / 2, channels in [0, 1]). */
const REDNESS_GAIN = 10;
/** A hidden unit of the MLP fires once the embedding's cosine with its axis passes this. */
const MLP_THRESHOLD = 0.1;
const MLP_GAIN = 8;
/** Bias of the JSON linear head, and the cosine below which the unstable head returns NaN. */
export const LINEAR_JSON_BIAS = -0.1;
export const UNSTABLE_THRESHOLD = 0.2;

/** The unit axis of one colour-and-shape pair in the tiny CLIP model's embedding space. */
export function conceptAxis(colour: ShapeColour, shape: ShapeName): Float32Array {
  const row = COLOUR_AXES.indexOf(colour) * SHAPE_AXES.length + SHAPE_AXES.indexOf(shape);
  return jointProjection().slice(row * PROJECTION_DIM, (row + 1) * PROJECTION_DIM);
}

export interface MlpWeights {
  /** [PROJECTION_DIM, hidden], row-major, as the graph's first MatMul takes it. */
  hiddenWeights: Float32Array;
  hiddenBias: Float32Array;
  /** [hidden, 2]. */
  outputWeights: Float32Array;
  outputBias: Float32Array;
  hiddenSize: number;
}

/**
 * One hidden unit per colour-and-shape pair, ReLU(cos − threshold); the two logits sum the units
 * of non-red pairs and of red pairs. Softmax column 1 is then "the image (or caption) is red".
 */
export function redMlpWeights(): MlpWeights {
  const pairs = SHAPE_COLOURS.flatMap((colour) => SHAPE_NAMES.map((shape) => ({ colour, shape })));
  const hiddenSize = pairs.length;
  const hiddenWeights = new Float32Array(PROJECTION_DIM * hiddenSize);
  const outputWeights = new Float32Array(hiddenSize * 2);
  pairs.forEach(({ colour, shape }, unit) => {
    conceptAxis(colour, shape).forEach((value, dimension) => {
      hiddenWeights[dimension * hiddenSize + unit] = value;
    });
    outputWeights[unit * 2 + (colour === "red" ? 1 : 0)] = MLP_GAIN;
  });
  return {
    hiddenWeights,
    hiddenBias: new Float32Array(hiddenSize).fill(-MLP_THRESHOLD),
    outputWeights,
    outputBias: new Float32Array(2),
    hiddenSize,
  };
}

function redMlpGraph(): Uint8Array {
  const weights = redMlpWeights();
  const graph = new OnnxGraphBuilder("red_mlp");
  const input = graph.input("embedding", TensorType.FLOAT, ["batch", PROJECTION_DIM]);
  graph.floatTensor("hidden_weights", [PROJECTION_DIM, weights.hiddenSize], weights.hiddenWeights);
  graph.floatTensor("hidden_bias", [weights.hiddenSize], weights.hiddenBias);
  graph.floatTensor("output_weights", [weights.hiddenSize, 2], weights.outputWeights);
  graph.floatTensor("output_bias", [2], weights.outputBias);
  graph.node("MatMul", [input, "hidden_weights"], "hidden_linear");
  graph.node("Add", ["hidden_linear", "hidden_bias"], "hidden_preactivation");
  graph.node("Relu", ["hidden_preactivation"], "hidden");
  graph.node("MatMul", ["hidden", "output_weights"], "output_linear");
  graph.node("Add", ["output_linear", "output_bias"], "logits");
  graph.output("logits", TensorType.FLOAT, ["batch", 2]);
  return graph.encode("score head: is the tiny CLIP embedding red? logits [not red, red]");
}

/** sqrt(cos − threshold): a head that returns NaN on every row far from the red-circle axis. */
function unstableGraph(): Uint8Array {
  const graph = new OnnxGraphBuilder("unstable_red_circle");
  const input = graph.input("embedding", TensorType.FLOAT, ["batch", PROJECTION_DIM]);
  graph.floatTensor("axis", [PROJECTION_DIM, 1], conceptAxis("red", "circle"));
  graph.floatTensor("threshold", [], [UNSTABLE_THRESHOLD]);
  graph.node("MatMul", [input, "axis"], "cosine");
  graph.node("Sub", ["cosine", "threshold"], "excess");
  graph.node("Sqrt", ["excess"], "score");
  graph.output("score", TensorType.FLOAT, ["batch", 1]);
  return graph.encode("score head: sqrt(cos(red circle) - 0.2), NaN below 0.2");
}

/**
 * ImageNet-normalised pixels back to [0, 1], redness R − (G + B) / 2 per pixel (a 1 × 1
 * convolution), its mean over the image, and the logits [−gain · redness, gain · redness].
 */
function rednessGraph(): Uint8Array {
  const size = REDNESS_IMAGE_SIZE;
  const graph = new OnnxGraphBuilder("redness");
  const input = graph.input("pixel_values", TensorType.FLOAT, ["batch", 3, size, size]);
  graph.floatTensor("std", [1, 3, 1, 1], IMAGENET_STD);
  graph.floatTensor("mean", [1, 3, 1, 1], IMAGENET_MEAN);
  graph.floatTensor("redness_weights", [1, 3, 1, 1], [1, -0.5, -0.5]);
  graph.floatTensor("logit_gains", [2], [-REDNESS_GAIN, REDNESS_GAIN]);
  graph.node("Mul", [input, "std"], "scaled");
  graph.node("Add", ["scaled", "mean"], "rgb");
  graph.node("Conv", ["rgb", "redness_weights"], "redness_map");
  graph.node("ReduceMean", ["redness_map"], "redness", { axes: [2, 3], keepdims: 0 });
  graph.node("Mul", ["redness", "logit_gains"], "logits");
  graph.output("logits", TensorType.FLOAT, ["batch", 2]);
  return graph.encode("score head over pixels: how red the image is, logits [not red, red]");
}

/** The mean redness the classifier measures, from RGB bytes: what a test checks it against. */
export function meanRedness(rgb: Uint8Array): number {
  let sum = 0;
  const pixels = rgb.length / 3;
  for (let pixel = 0; pixel < pixels; pixel++) {
    const [red, green, blue] = [rgb[pixel * 3], rgb[pixel * 3 + 1], rgb[pixel * 3 + 2]];
    sum += ((red as number) - ((green as number) + (blue as number)) / 2) / 255;
  }
  return sum / pixels;
}

/** A `scores` section that uses every head kind over the generated files. */
function exampleScoresConfig(): object {
  return {
    punsafe: {
      kind: "onnx",
      input: "image",
      model: "red-mlp.onnx",
      activation: "softmax",
      outputIndex: 1,
    },
    pwatermark: {
      kind: "onnx-pixels",
      model: "redness.onnx",
      imageSize: REDNESS_IMAGE_SIZE,
      resizeMode: "squash",
      mean: [...IMAGENET_MEAN],
      std: [...IMAGENET_STD],
      activation: "softmax",
      outputIndex: 1,
    },
    ptoxic: { kind: "linear", input: "text", weights: "red-circle.json" },
    AESTHETIC_SCORE: {
      kind: "zero-shot",
      input: "image",
      positive: ["a red circle"],
      negative: ["a blue square"],
      temperature: 100,
      scale: 10,
    },
  };
}

export interface ScoreHeadsSummary {
  folder: string;
  files: { path: string; bytes: number }[];
}

export async function generateScoreHeads(outDir: string): Promise<ScoreHeadsSummary> {
  const folder = resolve(outDir);
  const axis = conceptAxis("red", "circle");
  const files: ModelFile[] = [
    ["red-mlp.onnx", redMlpGraph()],
    ["unstable-red-circle.onnx", unstableGraph()],
    ["red-circle.npy", encodeNpy({ dtype: "<f4", shape: [PROJECTION_DIM, 1], data: axis })],
    ["red-circle.json", json({ weights: Array.from(axis), bias: LINEAR_JSON_BIAS })],
    ["redness.onnx", rednessGraph()],
    ["scores.json", json(exampleScoresConfig())],
  ];
  return { folder, files: await writeModelFolder(folder, files) };
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { out: { type: "string" } } });
  if (values.out === undefined) {
    process.stderr.write("usage: generate.ts --out DIR\n");
    process.exitCode = 2;
    return;
  }
  const summary = await generateScoreHeads(values.out);
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
