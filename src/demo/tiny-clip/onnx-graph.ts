/**
 * A small builder for ONNX graphs over the `onnx-proto` messages: named constant tensors, nodes
 * with attributes, typed graph inputs and outputs, and the serialised ModelProto. Just enough to
 * write the tiny CLIP towers by hand; every op is a standard ONNX op at the opset below.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type Proto = typeof onnxProto.onnx;

/** Opset 13: ReduceSum and Unsqueeze take axes as inputs, ReduceMean and ReduceMax as attributes. */
export const OPSET_VERSION = 13;
/** The IR version that goes with opset 13. */
const IR_VERSION = 7;

export const TensorType = onnx.TensorProto.DataType;
export type TensorTypeCode =
  Proto["TensorProto"]["DataType"][keyof Proto["TensorProto"]["DataType"]];

/** Integer, integer list or string attributes: the only kinds these graphs need. */
type AttributeValue = number | number[] | string;
/** A dimension: a fixed size, or a name for a size known only at run time. */
export type Dimension = number | string;

export class OnnxGraphBuilder {
  readonly #nodes: onnxProto.onnx.INodeProto[] = [];
  readonly #initializers: onnxProto.onnx.ITensorProto[] = [];
  readonly #inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #outputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly #usedNames = new Set<string>();

  constructor(readonly graphName: string) {}

  input(name: string, type: TensorTypeCode, shape: Dimension[]): string {
    this.#inputs.push(valueInfo(this.#claim(name), type, shape));
    return name;
  }

  output(name: string, type: TensorTypeCode, shape: Dimension[]): void {
    this.#outputs.push(valueInfo(name, type, shape));
  }

  floatTensor(name: string, dims: number[], values: ArrayLike<number>): string {
    checkSize(name, dims, values.length);
    this.#initializers.push({
      name: this.#claim(name),
      dataType: TensorType.FLOAT,
      dims,
      rawData: new Uint8Array(Float32Array.from(values).buffer),
    });
    return name;
  }

  int64Tensor(name: string, dims: number[], values: readonly number[]): string {
    checkSize(name, dims, values.length);
    const data = new BigInt64Array(values.map((value) => BigInt(value)));
    this.#initializers.push({
      name: this.#claim(name),
      dataType: TensorType.INT64,
      dims,
      rawData: new Uint8Array(data.buffer),
    });
    return name;
  }

  uint8Tensor(name: string, dims: number[], values: ArrayLike<number>): string {
    checkSize(name, dims, values.length);
    this.#initializers.push({
      name: this.#claim(name),
      dataType: TensorType.UINT8,
      dims,
      rawData: Uint8Array.from(values),
    });
    return name;
  }

  /** Adds a node with one output named `output`, and returns that name. */
  node(
    opType: string,
    inputs: string[],
    output: string,
    attributes: Record<string, AttributeValue> = {},
  ): string {
    this.#nodes.push({
      opType,
      name: `${output}_${opType}`,
      input: inputs,
      output: [this.#claim(output)],
      attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
    });
    return output;
  }

  /** The serialised model, ready to write as a `.onnx` file. */
  encode(docString: string): Uint8Array {
    const model: onnxProto.onnx.IModelProto = {
      irVersion: IR_VERSION,
      producerName: "clipcrawl tiny-clip generator",
      producerVersion: "1",
      docString,
      opsetImport: [{ domain: "", version: OPSET_VERSION }],
      graph: {
        name: this.graphName,
        node: this.#nodes,
        initializer: this.#initializers,
        input: this.#inputs,
        output: this.#outputs,
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }

  #claim(name: string): string {
    if (this.#usedNames.has(name))
      throw new Error(`graph ${this.graphName}: ${name} defined twice`);
    this.#usedNames.add(name);
    return name;
  }
}

function valueInfo(
  name: string,
  type: TensorTypeCode,
  shape: Dimension[],
): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: type,
        shape: {
          dim: shape.map((dimension) =>
            typeof dimension === "number" ? { dimValue: dimension } : { dimParam: dimension },
          ),
        },
      },
    },
  };
}

function attribute(name: string, value: AttributeValue): onnxProto.onnx.IAttributeProto {
  const { AttributeType } = onnx.AttributeProto;
  if (typeof value === "string") {
    return { name, type: AttributeType.STRING, s: new TextEncoder().encode(value) };
  }
  if (Array.isArray(value)) return { name, type: AttributeType.INTS, ints: value };
  return { name, type: AttributeType.INT, i: value };
}

function checkSize(name: string, dims: number[], length: number): void {
  const expected = dims.reduce((product, dimension) => product * dimension, 1);
  if (expected !== length) {
    throw new Error(`tensor ${name}: ${length} values for dims [${dims.join(", ")}]`);
  }
}
