/**
 * One ONNX tower of a model folder on onnxruntime-node (the CPU build bundled with the package):
 * opened and checked against the input and output names its layout requires, each mismatch one
 * clear line, then run on a batch with its output read back as a float32 matrix whatever float
 * type the export writes. CLIP's two towers and a text-only model's one are all opened here.
 */
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { fromFloat16Bits } from "./float16.js";
import { ModelError } from "./model-error.js";
import { encodeWithWeightsInFile } from "./onnx-weights-in-file.js";

/** Raw embeddings, row-major [rows, dimensions]. */
export interface EmbeddingMatrix {
  rows: number;
  dimensions: number;
  data: Float32Array;
}

/** The names a tower's graph must use. */
export interface TowerSignature {
  input: string;
  /** Inputs the graph may also take; whoever runs the tower feeds them when it does. */
  optionalInputs: readonly string[];
  output: string;
  /** Element type of the input when the graph does not declare it. */
  defaultInputType: ort.Tensor.Type;
}

/** A tower's session and what its graph declares about its main input. */
export interface Tower {
  session: ort.InferenceSession;
  path: string;
  signature: TowerSignature;
  inputType: ort.Tensor.Type;
  inputShape: readonly (number | string)[];
  inputNames: readonly string[];
}

/**
 * Opens `path`; `rewrite`, when given, sees the file's bytes first and may return a graph decoded
 * from them to run in their place (undefined keeps the file as it is). The rewritten graph's
 * weights are read from the file where they are.
 */
export async function openTower(
  path: string,
  signature: TowerSignature,
  options: ort.InferenceSession.SessionOptions,
  rewrite?: (bytes: Uint8Array) => onnxProto.onnx.IModelProto | undefined,
): Promise<Tower> {
  let session: ort.InferenceSession;
  try {
    const bytes = rewrite === undefined ? undefined : await readFile(path);
    const rewritten = bytes === undefined ? undefined : rewrite?.(bytes);
    if (bytes === undefined || rewritten === undefined) {
      session = await ort.InferenceSession.create(path, options);
    } else {
      const model = encodeWithWeightsInFile(rewritten, bytes, basename(path));
      const extra = options.extra as { session?: Record<string, unknown> } | undefined;
      session = await ort.InferenceSession.create(model, {
        ...options,
        extra: {
          ...extra,
          session: {
            ...extra?.session,
            model_external_initializers_file_folder_path: dirname(path),
          },
        },
      });
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ModelError(
      "CC_MODEL_INVALID_FILE",
      `${path}: not a loadable ONNX model (${reason})`,
      {
        cause: error,
      },
    );
  }
  try {
    const { input, optionalInputs, output } = signature;
    const allowedInputs = [input, ...optionalInputs];
    const unexpected = session.inputNames.filter((name) => !allowedInputs.includes(name));
    if (!session.inputNames.includes(input) || unexpected.length > 0) {
      const optional =
        optionalInputs.length > 0 ? ` (+ optional ${optionalInputs.join(", ")})` : "";
      throw new ModelError(
        "CC_MODEL_INPUT",
        `${path}: expected input ${input}${optional}, found ${session.inputNames.join(", ")}`,
      );
    }
    if (!session.outputNames.includes(output)) {
      throw new ModelError(
        "CC_MODEL_OUTPUT",
        `${path}: expected output ${output}, found ${session.outputNames.join(", ")}`,
      );
    }
    const metadata = session.inputMetadata.find((value) => value.name === input);
    const tensorMetadata = metadata?.isTensor ? metadata : undefined;
    return {
      session,
      path,
      signature,
      inputType: tensorMetadata?.type ?? signature.defaultInputType,
      inputShape: tensorMetadata?.shape ?? [],
      inputNames: session.inputNames,
    };
  } catch (error) {
    await session.release();
    throw error;
  }
}

/** The size the graph fixes for one axis of the main input, if it fixes one. */
export function fixedInputSize(tower: Tower, axis: number): number | undefined {
  const size = tower.inputShape[axis];
  return typeof size === "number" && size > 0 ? size : undefined;
}

/** Runs a tower on a batch of `rows`; the output must be [rows, dimensions] floats. */
export async function runTower(
  tower: Tower,
  feeds: Record<string, ort.Tensor>,
  rows: number,
): Promise<EmbeddingMatrix> {
  const { output } = tower.signature;
  const results = await tower.session.run(feeds, [output]);
  const embeds = results[output];
  if (embeds === undefined) {
    throw new ModelError("CC_MODEL_OUTPUT", `${tower.path}: ran without ${output}`);
  }
  const dimensions = embeds.dims.length === 2 ? (embeds.dims[1] as number) : -1;
  if (dimensions <= 0 || embeds.dims[0] !== rows) {
    throw new ModelError(
      "CC_MODEL_OUTPUT",
      `${tower.path}: ${output} has shape [${embeds.dims.join(", ")}], expected [${rows}, dimensions]`,
    );
  }
  let data: Float32Array;
  if (embeds.type === "float32") data = embeds.data as Float32Array;
  else if (embeds.type === "float16") data = fromFloat16Bits(embeds.data as Uint16Array);
  else {
    throw new ModelError("CC_MODEL_OUTPUT", `${tower.path}: ${output} is ${embeds.type}`);
  }
  return { rows, dimensions, data };
}
