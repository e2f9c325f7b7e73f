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
 *
 * What the words are is a lexicon: the English one for the tiny CLIP model, a multilingual one
 * (multilingual-lexicon.ts) for the tiny multilingual text model. A language that puts the colour
 * after the noun ("sur fond blanc") has background nouns a colour word *follows*; the tower then
 * has a fourteenth feature and drops a colour word directly preceded by such a noun too. The
 * multilingual tower also takes an `attention_mask`, as M-CLIP's does, and multiplies every
 * token's features by it.
 */
import type { ShapeColour, ShapeName } from "../sample/shape-images.js";
import { SHAPE_COLOURS, SHAPE_NAMES } from "../sample/wat-generator.js";
import { byteLevel, END_OF_WORD } from "./bpe-tokenizer.js";
import {
  BACKGROUND_NOUNS,
  JOINT_SIZE,
  jointProjection,
  NONE_AXIS_WEIGHT,
  PROJECTION_DIM,
  SHAPE_WORDS,
} from "./concept-space.js";
import { OnnxGraphBuilder, TensorType } from "./onnx-graph.js";

/** The colours in the order of the colour axes (concept-space.ts's COLOUR_AXES but "none"). */
const COLOUR_NAMES = SHAPE_COLOURS;
const INT64_MAX = Number.MAX_SAFE_INTEGER;
/** Feature layout: colour counts, shape counts, then the background-noun flags. */
const BACKGROUND_FEATURE = COLOUR_NAMES.length + SHAPE_NAMES.length;
const BACKGROUND_BEFORE_COLOUR_FEATURE = BACKGROUND_FEATURE + 1;

/** The words a text tower gives meaning to, lower-case and one word each. */
export interface TextTowerLexicon {
  colours: Readonly<Record<ShapeColour, readonly string[]>>;
  shapes: Readonly<Record<ShapeName, readonly string[]>>;
  /** Nouns after a colour word that the colour describes instead of the subject: "white background". */
  backgroundNounsAfterColour: readonly string[];
  /** Nouns before a colour word that the colour describes instead: "fond blanc", "sfondo bianco". */
  backgroundNounsBeforeColour: readonly string[];
}

export const ENGLISH_LEXICON: TextTowerLexicon = {
  colours: Object.fromEntries(COLOUR_NAMES.map((colour) => [colour, [colour]])) as Record<
    ShapeColour,
    string[]
  >,
  shapes: SHAPE_WORDS,
  backgroundNounsAfterColour: BACKGROUND_NOUNS,
  backgroundNounsBeforeColour: [],
};

export interface TextTowerOptions {
  graphName: string;
  docString: string;
  /** Declare an `attention_mask` input and weigh every token's features with it. */
  attentionMask: boolean;
}

const ENGLISH_TOWER: TextTowerOptions = {
  graphName: "tiny_clip_text",
  docString: "tiny CLIP text tower: colour and shape words, outer product, projection",
  attentionMask: false,
};

interface Concept {
  words: string[];
  features: number[];
}

/**
 * Concept 0 means nothing; the others light one feature each, or both background flags for a
 * noun that takes its colour on either side ("papier": "wit papier", "papier blanc"). A word
 * with two meanings is an error.
 */
function concepts(lexicon: TextTowerLexicon): Concept[] {
  const wordsByFeature: (readonly string[])[] = [
    ...COLOUR_NAMES.map((colour) => lexicon.colours[colour]),
    ...SHAPE_NAMES.map((shape) => lexicon.shapes[shape]),
    lexicon.backgroundNounsAfterColour,
    lexicon.backgroundNounsBeforeColour,
  ];
  const featuresOf = new Map<string, number[]>();
  wordsByFeature.forEach((words, feature) => {
    for (const word of words) {
      if (!/^\p{Ll}+$/u.test(word) || word !== word.normalize("NFC")) {
        throw new Error(`tiny-clip lexicon: "${word}" is not one lower-case NFC word`);
      }
      const features = featuresOf.get(word) ?? [];
      if (!features.includes(feature)) features.push(feature);
      featuresOf.set(word, features);
    }
  });
  const byKey = new Map<string, Concept>();
  for (const words of wordsByFeature) {
    for (const word of words) {
      const features = featuresOf.get(word) as number[];
      if (features.length > 1 && features.some((feature) => feature < BACKGROUND_FEATURE)) {
        throw new Error(`tiny-clip lexicon: "${word}" has two meanings`);
      }
      const key = features.join(",");
      const concept = byKey.get(key) ?? { words: [], features };
      if (!concept.words.includes(word)) concept.words.push(word);
      byKey.set(key, concept);
    }
  }
  return [...byKey.values()];
}

/** Words the text tower gives meaning to; the tokenizer must keep each one a single token. */
export function meaningfulWords(lexicon: TextTowerLexicon = ENGLISH_LEXICON): string[] {
  return concepts(lexicon).flatMap((concept) => concept.words);
}

export function buildTextTower(
  vocab: ReadonlyMap<string, number>,
  lexicon: TextTowerLexicon = ENGLISH_LEXICON,
  options: TextTowerOptions = ENGLISH_TOWER,
): Uint8Array {
  const conceptList = concepts(lexicon);
  const hasNounsBeforeColour = lexicon.backgroundNounsBeforeColour.length > 0;
  const featureSize = hasNounsBeforeColour
    ? BACKGROUND_BEFORE_COLOUR_FEATURE + 1
    : BACKGROUND_FEATURE + 1;
  const tokenConcept = new Uint8Array(vocab.size);
  const conceptFeatures = new Float32Array((conceptList.length + 1) * featureSize);
  conceptList.forEach((concept, index) => {
    const conceptId = index + 1;
    for (const feature of concept.features) conceptFeatures[conceptId * featureSize + feature] = 1;
    for (const word of concept.words) {
      const tokenId = vocab.get(byteLevel(word) + END_OF_WORD);
      if (tokenId === undefined) throw new Error(`tiny-clip tokenizer: "${word}" is not one token`);
      tokenConcept[tokenId] = conceptId;
    }
  });

  const graph = new OnnxGraphBuilder(options.graphName);
  const inputIds = graph.input("input_ids", TensorType.INT64, ["batch", "sequence"]);
  if (options.attentionMask) {
    graph.input("attention_mask", TensorType.INT64, ["batch", "sequence"]);
  }
  graph.uint8Tensor("token_concept", [vocab.size], tokenConcept);
  graph.floatTensor("concept_features", [conceptList.length + 1, featureSize], conceptFeatures);

  graph.node("Gather", ["token_concept", inputIds], "concept_ids_u8");
  graph.node("Cast", ["concept_ids_u8"], "concept_ids", { to: TensorType.INT64 });
  let tokenFeatures = graph.node("Gather", ["concept_features", "concept_ids"], "token_features");
  if (options.attentionMask) {
    graph.node("Cast", ["attention_mask"], "attention_weights", { to: TensorType.FLOAT });
    graph.int64Tensor("mask_feature_axis", [1], [2]);
    graph.node("Unsqueeze", ["attention_weights", "mask_feature_axis"], "token_weights");
    tokenFeatures = graph.node("Mul", [tokenFeatures, "token_weights"], "attended_features");
  }

  const featureSlice = (name: string, start: number, end: number) => {
    graph.int64Tensor(`${name}_start`, [1], [start]);
    graph.int64Tensor(`${name}_end`, [1], [end]);
    return graph.node(
      "Slice",
      [tokenFeatures, `${name}_start`, `${name}_end`, "feature_axis"],
      name,
    );
  };
  graph.int64Tensor("feature_axis", [1], [2]);
  featureSlice("colour_words", 0, COLOUR_NAMES.length);
  featureSlice("shape_words", COLOUR_NAMES.length, BACKGROUND_FEATURE);
  featureSlice("background_nouns", BACKGROUND_FEATURE, BACKGROUND_FEATURE + 1);

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
  let besideBackground = graph.node(
    "Pad",
    ["next_background_nouns", "pad_sequence_end"],
    "followed_by_background",
  );
  if (hasNounsBeforeColour) {
    // preceded_by_background[i] = nouns_before_colour[i − 1]: pad the start, drop the last position.
    featureSlice("background_nouns_before_colour", BACKGROUND_BEFORE_COLOUR_FEATURE, featureSize);
    graph.int64Tensor("pad_sequence_start", [6], [0, 1, 0, 0, 0, 0]);
    graph.node(
      "Pad",
      ["background_nouns_before_colour", "pad_sequence_start"],
      "shifted_background_nouns",
    );
    graph.int64Tensor("zero", [1], [0]);
    graph.int64Tensor("minus_one", [1], [-1]);
    graph.node(
      "Slice",
      ["shifted_background_nouns", "zero", "minus_one", "sequence_axis"],
      "preceded_by_background",
    );
    besideBackground = graph.node(
      "Max",
      ["followed_by_background", "preceded_by_background"],
      "beside_background",
    );
  }
  graph.floatTensor("float_one", [1], [1]);
  graph.node("Sub", ["float_one", besideBackground], "describes_subject");
  graph.node("Mul", ["colour_words", "describes_subject"], "subject_colour_words");

  graph.node("ReduceSum", ["subject_colour_words", "sequence_axis"], "colour_counts", {
    keepdims: 0,
  });
  graph.node("ReduceSum", ["shape_words", "sequence_axis"], "shape_counts", { keepdims: 0 });
  appendJointProjection(graph, "colour_counts", "shape_counts", "text_embeds");
  graph.output("text_embeds", TensorType.FLOAT, ["batch", PROJECTION_DIM]);
  return graph.encode(options.docString);
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
