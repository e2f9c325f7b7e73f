/**
 * Selecting one token before the work that only that token needs, as a rewrite of an ONNX graph.
 *
 * A CLIP vision tower pools its last hidden state at the class token (`Gather(axis 1, index 0)`
 * after the last encoder layer), so the last layer's output projection, layer norm and MLP are
 * computed for all 50 tokens of a ViT-B/32 and 49 of them thrown away: about 6 % of the tower's
 * multiply-adds. This pass moves such a Gather up through every node that works on each token
 * on its own (MatMul by a constant weight, elementwise ops with per-channel constants, layer
 * norms over the last axis), as far as the tensors are needed only at that token, and gathers
 * there instead. The result is the same arithmetic on fewer rows: the embeddings agree with the
 * original graph's to float rounding.
 *
 * Attention mixes tokens, so the gather stops at its output; the graph's rank of each tensor is
 * inferred from its input's declared shape, and the pass leaves a graph alone wherever a rank it
 * needs is unknown (the token axis must not be the last one). Outputs other than the ones asked
 * for are dropped first (a Hugging Face export's `last_hidden_state` would otherwise keep every
 * token alive), with the nodes only they used.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
type ModelProto = onnxProto.onnx.IModelProto;
type GraphProto = onnxProto.onnx.IGraphProto;
type NodeProto = onnxProto.onnx.INodeProto;
type TensorProto = onnxProto.onnx.ITensorProto;

export interface TokenSelectionReport {
  /** Nodes now run on the selected token only. */
  nodesNarrowed: number;
  /** Gathers added where the selected token is taken from a tensor (attention outputs, residuals). */
  gathersAdded: number;
  /** Nodes removed because no kept output needed them. */
  nodesDropped: number;
}

const UNARY = new Set([
  "Abs",
  "Cast",
  "Erf",
  "Exp",
  "Gelu",
  "Identity",
  "Neg",
  "Reciprocal",
  "Relu",
  "Sigmoid",
  "Sqrt",
  "Tanh",
]);
const INT64 = onnx.TensorProto.DataType.INT64;
const INT32 = onnx.TensorProto.DataType.INT32;
const BINARY = new Set(["Add", "Sub", "Mul", "Div", "Pow"]);
/** Ops whose output has the rank of their first input. */
const SAME_RANK = new Set([...UNARY, "Softmax", "LayerNormalization", "Conv", "Slice", "Concat"]);

/**
 * The model serialised in `bytes`, decoded and narrowed to `keepOutputs` with its token selections
 * moved up; undefined when there is nothing to narrow, the bytes are not an ONNX model, or the
 * weights already live in external files.
 */
export function selectTokensEarlyInBytes(
  bytes: Uint8Array,
  keepOutputs: readonly string[],
): { model: ModelProto; report: TokenSelectionReport } | undefined {
  let model: onnxProto.onnx.ModelProto;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch {
    return undefined; // onnxruntime says what is wrong with the file when it opens it
  }
  const external = (model.graph?.initializer ?? []).some(
    (tensor) => tensor.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL,
  );
  if (external) return undefined;
  const report = selectTokensEarly(model, keepOutputs);
  if (report.nodesNarrowed === 0) return undefined;
  return { model, report };
}

/**
 * Rewrites `model` in place so that it computes only `keepOutputs`, with token selections moved
 * up as far as they go. Returns what changed; a graph with nothing to narrow is left as it was
 * (apart from the dropped outputs).
 */
export function selectTokensEarly(
  model: ModelProto,
  keepOutputs: readonly string[],
): TokenSelectionReport {
  const graph = model.graph as GraphProto;
  const report: TokenSelectionReport = { nodesNarrowed: 0, gathersAdded: 0, nodesDropped: 0 };
  const outputs = new Set((graph.output ?? []).map((output) => output.name ?? ""));
  const hasSubgraphs = (graph.node ?? []).some((node) =>
    (node.attribute ?? []).some((attribute) => attribute.g || (attribute.graphs ?? []).length > 0),
  );
  if (hasSubgraphs || !keepOutputs.every((output) => outputs.has(output))) return report;
  graph.output = (graph.output ?? []).filter((output) => keepOutputs.includes(output.name ?? ""));
  report.nodesDropped = dropUnusedNodes(graph);
  const facts = new GraphFacts(graph);
  const nodes = graph.node ?? [];

  // Which tensors are needed at the selected token only, and which nodes can run on that token.
  const selectable = new Map<string, string>(); // tensor → the index tensor of its selection
  const narrowed = new Set<NodeProto>();
  for (let position = nodes.length - 1; position >= 0; position--) {
    const node = nodes[position] as NodeProto;
    const outputs = (node.output ?? []).filter((name) => name !== "");
    if (outputs.length === 0) continue;
    for (const output of outputs) {
      const index = selectionOf(output, facts, selectable, narrowed);
      if (index !== undefined) selectable.set(output, index);
    }
    if (!isTokenWise(node, facts)) continue;
    const indices = new Set(outputs.map((output) => selectable.get(output)));
    if (indices.size === 1 && !indices.has(undefined)) narrowed.add(node);
  }
  if (narrowed.size === 0) return report;

  // Narrowed nodes keep their tensor names, which now hold the selected token only; every other
  // tensor they read is gathered once. Gathers that selected from a narrowed tensor become
  // Identity (onnxruntime removes them).
  const added: NodeProto[] = [];
  const gathered = new Map<string, string>();
  const gatherOf = (tensor: string, index: string): string => {
    const key = `${tensor}\u0000${index}`;
    let name = gathered.get(key);
    if (name === undefined) {
      name = `${tensor}/selected_token`;
      gathered.set(key, name);
      added.push(
        onnx.NodeProto.create({
          opType: "Gather",
          name: `${tensor}/SelectToken`,
          input: [tensor, index],
          output: [name],
          attribute: [onnx.AttributeProto.create({ name: "axis", type: 2, i: 1 })],
        }),
      );
    }
    return name;
  };
  const renamed = new Set<string>();
  for (const node of narrowed) {
    const index = selectable.get((node.output ?? [])[0] as string) as string;
    node.input = (node.input ?? []).map((input) => {
      if (input === "" || facts.isConstant(input)) return input;
      const producer = facts.producer.get(input);
      return producer !== undefined && narrowed.has(producer) ? input : gatherOf(input, index);
    });
    for (const output of node.output ?? []) renamed.add(output);
  }
  for (const node of nodes) {
    if (node.opType === "Gather" && renamed.has((node.input ?? [])[0] as string)) {
      node.opType = "Identity";
      node.input = [(node.input ?? [])[0] as string];
      node.attribute = [];
    }
  }
  // Shapes recorded for the narrowed tensors no longer hold.
  graph.valueInfo = (graph.valueInfo ?? []).filter((info) => !renamed.has(info.name ?? ""));
  report.nodesNarrowed = narrowed.size;
  report.gathersAdded = added.length;
  graph.node = topologicalOrder([...nodes, ...added], graph);
  return report;
}

/**
 * The index tensor of the single-token selection that every consumer of `tensor` makes, if they
 * all select the same token: a Gather on axis 1 with a constant scalar index, or a node already
 * found to run on that token alone. The token axis must not be the tensor's last.
 */
function selectionOf(
  tensor: string,
  facts: GraphFacts,
  selectable: ReadonlyMap<string, string>,
  narrowed: ReadonlySet<NodeProto>,
): string | undefined {
  if (facts.graphOutputs.has(tensor)) return undefined;
  const rank = facts.rank(tensor);
  if (rank === undefined || rank < 3) return undefined;
  const consumers = facts.consumers.get(tensor) ?? [];
  if (consumers.length === 0) return undefined;
  let index: string | undefined;
  for (const consumer of consumers) {
    let selection: string | undefined;
    if (isTokenGather(consumer, tensor, facts)) selection = (consumer.input ?? [])[1];
    else if (narrowed.has(consumer)) selection = selectable.get((consumer.output ?? [])[0] ?? "");
    if (selection === undefined || (index !== undefined && selection !== index)) return undefined;
    index = selection;
  }
  return index;
}

function isTokenGather(node: NodeProto, tensor: string, facts: GraphFacts): boolean {
  if (node.opType !== "Gather" || (node.domain ?? "") !== "") return false;
  const [data, index] = node.input ?? [];
  return (
    data === tensor &&
    index !== undefined &&
    facts.isConstant(index) &&
    facts.rank(index) === 0 &&
    facts.scalarValue(index) === 0 &&
    integerAttribute(node, "axis", 0) === 1
  );
}

/** Whether each token of the node's output depends on that token of its inputs alone. */
function isTokenWise(node: NodeProto, facts: GraphFacts): boolean {
  if ((node.domain ?? "") !== "") return false;
  const inputs = (node.input ?? []).filter((input) => input !== "");
  const outputRank = facts.rank((node.output ?? [])[0] ?? "");
  if (outputRank === undefined || outputRank < 3) return false;
  const variable = inputs.filter((input) => !facts.isConstant(input));
  // Every non-constant input has the output's rank (no broadcast along the token axis) and
  // every constant is at most a vector (broadcast over the last axis only).
  const aligned = variable.every((input) => facts.rank(input) === outputRank);
  const smallConstants = inputs
    .filter((input) => facts.isConstant(input))
    .every((input) => (facts.rank(input) ?? 99) <= 1);
  if (variable.length === 0 || !aligned) return false;
  const op = node.opType ?? "";
  if (UNARY.has(op) || BINARY.has(op)) return smallConstants;
  if (op === "MatMul") {
    const weight = (node.input ?? [])[1] ?? "";
    return variable.length === 1 && facts.isConstant(weight) && facts.rank(weight) === 2;
  }
  if (op === "ReduceMean") {
    const axes = listAttribute(node, "axes");
    return (
      inputs.length === 1 &&
      axes.length === 1 &&
      axes[0] === -1 &&
      integerAttribute(node, "keepdims", 1) === 1
    );
  }
  if (op === "LayerNormalization") {
    const usedOutputs = (node.output ?? []).filter(
      (output, position) => position === 0 || (output !== "" && facts.consumers.has(output)),
    );
    return integerAttribute(node, "axis", -1) === -1 && usedOutputs.length === 1 && smallConstants;
  }
  if (op === "Softmax") return integerAttribute(node, "axis", -1) === -1;
  return false;
}

function integerAttribute(node: NodeProto, name: string, fallback: number): number {
  const attribute = node.attribute?.find((candidate) => candidate.name === name);
  return attribute?.i === undefined || attribute.i === null ? fallback : Number(attribute.i);
}

function listAttribute(node: NodeProto, name: string): number[] {
  const attribute = node.attribute?.find((candidate) => candidate.name === name);
  return (attribute?.ints ?? []).map(Number);
}

/** Producers, consumers, constants and (where it can tell) the rank of each tensor. */
class GraphFacts {
  readonly producer = new Map<string, NodeProto>();
  readonly consumers = new Map<string, NodeProto[]>();
  readonly graphOutputs: ReadonlySet<string>;
  readonly #constants = new Map<string, TensorProto>();
  readonly #inputRanks = new Map<string, number>();
  readonly #ranks = new Map<string, number | undefined>();
  readonly #lengths = new Map<string, number | undefined>();

  constructor(graph: GraphProto) {
    for (const tensor of graph.initializer ?? []) this.#constants.set(tensor.name ?? "", tensor);
    for (const input of graph.input ?? []) {
      const dims = input.type?.tensorType?.shape?.dim;
      if (dims !== undefined && dims !== null) this.#inputRanks.set(input.name ?? "", dims.length);
    }
    for (const node of graph.node ?? []) {
      for (const output of node.output ?? []) this.producer.set(output, node);
      for (const input of node.input ?? []) {
        if (input === "") continue;
        const list = this.consumers.get(input) ?? [];
        if (!list.includes(node)) list.push(node);
        this.consumers.set(input, list);
      }
      if (node.opType === "Constant" && (node.domain ?? "") === "") {
        const value = node.attribute?.find((attribute) => attribute.name === "value")?.t;
        if (value) this.#constants.set((node.output ?? [])[0] ?? "", value);
      }
    }
    this.graphOutputs = new Set((graph.output ?? []).map((output) => output.name ?? ""));
  }

  isConstant(tensor: string): boolean {
    return this.#constants.has(tensor);
  }

  /** The value of a constant integer scalar. */
  scalarValue(tensor: string): number | undefined {
    const constant = this.#constants.get(tensor);
    if (constant === undefined || (constant.dims ?? []).length !== 0) return undefined;
    if (constant.dataType === INT64 || constant.dataType === INT32) {
      const listed = constant.dataType === INT64 ? constant.int64Data : constant.int32Data;
      if (listed && listed.length === 1) return Number(listed[0]);
      const raw = constant.rawData;
      if (raw && raw.byteLength >= 4) {
        const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        return constant.dataType === INT64
          ? Number(view.getBigInt64(0, true))
          : view.getInt32(0, true);
      }
    }
    return undefined;
  }

  rank(tensor: string): number | undefined {
    if (this.#ranks.has(tensor)) return this.#ranks.get(tensor);
    this.#ranks.set(tensor, undefined); // a cycle, in a malformed graph, reads as unknown
    const rank = this.#inferRank(tensor);
    this.#ranks.set(tensor, rank);
    return rank;
  }

  #inferRank(tensor: string): number | undefined {
    const constant = this.#constants.get(tensor);
    if (constant !== undefined) return (constant.dims ?? []).length;
    if (this.#inputRanks.has(tensor)) return this.#inputRanks.get(tensor);
    const node = this.producer.get(tensor);
    if (node === undefined || (node.domain ?? "") !== "") return undefined;
    const inputs = node.input ?? [];
    const op = node.opType ?? "";
    const first = inputs[0] ?? "";
    if (SAME_RANK.has(op)) {
      if (op === "Concat") return firstKnown(inputs.map((input) => this.rank(input)));
      return this.rank(first);
    }
    if (BINARY.has(op) || op === "Where" || op === "Equal") {
      const ranks = inputs.map((input) => this.rank(input));
      return ranks.includes(undefined) ? undefined : Math.max(...(ranks as number[]));
    }
    switch (op) {
      case "Shape":
        return 1;
      case "Transpose": {
        const perm = listAttribute(node, "perm");
        return perm.length > 0 ? perm.length : this.rank(first);
      }
      case "Reshape":
      case "ConstantOfShape":
        return this.length(inputs[op === "Reshape" ? 1 : 0] ?? "");
      case "Expand": {
        const data = this.rank(first);
        const shape = this.length(inputs[1] ?? "");
        return data === undefined || shape === undefined ? undefined : Math.max(data, shape);
      }
      case "MatMul": {
        const a = this.rank(first);
        const b = this.rank(inputs[1] ?? "");
        if (a === undefined || b === undefined || a < 2 || b < 2) return undefined;
        return Math.max(a, b);
      }
      case "Gather": {
        const data = this.rank(first);
        const index = this.rank(inputs[1] ?? "");
        return data === undefined || index === undefined ? undefined : data - 1 + index;
      }
      case "ReduceMean": {
        const data = this.rank(first);
        if (data === undefined || integerAttribute(node, "keepdims", 1) === 1) return data;
        const axes = listAttribute(node, "axes");
        return axes.length === 0 ? 0 : data - axes.length;
      }
      case "Unsqueeze": {
        const data = this.rank(first);
        const axes = this.length(inputs[1] ?? "") ?? listAttribute(node, "axes").length;
        return data === undefined || axes === 0 ? undefined : data + axes;
      }
      default:
        return undefined;
    }
  }

  /** The element count of a 1-D tensor (a shape), where the graph fixes it. */
  length(tensor: string): number | undefined {
    if (this.#lengths.has(tensor)) return this.#lengths.get(tensor);
    this.#lengths.set(tensor, undefined);
    const length = this.#inferLength(tensor);
    this.#lengths.set(tensor, length);
    return length;
  }

  #inferLength(tensor: string): number | undefined {
    if (this.rank(tensor) !== 1) return undefined;
    const constant = this.#constants.get(tensor);
    if (constant !== undefined) return Number((constant.dims ?? [])[0]);
    const node = this.producer.get(tensor);
    if (node === undefined) return undefined;
    const inputs = node.input ?? [];
    switch (node.opType) {
      case "Shape":
        return this.rank(inputs[0] ?? "");
      case "Concat": {
        const lengths = inputs.map((input) => this.length(input));
        return lengths.includes(undefined)
          ? undefined
          : (lengths as number[]).reduce((a, b) => a + b, 0);
      }
      case "Unsqueeze":
        return this.rank(inputs[0] ?? "") === 0 ? 1 : undefined;
      case "Cast":
      case "Identity":
        return this.length(inputs[0] ?? "");
      default:
        return undefined;
    }
  }
}

function firstKnown(values: (number | undefined)[]): number | undefined {
  return values.find((value) => value !== undefined);
}

/** Removes nodes none of whose outputs reach a graph output; returns how many. */
function dropUnusedNodes(graph: GraphProto): number {
  const nodes = graph.node ?? [];
  const needed = new Set((graph.output ?? []).map((output) => output.name ?? ""));
  const kept: NodeProto[] = [];
  for (let position = nodes.length - 1; position >= 0; position--) {
    const node = nodes[position] as NodeProto;
    if (!(node.output ?? []).some((output) => needed.has(output))) continue;
    kept.push(node);
    for (const input of node.input ?? []) needed.add(input);
  }
  kept.reverse();
  graph.node = kept;
  graph.initializer = (graph.initializer ?? []).filter((tensor) => needed.has(tensor.name ?? ""));
  return nodes.length - kept.length;
}

/** Nodes in an order where each comes after the producers of its inputs (stable otherwise). */
function topologicalOrder(nodes: NodeProto[], graph: GraphProto): NodeProto[] {
  const available = new Set<string>([
    ...(graph.input ?? []).map((input) => input.name ?? ""),
    ...(graph.initializer ?? []).map((tensor) => tensor.name ?? ""),
    "",
  ]);
  const ordered: NodeProto[] = [];
  let pending = nodes;
  while (pending.length > 0) {
    const next: NodeProto[] = [];
    for (const node of pending) {
      if ((node.input ?? []).every((input) => available.has(input))) {
        ordered.push(node);
        for (const output of node.output ?? []) available.add(output);
      } else next.push(node);
    }
    if (next.length === pending.length) {
      throw new Error(`graph has a cycle or a missing input at node ${next[0]?.name ?? "?"}`);
    }
    pending = next;
  }
  return ordered;
}
