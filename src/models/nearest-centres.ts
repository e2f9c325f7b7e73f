/**
 * The nearest centre (squared L2) of each row, in several subspaces at once, on ONNX Runtime's
 * CPU kernels: k-means and product quantisation (src/formats/index/ivf-pq.ts) spend nearly all
 * their time here. usearch's exactSearch, which did this before, ran at 7 GFLOP/s on 512-d rows
 * and 0.3 on the 4-d and 8-d subspaces of a PQ code (its per-pair overhead dominates), one core.
 *
 * ‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖², so the nearest c maximises x·c − ½‖c‖²: one batched MatMul
 * (every subspace's rows against its centres), one Add of the −½‖c‖² bias, one ArgMax. Rows go
 * in batches that keep the score matrix near SCORES_PER_BATCH values.
 */
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import { cpuSession } from "./dot-products.js";

const { onnx } = onnxProto;
const OPSET_VERSION = 13;
const IR_VERSION = 7;
const SCORES_PER_BATCH = 1 << 24;

export class NearestCentres {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async open(threads = 0): Promise<NearestCentres> {
    return new NearestCentres(await cpuSession(nearestModel(), threads));
  }

  /**
   * For rows of `subspaces × width` values (row-major), each subspace's nearest of its
   * `count` centres: `centres` holds subspace s's centres at [s·count·width …], centre-major.
   * The answer is row-major: answer[row · subspaces + s].
   */
  async nearest(
    rows: Float32Array,
    centres: Float32Array,
    subspaces: number,
    width: number,
    count: number,
  ): Promise<Uint32Array> {
    const rowWidth = subspaces * width;
    const total = rows.length / rowWidth;
    if (centres.length !== subspaces * count * width) {
      throw new RangeError(
        `${centres.length} centre values, expected ${subspaces} × ${count} × ${width}`,
      );
    }
    const transposed = new Float32Array(centres.length);
    const bias = new Float32Array(subspaces * count);
    for (let sub = 0; sub < subspaces; sub++) {
      for (let centre = 0; centre < count; centre++) {
        const from = (sub * count + centre) * width;
        let norm = 0;
        for (let dim = 0; dim < width; dim++) {
          const value = centres[from + dim] as number;
          norm += value * value;
          transposed[(sub * width + dim) * count + centre] = value;
        }
        bias[sub * count + centre] = -0.5 * norm;
      }
    }
    const centresTensor = new ort.Tensor("float32", transposed, [subspaces, width, count]);
    const biasTensor = new ort.Tensor("float32", bias, [subspaces, 1, count]);
    const answer = new Uint32Array(total * subspaces);
    const batch = Math.max(1, Math.floor(SCORES_PER_BATCH / (subspaces * count)));
    for (let start = 0; start < total; start += batch) {
      const end = Math.min(total, start + batch);
      const output = await this.session.run({
        rows: new ort.Tensor("float32", rows.subarray(start * rowWidth, end * rowWidth), [
          end - start,
          subspaces,
          width,
        ]),
        centres: centresTensor,
        bias: biasTensor,
      });
      const nearest = (output.nearest as ort.Tensor).data as BigInt64Array;
      // ArgMax's int64 indices are below 2^32: their low words (little-endian), without a
      // BigInt a value.
      const low = new Uint32Array(nearest.buffer, nearest.byteOffset, nearest.length * 2);
      const rowsInBatch = end - start;
      for (let sub = 0; sub < subspaces; sub++) {
        for (let row = 0; row < rowsInBatch; row++) {
          answer[(start + row) * subspaces + sub] = low[2 * (sub * rowsInBatch + row)] as number;
        }
      }
    }
    return answer;
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

/** rows [n, s, w] → Transpose [s, n, w] → MatMul centres [s, w, k] → + bias [s, 1, k] → ArgMax. */
function nearestModel(): Uint8Array {
  const tensor = (
    name: string,
    dims: string[],
    elemType: number = onnx.TensorProto.DataType.FLOAT,
  ): onnxProto.onnx.IValueInfoProto => ({
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((dimParam) => ({ dimParam })) } } },
  });
  const int = (name: string, value: number) => ({
    name,
    type: onnx.AttributeProto.AttributeType.INT,
    i: value,
  });
  const model: onnxProto.onnx.IModelProto = {
    irVersion: IR_VERSION,
    producerName: "clipcrawl",
    opsetImport: [{ domain: "", version: OPSET_VERSION }],
    graph: {
      name: "nearest_centres",
      node: [
        {
          opType: "Transpose",
          input: ["rows"],
          output: ["by_subspace"],
          attribute: [
            { name: "perm", type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 0, 2] },
          ],
        },
        { opType: "MatMul", input: ["by_subspace", "centres"], output: ["products"] },
        { opType: "Add", input: ["products", "bias"], output: ["scores"] },
        {
          opType: "ArgMax",
          input: ["scores"],
          output: ["nearest"],
          attribute: [int("axis", 2), int("keepdims", 0)],
        },
      ],
      input: [
        tensor("rows", ["n", "s", "w"]),
        tensor("centres", ["s", "w", "k"]),
        tensor("bias", ["s", "one", "k"]),
      ],
      output: [tensor("nearest", ["s", "n"], onnx.TensorProto.DataType.INT64)],
    },
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
}
