/**
 * kind "linear": score = activation(weights · embedding + bias) × scale, with the weights in a
 * NumPy file (shape [dim], [dim, 1] or [1, dim], as numpy.save writes a probe's coefficients or a
 * torch Linear's weight) or a JSON file `{"weights": [...], "bias": b}`. The simplest trained head:
 * LAION's first aesthetic predictor was one linear layer over CLIP ViT-L/14 embeddings.
 */
import { readFile } from "node:fs/promises";
import { extname } from "node:path";
import * as z from "zod";
import { errorMessage } from "../../errors.js";
import { decodeNpy } from "../../io/npy.js";
import { fromFloat16Bits } from "../float16.js";
import { ModelError } from "../model-error.js";
import { readScores } from "./head-readout.js";
import type { LinearHeadConfig } from "./score-config.js";
import { embeddingsFor, type HeadInputs, type HeadScores, type ScoreHead } from "./score-head.js";

const jsonWeightsSchema = z
  .object({
    weights: z.array(z.number()).min(1),
    bias: z.number().default(0),
  })
  .strict();

export interface LinearWeights {
  weights: Float64Array;
  bias: number;
}

export class LinearHead implements ScoreHead {
  readonly needsImageBytes = false;
  readonly files: readonly string[];

  private constructor(
    readonly name: string,
    readonly config: LinearHeadConfig,
    readonly path: string,
    readonly weights: LinearWeights,
  ) {
    this.files = [path];
  }

  static async load(
    name: string,
    config: LinearHeadConfig,
    path: string,
    context: { embeddingSize: number },
  ): Promise<LinearHead> {
    const weights = await readLinearWeights(name, path);
    if (weights.weights.length !== context.embeddingSize) {
      throw new ModelError(
        "CC_MODEL_EMBEDDING_SIZE",
        `${name} head: ${path}: ${weights.weights.length} weights, the CLIP model's embeddings are ${context.embeddingSize}-d`,
      );
    }
    return new LinearHead(name, config, path, weights);
  }

  async score(inputs: HeadInputs): Promise<HeadScores> {
    const { weights, bias } = this.weights;
    const embeddings = embeddingsFor(inputs, this.config.input, weights.length);
    const sums = new Float64Array(embeddings.rows);
    for (let row = 0; row < embeddings.rows; row++) {
      const offset = row * embeddings.dimensions;
      let sum = bias + this.config.bias;
      for (let column = 0; column < weights.length; column++) {
        sum += (weights[column] as number) * (embeddings.data[offset + column] as number);
      }
      sums[row] = sum;
    }
    return readScores(
      this.name,
      { rows: embeddings.rows, columns: 1, data: sums },
      { column: 0, activation: this.config.activation, scale: this.config.scale },
    );
  }

  async release(): Promise<void> {}
}

/** Reads a .npy or .json weights file; every problem names the head and the file. */
export async function readLinearWeights(name: string, path: string): Promise<LinearWeights> {
  const invalid = (reason: string, cause?: unknown) =>
    new ModelError("CC_MODEL_INVALID_FILE", `${name} head: ${path}: ${reason}`, { cause });
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new ModelError("CC_MODEL_MISSING_FILE", `${name} head: ${path} does not exist`);
    }
    throw invalid(errorMessage(error), error);
  }
  let parsed: LinearWeights;
  if (extname(path).toLowerCase() === ".npy") {
    let array: ReturnType<typeof decodeNpy>;
    try {
      array = decodeNpy(bytes);
    } catch (error) {
      throw invalid(errorMessage(error), error);
    }
    const { shape } = array;
    const isVector =
      shape.length === 1 || (shape.length === 2 && (shape[0] === 1 || shape[1] === 1));
    if (!isVector) {
      throw invalid(`weights of shape [${shape.join(", ")}], expected [dim], [dim, 1] or [1, dim]`);
    }
    const values = array.dtype === "<f2" ? fromFloat16Bits(array.data) : array.data;
    parsed = { weights: Float64Array.from(values), bias: 0 };
  } else {
    let document: unknown;
    try {
      document = JSON.parse(bytes.toString("utf8"));
    } catch (error) {
      throw invalid(`invalid JSON (${errorMessage(error)})`, error);
    }
    const result = jsonWeightsSchema.safeParse(document);
    if (!result.success) {
      const issue = result.error.issues[0];
      const field = issue?.path.join(".") || "(root)";
      throw invalid(`${field}: ${issue?.message.replace(/^Invalid input: /, "")}`);
    }
    parsed = { weights: Float64Array.from(result.data.weights), bias: result.data.bias };
  }
  const broken = parsed.weights.findIndex((value) => !Number.isFinite(value));
  if (broken >= 0) throw invalid(`weight ${broken} is ${parsed.weights[broken]}`);
  return parsed;
}
