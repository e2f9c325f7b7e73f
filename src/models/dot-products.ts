/**
 * Dot products of two sets of row vectors, A·Bᵀ, on ONNX Runtime's CPU kernels (MLAS: SIMD and
 * every core). k-means and semantic dedup spend nearly all their time in these products; a
 * JavaScript loop runs them about two orders of magnitude slower. The graph is one standard
 * `Gemm` node (transB = 1) written with onnx-proto, so no model file is needed.
 */
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";

const { onnx } = onnxProto;
const OPSET_VERSION = 13;
const IR_VERSION = 7;

/** A·Bᵀ for row-major float32 matrices; one ONNX Runtime session, reused for every call. */
export class DotProducts {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async open(threads = 0): Promise<DotProducts> {
    return new DotProducts(await cpuSession(gemmModel(), threads));
  }

  /**
   * `a` holds `rowsA` rows of `dim` values, `b` holds `rowsB`; the result is rowsA × rowsB,
   * row-major: result[i·rowsB + j] = a_i · b_j.
   */
  async products(
    a: Float32Array,
    rowsA: number,
    b: Float32Array,
    rowsB: number,
    dim: number,
  ): Promise<Float32Array> {
    if (rowsA === 0 || rowsB === 0) return new Float32Array(0);
    const output = await this.session.run({
      a: new ort.Tensor("float32", a.subarray(0, rowsA * dim), [rowsA, dim]),
      b: new ort.Tensor("float32", b.subarray(0, rowsB * dim), [rowsB, dim]),
    });
    return (output.c as ort.Tensor).data as Float32Array;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** A session of a model built in code, on the CPU kernels, `threads` threads (0: every core). */
export function cpuSession(model: Uint8Array, threads: number): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    executionProviders: ["cpu"],
    intraOpNumThreads: threads,
    graphOptimizationLevel: "all",
  });
}

function gemmModel(): Uint8Array {
  const tensor = (name: string, dims: string[]): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((dimParam) => ({ dimParam })) },
      },
    },
  });
  const model: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    producerName: "clipcrawl",
    opsetImport: [{ domain: "", version: OPSET_VERSION }],
    graph: {
      name: "dot_products",
      node: [
        {
          opType: "Gemm",
          name: "a_bt",
          input: ["a", "b"],
          output: ["c"],
          attribute: [{ name: "transB", type: onnx.AttributeProto.AttributeType.INT, i: 1 }],
        },
      ],
      input: [tensor("a", ["m", "d"]), tensor("b", ["n", "d"])],
      output: [tensor("c", ["m", "n"])],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
