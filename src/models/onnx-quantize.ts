/**
 * Dynamic int8 quantisation of an ONNX model, in TypeScript over the ONNX protobuf: what
 * onnxruntime's Python `quantize_dynamic` does for transformer towers, so that a model folder
 * gains the `_quantized` towers that `embed.precision: "quantized"` loads without Python.
 *
 * Every MatMul whose second input is a constant 2-D float weight (and every Gemm with a constant
 * B, as a MatMul) becomes one com.microsoft DynamicQuantizeMatMul: the weight is stored as int8,
 * symmetric, with one scale per output column; the activation is quantised to uint8 at run time,
 * per tensor, inside the op. A bias Add that follows the MatMul moves into the op's bias input.
 * That is the kernel onnxruntime's CPU provider runs these in (u8 × s8, VNNI where the CPU has
 * it); `operator: "MatMulInteger"` writes the standard-ONNX form instead
 * (`DynamicQuantizeLinear → MatMulInteger → Cast → Mul`), for runtimes without the com.microsoft
 * domain. onnxruntime fuses that form back into the same kernels: on a ViT-B/32 vision tower both
 * ran at the same speed here (87 and 86 images/s on 2 cores, against 35 in fp32). Everything else
 * (convolutions, attention products of two activations, layer norms, embeddings) stays float32.
 *
 * Activations are quantised per tensor, as quantize_dynamic does, and weights a little under 8 bits
 * (PAIR_SUM_LIMIT): on a random-weight ViT-B/32 the embeddings keep a mean cosine of about 0.993
 * to fp32.
 */
import { readFile } from "node:fs/promises";
import { basename, dirname } from "node:path";
import onnxProto from "onnx-proto";
import { LocalStorage } from "../io/local-storage.js";
import { ModelError } from "./model-error.js";
import { locateClipModelFiles, MODEL_PRECISION_SUFFIX } from "./model-files.js";

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type GraphProto = onnxProto.onnx.IGraphProto;

const MICROSOFT_DOMAIN = "com.microsoft";
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const INT8 = onnx.TensorProto.DataType.INT8;
/**
 * The largest weight code, and the limit on the sum of the magnitudes of two weights that meet in
 * one of onnxruntime's 16-bit sums. On x86 CPUs without VNNI its uint8 × int8 kernel multiplies
 * with `vpmaddubsw`, which adds the products of weight rows 2i and 2i + 1 (the same column) in 16
 * bits with saturation: 255 · (|q₀| + |q₁|) must stay ≤ 32,767, so |q₀| + |q₁| ≤ 128. Full 8-bit
 * codes (255 · 127 · 2) overflow it: 10–19 % relative error on such machines. Each column's scale
 * is therefore its largest pair sum / 127 (rounding adds at most 1), not its largest weight / 127:
 * between 7 bits (onnxruntime's `reduce_range`, max |w| / 63) and 8, with no saturation anywhere.
 */
const INT8_LIMIT = 127;
const PAIR_SUM_LIMIT = 127;

export type QuantizedOperator = "DynamicQuantizeMatMul" | "MatMulInteger";

export interface QuantizeOptions {
  /** The op each quantised MatMul becomes (default DynamicQuantizeMatMul). */
  operator?: QuantizedOperator;
  /** One scale per output column (default) or one for the whole weight. */
  perChannel?: boolean;
  /** Weights with fewer elements stay float32 (default 0: every constant weight). */
  minimumWeightElements?: number;
  /** Names of MatMul / Gemm nodes to leave float32 (as quantize_dynamic's nodes_to_exclude). */
  excludeNodes?: readonly string[];
}

export interface QuantizeReport {
  /** MatMul / Gemm nodes replaced. */
  quantizedMatMuls: number;
  /** Bias Adds moved into the quantised op. */
  fusedBiases: number;
  /** MatMul / Gemm nodes left float32 (activation × activation, or not a plain weight). */
  floatMatMuls: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface QuantizedModel {
  model: Uint8Array;
  report: QuantizeReport;
}

/** Quantises a serialised ONNX model; `source` names it in errors. */
export function quantizeOnnxModel(
  bytes: Uint8Array,
  source: string,
  options: QuantizeOptions = {},
): QuantizedModel {
  const model = decodeModel(bytes, source);
  const graph = model.graph as GraphProto;
  const report: QuantizeReport = {
    quantizedMatMuls: 0,
    fusedBiases: 0,
    floatMatMuls: 0,
    bytesBefore: bytes.byteLength,
    bytesAfter: 0,
  };
  const quantizer = new GraphQuantizer(graph, source, {
    operator: options.operator ?? "DynamicQuantizeMatMul",
    perChannel: options.perChannel ?? true,
    minimumWeightElements: options.minimumWeightElements ?? 0,
    excludeNodes: new Set(options.excludeNodes ?? []),
  });
  quantizer.run(report);
  const usesMicrosoftOps = graph.node?.some((node) => node.domain === MICROSOFT_DOMAIN) ?? false;
  if (usesMicrosoftOps && !model.opsetImport.some((opset) => opset.domain === MICROSOFT_DOMAIN)) {
    model.opsetImport.push({ domain: MICROSOFT_DOMAIN, version: 1 });
  }
  const encoded = onnx.ModelProto.encode(model).finish();
  report.bytesAfter = encoded.byteLength;
  return { model: encoded, report };
}

/** Reads `input`, quantises it, writes `output` atomically. */
export async function quantizeOnnxFile(
  input: string,
  output: string,
  options: QuantizeOptions = {},
): Promise<QuantizeReport> {
  const { model, report } = quantizeOnnxModel(await readFile(input), input, options);
  await new LocalStorage(dirname(output)).writeAtomic(basename(output), model);
  return report;
}

export interface QuantizedClipModel {
  folder: string;
  towers: { input: string; output: string; report: QuantizeReport }[];
}

/**
 * Writes `onnx/text_model_quantized.onnx` and `onnx/vision_model_quantized.onnx` beside the fp32
 * towers of a CLIP model folder (replacing any there), the files precision "quantized" loads.
 */
export async function quantizeClipModel(
  folder: string,
  options: QuantizeOptions = {},
): Promise<QuantizedClipModel> {
  const files = await locateClipModelFiles(folder, "fp32");
  const suffix = MODEL_PRECISION_SUFFIX.quantized;
  const towers: QuantizedClipModel["towers"] = [];
  for (const input of [files.textModel, files.visionModel]) {
    const output = input.replace(/\.onnx$/, `${suffix}.onnx`);
    towers.push({ input, output, report: await quantizeOnnxFile(input, output, options) });
  }
  return { folder: files.folder, towers };
}

function decodeModel(bytes: Uint8Array, source: string): onnxProto.onnx.ModelProto {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ModelError("CC_MODEL_INVALID_FILE", `${source}: not an ONNX model (${reason})`, {
      cause: error,
    });
  }
  // Protobuf accepts many byte strings; a model has a graph with nodes and an opset.
  if (!model.graph?.node?.length || model.opsetImport.length === 0) {
    throw new ModelError("CC_MODEL_INVALID_FILE", `${source}: not an ONNX model (no graph)`);
  }
  return model;
}

interface Settings {
  operator: QuantizedOperator;
  perChannel: boolean;
  minimumWeightElements: number;
  excludeNodes: ReadonlySet<string>;
}

/** A MatMul (or Gemm read as one) that can take an int8 weight: B is [rows, columns]. */
interface MatMulPlan {
  input: string;
  /** Identifies the weight (and its orientation), so a shared weight is quantised once. */
  key: string;
  weight: () => Float32Array;
  rows: number;
  columns: number;
  /** Gemm's C, when it has one. */
  bias?: string;
}

/** Names of a weight's int8 values and scales in the quantised graph. */
interface StoredWeight {
  weight: string;
  scale: string;
  columns: number;
}

/** A float weight as int8 with its scales: one per column, or one in all. */
interface QuantizedWeight {
  rows: number;
  columns: number;
  values: Int8Array;
  scales: Float32Array;
}

class GraphQuantizer {
  readonly #graph: GraphProto;
  readonly #source: string;
  readonly #settings: Settings;
  readonly #initializers = new Map<string, TensorProto>();
  readonly #consumers = new Map<string, NodeProto[]>();
  readonly #graphOutputs: Set<string>;
  /** Names of the tensors this pass adds, to keep them unique. */
  readonly #taken = new Set<string>();
  /** Weights already quantised (a weight shared by several MatMuls is stored once). */
  readonly #quantized = new Map<string, StoredWeight>();

  constructor(graph: GraphProto, source: string, settings: Settings) {
    this.#graph = graph;
    this.#source = source;
    this.#settings = settings;
    for (const tensor of graph.initializer ?? []) this.#initializers.set(tensor.name ?? "", tensor);
    for (const node of graph.node ?? []) {
      for (const input of node.input ?? []) {
        const list = this.#consumers.get(input) ?? [];
        list.push(node);
        this.#consumers.set(input, list);
      }
      for (const output of node.output ?? []) this.#taken.add(output);
    }
    for (const name of this.#initializers.keys()) this.#taken.add(name);
    for (const input of graph.input ?? []) this.#taken.add(input.name ?? "");
    this.#graphOutputs = new Set((graph.output ?? []).map((output) => output.name ?? ""));
  }

  run(report: QuantizeReport): void {
    const removed = new Set<NodeProto>();
    const replacements = new Map<NodeProto, NodeProto[]>();
    for (const node of this.#graph.node ?? []) {
      if (node.opType !== "MatMul" && node.opType !== "Gemm") continue;
      if ((node.domain ?? "") !== "") continue;
      const plan = this.#planMatMul(node);
      if (plan === undefined) {
        report.floatMatMuls++;
        continue;
      }
      let bias = plan.bias;
      let output = node.output?.[0] as string;
      const following = bias === undefined ? this.#followingBias(node, plan.columns) : undefined;
      if (following !== undefined) {
        removed.add(following.add);
        report.fusedBiases++;
        bias = following.name;
        output = following.add.output?.[0] as string;
      }
      const stored = this.#storeWeight(plan);
      replacements.set(node, this.#quantizedNodes(node, plan.input, stored, bias, output));
      report.quantizedMatMuls++;
    }
    const nodes: NodeProto[] = [];
    for (const node of this.#graph.node ?? []) {
      if (removed.has(node)) continue;
      nodes.push(...(replacements.get(node) ?? [node]));
    }
    this.#graph.node = nodes;
    this.#dropUnused();
  }

  /** What a MatMul / Gemm needs to be quantised, or undefined when it must stay float. */
  #planMatMul(node: NodeProto): MatMulPlan | undefined {
    const [input, weightName, gemmBias] = node.input ?? [];
    if (input === undefined || weightName === undefined) return undefined;
    if (this.#settings.excludeNodes.has(node.name ?? "")) return undefined;
    const tensor = this.#initializers.get(weightName);
    if (tensor === undefined || tensor.dataType !== FLOAT || (tensor.dims ?? []).length !== 2) {
      return undefined;
    }
    const [rows, columns] = (tensor.dims ?? []).map(Number) as [number, number];
    if (rows * columns < this.#settings.minimumWeightElements) return undefined;
    const weight = () => floatValues(tensor, this.#source);
    if (node.opType === "MatMul") return { input, key: weightName, weight, rows, columns };

    // Gemm: Y = alpha · A' · B' + beta · C; only the plain Linear form is taken.
    const alpha = attributeValue(node, "alpha", 1);
    const beta = attributeValue(node, "beta", 1);
    if (alpha !== 1 || beta !== 1 || attributeValue(node, "transA", 0) !== 0) return undefined;
    const transposed = attributeValue(node, "transB", 0) === 1;
    const plan: MatMulPlan = transposed
      ? {
          input,
          key: `${weightName}^T`,
          weight: () => transpose(weight(), rows, columns),
          rows: columns,
          columns: rows,
        }
      : { input, key: weightName, weight, rows, columns };
    if (gemmBias === undefined || gemmBias === "") return plan;
    if (!isVector(this.#initializers.get(gemmBias), plan.columns)) return undefined;
    return { ...plan, bias: gemmBias };
  }

  /** A constant `Add(matmul_output, bias[columns])` that is the MatMul's only consumer. */
  #followingBias(node: NodeProto, columns: number): { name: string; add: NodeProto } | undefined {
    const output = node.output?.[0];
    if (output === undefined || this.#graphOutputs.has(output)) return undefined;
    const consumers = this.#consumers.get(output) ?? [];
    const add = consumers[0];
    if (consumers.length !== 1 || add?.opType !== "Add" || (add.domain ?? "") !== "") {
      return undefined;
    }
    const other = add.input?.[0] === output ? add.input?.[1] : add.input?.[0];
    if (other === undefined || !isVector(this.#initializers.get(other), columns)) return undefined;
    return { name: other, add };
  }

  #storeWeight(plan: MatMulPlan): StoredWeight {
    const existing = this.#quantized.get(plan.key);
    if (existing !== undefined) return existing;
    const quantized = quantizeWeight(
      plan.weight(),
      plan.rows,
      plan.columns,
      this.#settings.perChannel,
    );
    const base = plan.key.replace(/\^T$/, "_transposed");
    const stored: StoredWeight = {
      weight: this.#unique(`${base}_int8`),
      scale: this.#unique(`${base}_scale`),
      columns: plan.columns,
    };
    this.#graph.initializer?.push(
      {
        name: stored.weight,
        dataType: INT8,
        dims: [plan.rows, plan.columns],
        rawData: new Uint8Array(quantized.values.buffer),
      },
      {
        name: stored.scale,
        dataType: FLOAT,
        dims: [quantized.scales.length],
        rawData: new Uint8Array(quantized.scales.buffer),
      },
    );
    this.#quantized.set(plan.key, stored);
    return stored;
  }

  #quantizedNodes(
    node: NodeProto,
    input: string,
    weight: StoredWeight,
    bias: string | undefined,
    output: string,
  ): NodeProto[] {
    const base = node.name || output;
    if (this.#settings.operator === "DynamicQuantizeMatMul") {
      return [
        {
          opType: "DynamicQuantizeMatMul",
          domain: MICROSOFT_DOMAIN,
          name: this.#unique(`${base}_quant`),
          input: [input, weight.weight, weight.scale, "", ...(bias === undefined ? [] : [bias])],
          output: [output],
        },
      ];
    }
    // Standard ONNX: quantise A, integer product, back to float with scale_A · scale_B.
    const name = (suffix: string) => this.#unique(`${base}_${suffix}`);
    const [quantizedInput, inputScale, inputZero] = [name("a_q"), name("a_scale"), name("a_zp")];
    const integerProduct = name("int32");
    const floatProduct = name("float");
    const scale = name("scale");
    const unbiased = bias === undefined ? output : name("unbiased");
    const zeroName = this.#zeroPoint(weight);
    const nodes: NodeProto[] = [
      {
        opType: "DynamicQuantizeLinear",
        name: name("DynamicQuantizeLinear"),
        input: [input],
        output: [quantizedInput, inputScale, inputZero],
      },
      {
        opType: "MatMulInteger",
        name: name("MatMulInteger"),
        input: [quantizedInput, weight.weight, inputZero, zeroName],
        output: [integerProduct],
      },
      {
        opType: "Cast",
        name: name("Cast"),
        input: [integerProduct],
        output: [floatProduct],
        attribute: [{ name: "to", type: onnx.AttributeProto.AttributeType.INT, i: FLOAT }],
      },
      {
        opType: "Mul",
        name: name("Mul_scales"),
        input: [inputScale, weight.scale],
        output: [scale],
      },
      { opType: "Mul", name: name("Mul"), input: [floatProduct, scale], output: [unbiased] },
    ];
    if (bias !== undefined) {
      nodes.push({ opType: "Add", name: name("Add"), input: [unbiased, bias], output: [output] });
    }
    return nodes;
  }

  /** MatMulInteger's B zero point: zeros, one per column (symmetric weights). */
  #zeroPoint(weight: StoredWeight): string {
    const name = `${weight.weight}_zero_point`;
    if (!this.#taken.has(name)) {
      this.#taken.add(name);
      const scales = this.#settings.perChannel ? weight.columns : 1;
      this.#graph.initializer?.push({
        name,
        dataType: INT8,
        dims: [scales],
        rawData: new Uint8Array(scales),
      });
    }
    return name;
  }

  /** Removes initializers and value infos that no node reads any more (the float weights). */
  #dropUnused(): void {
    const used = new Set<string>(this.#graphOutputs);
    for (const node of this.#graph.node ?? []) {
      for (const input of node.input ?? []) used.add(input);
      for (const output of node.output ?? []) used.add(output);
    }
    this.#graph.initializer = (this.#graph.initializer ?? []).filter((tensor) =>
      used.has(tensor.name ?? ""),
    );
    this.#graph.valueInfo = (this.#graph.valueInfo ?? []).filter((info) =>
      used.has(info.name ?? ""),
    );
    // Opset < 9 lists initializers among the inputs too; those must go with them.
    const initializerNames = new Set(this.#graph.initializer.map((tensor) => tensor.name ?? ""));
    const wasInitializer = new Set(this.#initializers.keys());
    this.#graph.input = (this.#graph.input ?? []).filter(
      (input) => !wasInitializer.has(input.name ?? "") || initializerNames.has(input.name ?? ""),
    );
  }

  #unique(name: string): string {
    let candidate = name;
    for (let index = 1; this.#taken.has(candidate); index++) candidate = `${name}_${index}`;
    this.#taken.add(candidate);
    return candidate;
  }
}

/**
 * Symmetric int8, one scale per column (or overall): scale = the largest |w(2i)| + |w(2i+1)| of
 * the column's row pairs / 127, so that no pair of codes saturates onnxruntime's 16-bit sums
 * (PAIR_SUM_LIMIT); an odd last row is a pair on its own.
 */
export function quantizeWeight(
  weight: Float32Array,
  rows: number,
  columns: number,
  perChannel: boolean,
): QuantizedWeight {
  const scales = new Float32Array(perChannel ? columns : 1);
  for (let row = 0; row < rows; row += 2) {
    const paired = row + 1 < rows;
    for (let column = 0; column < columns; column++) {
      const first = Math.abs(weight[row * columns + column] as number);
      const second = paired ? Math.abs(weight[(row + 1) * columns + column] as number) : 0;
      const slot = perChannel ? column : 0;
      if (first + second > (scales[slot] as number)) scales[slot] = first + second;
    }
  }
  for (let slot = 0; slot < scales.length; slot++) {
    // An all-zero column keeps scale 1 so that dequantising gives exact zeros, never NaN.
    scales[slot] = (scales[slot] as number) > 0 ? (scales[slot] as number) / PAIR_SUM_LIMIT : 1;
  }
  const values = new Int8Array(rows * columns);
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < columns; column++) {
      const scale = scales[perChannel ? column : 0] as number;
      const value = Math.round((weight[row * columns + column] as number) / scale);
      values[row * columns + column] = Math.max(-INT8_LIMIT, Math.min(INT8_LIMIT, value));
    }
  }
  return { rows, columns, values, scales };
}

/** A numeric attribute of a node, or `fallback` when the node does not set it. */
function attributeValue(node: NodeProto, name: string, fallback: number): number {
  const attribute = node.attribute?.find((candidate) => candidate.name === name);
  if (attribute === undefined) return fallback;
  const { AttributeType } = onnx.AttributeProto;
  if (attribute.type === AttributeType.FLOAT) return Number(attribute.f);
  if (attribute.type === AttributeType.INT) return Number(attribute.i);
  return Number.NaN;
}

function isVector(tensor: TensorProto | undefined, length: number): boolean {
  if (tensor === undefined || tensor.dataType !== FLOAT) return false;
  const dims = (tensor.dims ?? []).map(Number);
  return dims.length === 1 && dims[0] === length;
}

function floatValues(tensor: TensorProto, source: string): Float32Array {
  if (tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    throw new ModelError(
      "CC_MODEL_UNSUPPORTED",
      `${source}: tensor ${tensor.name} is stored in an external data file, which quantisation does not read`,
    );
  }
  const raw = tensor.rawData;
  if (raw !== undefined && raw !== null && raw.byteLength > 0) {
    // A copy: protobuf's bytes are views into the file, not necessarily 4-byte aligned.
    return new Float32Array(new Uint8Array(raw).buffer);
  }
  return Float32Array.from(tensor.floatData ?? []);
}

function transpose(values: Float32Array, rows: number, columns: number): Float32Array {
  const result = new Float32Array(values.length);
  for (let row = 0; row < rows; row++) {
    for (let column = 0; column < columns; column++) {
      result[column * rows + row] = values[row * columns + column] as number;
    }
  }
  return result;
}
