/**
 * The tiny CLIP text tower: `input_ids` int64 [batch, sequence] → `text_embeds` float
 * [batch, PROJECTION_DIM].
 *
 * A bag of words with one piece of context. Each token is looked up twice (Gather): token →
 * concept (one byte per vocabulary entry, so the model stays a few KB), concept → features (eight
 * colour counts, four shape counts, and "is a background noun"). A colour word directly followed
 * by a background noun is dropped (Slice + Pad shift the flag one position back), the rest are
 * summed over the sequence (ReduceSum), and the colour and shape vectors meet in an outer
 * product (MatMul) that the joint projection maps to the embedding. Special and padding tokens
 * carry no concept, so padding and the attention mask do not change the result.
 */
import { SHAPE_NAMES } from "../wat-generator.js";
import { END_OF_WORD } from "./bpe-tokenizer.js";
import {
  BACKGROUND_NOUNS,
  COLOUR_AXES,
  JOINT_SIZE,
  jointProjection,
  NONE_AXIS_WEIGHT,
  PROJECTION_DIM,
  SHAPE_WORDS,
} from "./concept-space.js";
import { OnnxGraphBuilder, TensorType } from "./onnx-graph.js";

const COLOUR_NAMES = COLOUR_AXES.slice(0, -1);
/** Feature layout of a concept: colour counts, shape counts, background-noun flag. */
const FEATURE_SIZE = COLOUR_NAMES.length + SHAPE_NAMES.length + 1;
const BACKGROUND_FEATURE = FEATURE_SIZE - 1;
const INT64_MAX = Number.MAX_SAFE_INTEGER;

interface Concept {
  words: readonly string[];
  feature: number;
}

/** Concept 0 means nothing; the others light one feature each. */
function concepts(): Concept[] {
  return [
    ...COLOUR_NAMES.map((colour, index) => ({ words: [colour], feature: index })),
    ...SHAPE_NAMES.map((shape, index) => ({
      words: SHAPE_WORDS[shape],
      feature: COLOUR_NAMES.length + index,
    })),
    { words: BACKGROUND_NOUNS, feature: BACKGROUND_FEATURE },
  ];
}

/** Words the text tower gives meaning to; the tokenizer must keep each one a single token. */
export function meaningfulWords(): string[] {
  return concepts().flatMap((concept) => [...concept.words]);
}

export function buildTextTower(vocab: ReadonlyMap<string, number>): Uint8Array {
  const conceptList = concepts();
  const tokenConcept = new Uint8Array(vocab.size);
  const conceptFeatures = new Float32Array((conceptList.length + 1) * FEATURE_SIZE);
  conceptList.forEach((concept, index) => {
    const conceptId = index + 1;
    conceptFeatures[conceptId * FEATURE_SIZE + concept.feature] = 1;
    for (const word of concept.words) {
      const tokenId = vocab.get(word + END_OF_WORD);
      if (tokenId === undefined) throw new Error(`tiny-clip tokenizer: "${word}" is not one token`);
      tokenConcept[tokenId] = conceptId;
    }
  });

  const graph = new OnnxGraphBuilder("tiny_clip_text");
  const inputIds = graph.input("input_ids", TensorType.INT64, ["batch", "sequence"]);
  graph.uint8Tensor("token_concept", [vocab.size], tokenConcept);
  graph.floatTensor("concept_features", [conceptList.length + 1, FEATURE_SIZE], conceptFeatures);

  graph.node("Gather", ["token_concept", inputIds], "concept_ids_u8");
  graph.node("Cast", ["concept_ids_u8"], "concept_ids", { to: TensorType.INT64 });
  graph.node("Gather", ["concept_features", "concept_ids"], "token_features");

  const featureSlice = (name: string, start: number, end: number) => {
    graph.int64Tensor(`${name}_start`, [1], [start]);
    graph.int64Tensor(`${name}_end`, [1], [end]);
    return graph.node(
      "Slice",
      ["token_features", `${name}_start`, `${name}_end`, "feature_axis"],
      name,
    );
  };
  graph.int64Tensor("feature_axis", [1], [2]);
  featureSlice("colour_words", 0, COLOUR_NAMES.length);
  featureSlice("shape_words", COLOUR_NAMES.length, BACKGROUND_FEATURE);
  featureSlice("background_nouns", BACKGROUND_FEATURE, FEATURE_SIZE);

  // followed_by_background[i] = background_nouns[i + 1]: drop the first position, pad the end.
  graph.int64Tensor("one", [1], [1]);
  graph.int64Tensor("int64_max", [1], [INT64_MAX]);
  graph.int64Tensor("sequence_axis", [1], [1]);
  graph.node(
    "Slice",
    ["background_nouns", "one", "int64_max", "sequence_axis"],
    "next_background_nouns",
  );
  graph.int64Tensor("pad_sequence_end", [6], [0, 0, 0, 0, 1, 0]);
  graph.node("Pad", ["next_background_nouns", "pad_sequence_end"], "followed_by_background");
  graph.floatTensor("float_one", [1], [1]);
  graph.node("Sub", ["float_one", "followed_by_background"], "describes_subject");
  graph.node("Mul", ["colour_words", "describes_subject"], "subject_colour_words");

  graph.node("ReduceSum", ["subject_colour_words", "sequence_axis"], "colour_counts", {
    keepdims: 0,
  });
  graph.node("ReduceSum", ["shape_words", "sequence_axis"], "shape_counts", { keepdims: 0 });
  appendJointProjection(graph, "colour_counts", "shape_counts", "text_embeds");
  graph.output("text_embeds", TensorType.FLOAT, ["batch", PROJECTION_DIM]);
  return graph.encode("tiny CLIP text tower: colour and shape words, outer product, projection");
}

/**
 * The end both towers share: append the "none" axes, take the outer product colour ⊗ shape,
 * flatten it and project it. `colours` is [batch, 8], `shapes` [batch, 4].
 */
export function appendJointProjection(
  graph: OnnxGraphBuilder,
  colours: string,
  shapes: string,
  output: string,
): void {
  graph.int64Tensor("pad_last_axis_end", [4], [0, 0, 0, 1]);
  graph.floatTensor("none_axis_weight", [], [NONE_AXIS_WEIGHT]);
  graph.node("Pad", [colours, "pad_last_axis_end", "none_axis_weight"], "colour_vector");
  graph.node("Pad", [shapes, "pad_last_axis_end", "none_axis_weight"], "shape_vector");
  graph.int64Tensor("axis_2", [1], [2]);
  graph.int64Tensor("axis_1", [1], [1]);
  graph.node("Unsqueeze", ["colour_vector", "axis_2"], "colour_column");
  graph.node("Unsqueeze", ["shape_vector", "axis_1"], "shape_row");
  graph.node("MatMul", ["colour_column", "shape_row"], "joint");
  graph.int64Tensor("joint_flat_shape", [2], [-1, JOINT_SIZE]);
  graph.node("Reshape", ["joint", "joint_flat_shape"], "joint_flat");
  graph.floatTensor("joint_projection", [JOINT_SIZE, PROJECTION_DIM], jointProjection());
  graph.node("MatMul", ["joint_flat", "joint_projection"], output);
}
