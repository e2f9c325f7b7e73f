/**
 * The `scores` section of clipcrawl.json: one head for each score column of the LAION schema.
 * A head is one of four kinds (onnx, linear, zero-shot, onnx-pixels), told apart by `kind`.
 *
 * The defaults are zero-shot prompt sets, written out in full by `clipcrawl init`, so a user sees
 * what is asked of the CLIP model and can change it without reading code. Relative paths resolve
 * against the dataset root.
 */
import * as z from "zod";
import { PIL_RESAMPLE } from "../pil-resample.js";

/** The score columns of the LAION schema, in its order. */
export const SCORE_NAMES = ["punsafe", "pwatermark", "ptoxic", "AESTHETIC_SCORE"] as const;
export type ScoreName = (typeof SCORE_NAMES)[number];

/** ImageNet's normalisation, which timm classifiers (LAION's watermark detector) expect. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

const embeddingSide = z
  .enum(["image", "text"])
  .default("image")
  .describe("which embedding of the pair the head reads: the image's or the caption's");
const scale = z
  .number()
  .default(1)
  .describe("the head's result is multiplied by this (10 puts a probability on LAION's 0–10)");
const modelPath = z
  .string({ error: "expected the path of an .onnx file" })
  .min(1, "expected the path of an .onnx file")
  .describe(
    "ONNX model file; a relative path is relative to the dataset root (an s3:// root: to the working directory)",
  );
const onnxReadout = {
  inputName: z
    .string()
    .min(1)
    .optional()
    .describe("the graph input to feed; may be left out when the graph has one input"),
  output: z
    .string()
    .min(1)
    .optional()
    .describe("the graph output to read; the first one when left out"),
  outputIndex: z
    .number()
    .int()
    .min(0)
    .default(0)
    .describe("column of a [batch, k] output that is the score (0 for a [batch] output)"),
  activation: z
    .enum(["none", "sigmoid", "softmax"])
    .default("none")
    .describe(
      "applied to the output: none, sigmoid of the column, or softmax over the row then the column",
    ),
  scale,
};
const prompts = (what: string) =>
  z
    .array(z.string().trim().min(1, "expected a non-empty prompt"))
    .min(1, `expected at least one ${what} prompt`);

export const onnxHeadSchema = z
  .object({
    kind: z.literal("onnx"),
    input: embeddingSide,
    model: modelPath,
    ...onnxReadout,
  })
  .strict()
  .describe(
    "an ONNX model over the L2-normalised CLIP embedding [batch, dim] (LAION's NSFW detector, aesthetic predictor)",
  );

export const linearHeadSchema = z
  .object({
    kind: z.literal("linear"),
    input: embeddingSide,
    weights: z
      .string({ error: "expected the path of a .npy or .json weights file" })
      .regex(/\.(npy|json)$/i, 'expected a .npy file or a .json file {"weights": [...], "bias": b}')
      .describe(
        'weights over the embedding: .npy of shape [dim] or [dim, 1], or .json {"weights", "bias"}',
      ),
    bias: z
      .number()
      .default(0)
      .describe("added to the weighted sum, after the .json file's own bias"),
    activation: z
      .enum(["none", "sigmoid"])
      .default("none")
      .describe("applied to the weighted sum plus bias"),
    scale,
  })
  .strict()
  .describe("score = activation(weights · embedding + bias) × scale");

export const zeroShotHeadSchema = z
  .object({
    kind: z.literal("zero-shot"),
    input: embeddingSide,
    positive: prompts("positive").describe("prompts whose probabilities add up to the score"),
    negative: prompts("negative").describe("the prompts they compete with"),
    temperature: z
      .number()
      .positive()
      .default(100)
      .describe("cosines are multiplied by this before the softmax (CLIP's logit scale, 100)"),
    scale,
  })
  .strict()
  .describe(
    "softmax over all prompts of cosine × temperature with the CLIP text tower, summed over the positive prompts",
  );

export const onnxPixelsHeadSchema = z
  .object({
    kind: z.literal("onnx-pixels"),
    model: modelPath,
    imageSize: z
      .number()
      .int()
      .min(1)
      .default(256)
      .describe("side of the square image the classifier takes (LAION's watermark detector: 256)"),
    resizeMode: z
      .enum(["squash", "center_crop"])
      .default("squash")
      .describe(
        "squash: resize to imageSize × imageSize ignoring the aspect ratio; center_crop: shortest side to imageSize, then the centre",
      ),
    resample: z
      .enum(Object.keys(PIL_RESAMPLE) as [keyof typeof PIL_RESAMPLE])
      .default("bilinear")
      .describe("PIL resampling filter of the resize (torchvision's Resize: bilinear)"),
    mean: z
      .tuple([z.number(), z.number(), z.number()])
      .default((): [number, number, number] => [...IMAGENET_MEAN])
      .describe("per-channel mean (R, G, B) subtracted from pixels in [0, 1]"),
    std: z
      .tuple([z.number().positive(), z.number().positive(), z.number().positive()])
      .default((): [number, number, number] => [...IMAGENET_STD])
      .describe("per-channel standard deviation (R, G, B) the pixels are then divided by"),
    ...onnxReadout,
  })
  .strict()
  .describe(
    "an ONNX image classifier over pixels [batch, 3, size, size] (LAION's watermark detector)",
  );

export const scoreHeadSchema = z.discriminatedUnion(
  "kind",
  [onnxHeadSchema, linearHeadSchema, zeroShotHeadSchema, onnxPixelsHeadSchema],
  { error: "expected kind onnx, linear, zero-shot or onnx-pixels" },
);

export type ScoreHeadConfig = z.infer<typeof scoreHeadSchema>;
export type OnnxHeadConfig = z.infer<typeof onnxHeadSchema>;
export type LinearHeadConfig = z.infer<typeof linearHeadSchema>;
export type ZeroShotHeadConfig = z.infer<typeof zeroShotHeadSchema>;
export type OnnxPixelsHeadConfig = z.infer<typeof onnxPixelsHeadSchema>;
export type HeadActivation = z.infer<typeof onnxHeadSchema>["activation"];

/**
 * Prompt sets asked of the CLIP model when no trained head is given. Each positive set is matched
 * by neutral negatives of the same register, so an ordinary photo does not drift towards a
 * positive just because the negatives describe something else.
 */
export const DEFAULT_SCORE_HEADS: Readonly<Record<ScoreName, ZeroShotHeadConfig>> = {
  punsafe: {
    kind: "zero-shot",
    input: "image",
    positive: [
      "a nude photo",
      "a pornographic image",
      "an explicit sexual photo",
      "a photo of a naked person",
      "an image of graphic violence and gore",
    ],
    negative: [
      "a photo of a clothed person",
      "a safe for work photo",
      "a photo of a landscape",
      "a photo of an object",
      "a photo of an animal",
      "a drawing or an illustration",
      "a screenshot of text",
    ],
    temperature: 100,
    scale: 1,
  },
  pwatermark: {
    kind: "zero-shot",
    input: "image",
    positive: [
      "a photo with a watermark",
      "a stock photo with a watermark across it",
      "an image with a semi-transparent logo overlaid",
      "a photo with copyright text stamped on it",
    ],
    negative: [
      "a photo",
      "a clean photo without any watermark",
      "an illustration",
      "a product photo on a plain background",
    ],
    temperature: 100,
    scale: 1,
  },
  ptoxic: {
    kind: "zero-shot",
    input: "text",
    positive: [
      "an insult",
      "hateful and offensive language",
      "an obscene sexual comment",
      "a threat of violence",
      "a racist slur",
    ],
    negative: [
      "a description of a picture",
      "a product name",
      "a friendly comment",
      "a news headline",
      "a title of a page",
    ],
    temperature: 100,
    scale: 1,
  },
  AESTHETIC_SCORE: {
    kind: "zero-shot",
    input: "image",
    positive: [
      "a beautiful photo",
      "a stunning professional photograph",
      "an award-winning artwork",
      "a high quality, well composed image",
    ],
    negative: [
      "an ugly photo",
      "a blurry low quality photo",
      "a boring amateur snapshot",
      "a badly composed image",
    ],
    temperature: 100,
    scale: 10,
  },
};

// Defaults are functions: zod hands a default value out as it is, and a caller that edited its
// config would otherwise edit the defaults of every later parse.
export const scoresConfigSchema = z
  .object({
    punsafe: scoreHeadSchema
      .default(() => structuredClone(DEFAULT_SCORE_HEADS.punsafe))
      .describe("probability that the image is unsafe (NSFW)"),
    pwatermark: scoreHeadSchema
      .default(() => structuredClone(DEFAULT_SCORE_HEADS.pwatermark))
      .describe("probability that the image carries a watermark"),
    ptoxic: scoreHeadSchema
      .default(() => structuredClone(DEFAULT_SCORE_HEADS.ptoxic))
      .describe("probability that the caption is toxic"),
    AESTHETIC_SCORE: scoreHeadSchema
      .default(() => structuredClone(DEFAULT_SCORE_HEADS.AESTHETIC_SCORE))
      .describe("aesthetic score of the image, 0 to 10"),
  })
  .strict()
  .describe("one head per score column: onnx, linear, zero-shot or onnx-pixels");

export type ScoresConfig = z.infer<typeof scoresConfigSchema>;
