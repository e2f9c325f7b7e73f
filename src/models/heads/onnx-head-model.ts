/**
 * An ONNX graph used as a head, on onnxruntime-node: opened, its input and output chosen and
 * checked, and probed once with a batch of zeros so that a graph that cannot take the input the
 * head will feed it fails at load with one line naming the file, not in the middle of a shard.
 */
import { stat } from "node:fs/promises";
import * as ort from "onnxruntime-node";
import { errorMessage } from "../../errors.js";
import { fromFloat16Bits, toFloat16Bits } from "../float16.js";
import { ModelError } from "../model-error.js";
import type { OutputMatrix } from "./head-readout.js";

export interface OnnxHeadModel {
  session: ort.InferenceSession;
  /** The head's score name and the file, as every message starts. */
  label: string;
  path: string;
  input: string;
  inputType: "float32" | "float16";
  /** The input's declared shape; names (strings) for sizes known only at run time. */
  inputShape: readonly (number | string)[];
  output: string;
}

export interface OnnxHeadOptions {
  inputName?: string | undefined;
  output?: string | undefined;
  /** onnxruntime intra-op threads; 0 lets it choose (all cores). */
  threads: number;
}

export async function openOnnxHead(
  name: string,
  path: string,
  options: OnnxHeadOptions,
): Promise<OnnxHeadModel> {
  const label = `${name} head: ${path}`;
  const file = await stat(path).catch(() => undefined);
  if (!file?.isFile()) {
    throw new ModelError("CC_MODEL_MISSING_FILE", `${name} head: ${path} does not exist`);
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(path, {
      intraOpNumThreads: options.threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      executionMode: "sequential",
      // Failures come back as exceptions with the same text; onnxruntime's own log would repeat them.
      logSeverityLevel: 4,
    });
  } catch (error) {
    throw new ModelError(
      "CC_MODEL_INVALID_FILE",
      `${label}: not a loadable ONNX model (${errorMessage(error)})`,
      { cause: error },
    );
  }
  try {
    const input = chooseInput(label, session, options.inputName);
    const output = chooseOutput(label, session, options.output);
    const metadata = session.inputMetadata.find((value) => value.name === input);
    const tensor = metadata?.isTensor ? metadata : undefined;
    const inputType = tensor?.type ?? "float32";
    if (inputType !== "float32" && inputType !== "float16") {
      throw new ModelError(
        "CC_MODEL_INPUT",
        `${label}: input ${input} is ${inputType}, expected float32 or float16`,
      );
    }
    return { session, label, path, input, inputType, inputShape: tensor?.shape ?? [], output };
  } catch (error) {
    await session.release();
    throw error;
  }
}

function chooseInput(
  label: string,
  session: ort.InferenceSession,
  inputName: string | undefined,
): string {
  const found = session.inputNames.join(", ");
  if (inputName !== undefined) {
    if (!session.inputNames.includes(inputName)) {
      throw new ModelError("CC_MODEL_INPUT", `${label}: no input ${inputName} (inputs: ${found})`);
    }
    // Every other input would need a value the head does not have.
    if (session.inputNames.length > 1) {
      throw new ModelError(
        "CC_MODEL_INPUT",
        `${label}: a head graph takes one input, this one takes ${found}`,
      );
    }
    return inputName;
  }
  const [only, ...others] = session.inputNames;
  if (only === undefined || others.length > 0) {
    throw new ModelError(
      "CC_MODEL_INPUT",
      `${label}: a head graph takes one input, this one takes ${found || "none"}`,
    );
  }
  return only;
}

function chooseOutput(
  label: string,
  session: ort.InferenceSession,
  output: string | undefined,
): string {
  if (output === undefined) {
    const first = session.outputNames[0];
    if (first === undefined) throw new ModelError("CC_MODEL_OUTPUT", `${label}: has no output`);
    return first;
  }
  if (!session.outputNames.includes(output)) {
    throw new ModelError(
      "CC_MODEL_OUTPUT",
      `${label}: no output ${output} (outputs: ${session.outputNames.join(", ")})`,
    );
  }
  return output;
}

/** Runs the graph on float32 input of shape `dims`; the output is [rows] or [rows, columns]. */
export async function runOnnxHead(
  model: OnnxHeadModel,
  data: Float32Array,
  dims: readonly number[],
): Promise<OutputMatrix> {
  const tensor =
    model.inputType === "float16"
      ? new ort.Tensor("float16", toFloat16Bits(data), dims)
      : new ort.Tensor("float32", data, dims);
  const results = await model.session.run({ [model.input]: tensor }, [model.output]);
  const output = results[model.output];
  const rows = dims[0] as number;
  if (output === undefined) {
    throw new ModelError("CC_MODEL_OUTPUT", `${model.label}: ran without ${model.output}`);
  }
  const shape = output.dims;
  const columns = shape.length === 1 ? 1 : shape.length === 2 ? (shape[1] as number) : -1;
  if (shape[0] !== rows || columns < 1) {
    throw new ModelError(
      "CC_MODEL_OUTPUT",
      `${model.label}: output ${model.output} has shape [${shape.join(", ")}], expected [${rows}] or [${rows}, k]`,
    );
  }
  let values: ArrayLike<number>;
  if (output.type === "float32" || output.type === "float64") {
    values = output.data as Float32Array | Float64Array;
  } else if (output.type === "float16") {
    values = fromFloat16Bits(output.data as Uint16Array);
  } else {
    throw new ModelError(
      "CC_MODEL_OUTPUT",
      `${model.label}: output ${model.output} is ${output.type}, expected a float type`,
    );
  }
  return { rows, columns, data: values };
}

/**
 * Runs the graph once on zeros of the shape the head will feed it, and checks that the output
 * has the column the config reads. Any failure is the file's fault, reported at load.
 */
export async function probeOnnxHead(
  model: OnnxHeadModel,
  dims: readonly number[],
  outputIndex: number,
): Promise<void> {
  const size = dims.reduce((product, dimension) => product * dimension, 1);
  let output: OutputMatrix;
  try {
    output = await runOnnxHead(model, new Float32Array(size), dims);
  } catch (error) {
    if (error instanceof ModelError) throw error;
    throw new ModelError(
      "CC_MODEL_INPUT",
      `${model.label}: fails on input ${model.input} of shape [${dims.join(", ")}] (${errorMessage(error)})`,
      { cause: error },
    );
  }
  if (outputIndex >= output.columns) {
    throw new ModelError(
      "CC_MODEL_OUTPUT",
      `${model.label}: outputIndex ${outputIndex} is out of range, output ${model.output} has ${output.columns} column${output.columns === 1 ? "" : "s"}`,
    );
  }
}

/** The declared size of an input axis, when the graph fixes it. */
export function declaredSize(model: OnnxHeadModel, axis: number): number | undefined {
  const size = model.inputShape[axis];
  return typeof size === "number" && size > 0 ? size : undefined;
}
