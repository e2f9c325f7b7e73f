/**
 * The tiny CLIP vision tower: `pixel_values` float [batch, 3, size, size] (CLIP-normalised, as
 * the preprocessor writes them) → `image_embeds` float [batch, PROJECTION_DIM].
 *
 * Colour: a 1×1 convolution scores every pixel against the eight palette colours (the weights
 * undo the CLIP normalisation and compute −k·|pixel − colour|²/2 up to a per-pixel constant), a
 * Softmax over channels turns the scores into soft colour labels. The background colour is
 * what the image border shows (four Slices, ReduceMean); the foreground is every pixel whose
 * colour the border lacks, and the colour vector is the foreground's colour share.
 *
 * Shape: the foreground mask is sharpened (Sigmoid), and its area is compared with its bounding
 * box (ReduceMax along rows and columns gives the box's height and width). That fill ratio
 * separates upright shapes whatever their size and position: a square fills its box, a circle
 * π/4 of it, a triangle half, a five-pointed star a third. Gaussian bumps (Sub, Div, Mul,
 * Exp) around those ratios give the shape vector.
 */
import { type Rgb, SHAPE_PALETTE, type ShapeColour } from "../sample/shape-images.js";
import { COLOUR_AXES, PROJECTION_DIM, SHAPE_AXES } from "./concept-space.js";
import { OnnxGraphBuilder, TensorType } from "./onnx-graph.js";
import { appendJointProjection } from "./text-tower.js";

export interface VisionTowerOptions {
  imageSize: number;
  imageMean: readonly [number, number, number];
  imageStd: readonly [number, number, number];
}

/** Sharpness of the colour labels: with it, palette colours a JPEG shade apart stay apart. */
const COLOUR_SHARPNESS = 150;
/** Rows and columns of the border that show the background. */
const BORDER_WIDTH = 2;
/** Share of the border above which a prototype colour counts as background, and how sharply. */
const BACKGROUND_SHARE_THRESHOLD = 0.05;
const BACKGROUND_STEEPNESS = 100;
/** Least distance (0–255 RGB units) between an edge-blend prototype and any palette colour. */
const MIN_BLEND_DISTANCE = 60;
/** Steepness of the foreground mask around one half. */
const MASK_STEEPNESS = 16;
/**
 * Fill ratio (area / bounding box) of each upright shape as measured on 64-pixel crops of the
 * sample images: π/4, 1, 1/2 and 0.33 in theory, but the soft edge of the mask adds a little area,
 * the more so the longer the outline is for the area (the star, the triangle).
 */
const SHAPE_FILL_RATIOS: Readonly<Record<(typeof SHAPE_AXES)[number], number>> = {
  circle: 0.785,
  square: 1,
  triangle: 0.52,
  star: 0.36,
  none: 0,
};
/** How far a measured ratio may stray: a sixth of the gap between triangle and star. */
const FILL_RATIO_TOLERANCE = 0.06;

export function buildVisionTower(options: VisionTowerOptions): Uint8Array {
  const { imageSize, imageMean, imageStd } = options;
  const colours = COLOUR_AXES.slice(0, -1) as ShapeColour[];
  const shapes = SHAPE_AXES.slice(0, -1);

  const graph = new OnnxGraphBuilder("tiny_clip_vision");
  const pixels = graph.input("pixel_values", TensorType.FLOAT, ["batch", 3, imageSize, imageSize]);

  // score_c(x) = k·(p·c − |c|²/2) with p = x·std + mean, the pixel back in [0, 1].
  const prototypes = [...colours.map((colour) => SHAPE_PALETTE[colour]), ...edgeBlends(colours)];
  const weights: number[] = [];
  const biases: number[] = [];
  for (const rgb of prototypes) {
    const prototype = rgb.map((channel) => channel / 255);
    let bias = 0;
    prototype.forEach((value, channel) => {
      weights.push(COLOUR_SHARPNESS * value * (imageStd[channel] as number));
      bias += value * (imageMean[channel] as number) - (value * value) / 2;
    });
    biases.push(COLOUR_SHARPNESS * bias);
  }
  graph.floatTensor("colour_weights", [prototypes.length, 3, 1, 1], weights);
  graph.floatTensor("colour_biases", [prototypes.length], biases);
  graph.node("Conv", [pixels, "colour_weights", "colour_biases"], "colour_scores");
  graph.node("Softmax", ["colour_scores"], "colour_labels", { axis: 1 });

  const border = (name: string, axis: number, start: number, end: number) => {
    graph.int64Tensor(`${name}_start`, [1], [start]);
    graph.int64Tensor(`${name}_end`, [1], [end]);
    graph.int64Tensor(`${name}_axis`, [1], [axis]);
    graph.node(
      "Slice",
      ["colour_labels", `${name}_start`, `${name}_end`, `${name}_axis`],
      `${name}_strip`,
    );
    return graph.node("ReduceMean", [`${name}_strip`], `${name}_colours`, { axes: [2, 3] });
  };
  const strips = [
    border("top", 2, 0, BORDER_WIDTH),
    border("bottom", 2, imageSize - BORDER_WIDTH, imageSize),
    border("left", 3, 0, BORDER_WIDTH),
    border("right", 3, imageSize - BORDER_WIDTH, imageSize),
  ];
  graph.node("Sum", strips, "border_colour_sum");
  graph.floatTensor("quarter", [], [0.25]);
  graph.node("Mul", ["border_colour_sum", "quarter"], "background_colours");
  // A prototype is background when the border shows it at all (a steep step at a few percent):
  // a soft 1 − share would leave a little of a large background in the foreground.
  graph.floatTensor("background_threshold", [], [BACKGROUND_SHARE_THRESHOLD]);
  graph.floatTensor("background_steepness", [], [BACKGROUND_STEEPNESS]);
  graph.node("Sub", ["background_colours", "background_threshold"], "background_excess");
  graph.node("Mul", ["background_excess", "background_steepness"], "background_logits");
  graph.node("Sigmoid", ["background_logits"], "is_background");
  graph.floatTensor("float_one", [], [1]);
  graph.node("Sub", ["float_one", "is_background"], "not_background");
  graph.node("Mul", ["colour_labels", "not_background"], "foreground_prototypes");
  // Only the palette colours count; edge blends are neither foreground nor background.
  graph.int64Tensor("palette_start", [1], [0]);
  graph.int64Tensor("palette_end", [1], [colours.length]);
  graph.int64Tensor("channel_axis", [1], [1]);
  graph.node(
    "Slice",
    ["foreground_prototypes", "palette_start", "palette_end", "channel_axis"],
    "foreground_labels",
  );

  graph.node("ReduceMean", ["foreground_labels"], "colour_mass", { axes: [2, 3], keepdims: 0 });
  graph.node("ReduceSum", ["colour_mass", "channel_axis"], "foreground_mass", { keepdims: 1 });
  graph.floatTensor("epsilon", [], [1e-6]);
  graph.node("Add", ["foreground_mass", "epsilon"], "foreground_mass_safe");
  graph.node("Div", ["colour_mass", "foreground_mass_safe"], "colour_share");

  graph.node("ReduceSum", ["foreground_labels", "channel_axis"], "foreground_soft", {
    keepdims: 1,
  });
  graph.floatTensor("half", [], [0.5]);
  graph.floatTensor("mask_steepness", [], [MASK_STEEPNESS]);
  graph.node("Sub", ["foreground_soft", "half"], "mask_centred");
  graph.node("Mul", ["mask_centred", "mask_steepness"], "mask_logits");
  graph.node("Sigmoid", ["mask_logits"], "foreground");

  graph.int64Tensor("spatial_axes", [2], [2, 3]);
  graph.node("ReduceSum", ["foreground", "spatial_axes"], "area", { keepdims: 0 });
  graph.node("ReduceMax", ["foreground"], "row_coverage", { axes: [3], keepdims: 0 });
  graph.node("ReduceMax", ["foreground"], "column_coverage", { axes: [2], keepdims: 0 });
  graph.int64Tensor("coverage_axis", [1], [2]);
  graph.node("ReduceSum", ["row_coverage", "coverage_axis"], "box_height", { keepdims: 0 });
  graph.node("ReduceSum", ["column_coverage", "coverage_axis"], "box_width", { keepdims: 0 });
  graph.node("Mul", ["box_height", "box_width"], "box_area");
  graph.node("Add", ["box_area", "epsilon"], "box_area_safe");
  graph.node("Div", ["area", "box_area_safe"], "fill_ratio");

  graph.floatTensor(
    "shape_fill_ratios",
    [shapes.length],
    shapes.map((shape) => SHAPE_FILL_RATIOS[shape]),
  );
  graph.floatTensor("fill_ratio_tolerance", [], [FILL_RATIO_TOLERANCE]);
  graph.node("Sub", ["fill_ratio", "shape_fill_ratios"], "fill_offset");
  graph.node("Div", ["fill_offset", "fill_ratio_tolerance"], "fill_distance");
  graph.node("Mul", ["fill_distance", "fill_distance"], "fill_distance_squared");
  graph.node("Neg", ["fill_distance_squared"], "fill_log_likeness");
  graph.node("Exp", ["fill_log_likeness"], "shape_likeness");

  appendJointProjection(graph, "colour_share", "shape_likeness", "image_embeds");
  graph.output("image_embeds", TensorType.FLOAT, ["batch", PROJECTION_DIM]);
  return graph.encode("tiny CLIP vision tower: foreground colour and fill ratio, projection");
}

/**
 * Blends of each colour with white and with black, a quarter, half and three quarters of the way.
 * An antialiased or JPEG-blurred edge is such a blend, and without these prototypes it would be
 * labelled as whichever palette colour happens to be nearest (the edge between red and white is
 * closer to orange than to either); with them, edges are labelled as no colour at all. Blends
 * close to a palette colour are left out, or they would take its own pixels (black's darkest
 * blends are nearly black).
 */
function edgeBlends(colours: readonly ShapeColour[]): Rgb[] {
  const blends: Rgb[] = [];
  const seen = new Set<string>();
  for (const colour of colours) {
    for (const towards of [SHAPE_PALETTE.white, SHAPE_PALETTE.black]) {
      for (const share of [0.25, 0.5, 0.75]) {
        const blend = SHAPE_PALETTE[colour].map((channel, index) =>
          Math.round(channel + share * ((towards[index] as number) - channel)),
        ) as unknown as Rgb;
        const key = blend.join(",");
        const nearPalette = colours.some(
          (named) => distance(SHAPE_PALETTE[named], blend) < MIN_BLEND_DISTANCE,
        );
        if (nearPalette || seen.has(key)) continue;
        seen.add(key);
        blends.push(blend);
      }
    }
  }
  return blends;
}

function distance(left: Rgb, right: Rgb): number {
  return Math.hypot(left[0] - right[0], left[1] - right[1], left[2] - right[2]);
}
