/**
 * The embedding space the tiny CLIP model's two towers share, designed by hand rather than
 * trained. A pair is described by a colour (one of the sample's eight, or "none") and a shape
 * (one of four, or "none"); the joint embedding is the outer product colour ⊗ shape (9 × 5 = 45
 * values), rotated into PROJECTION_DIM dimensions by a fixed orthonormal projection.
 *
 * The outer product is what makes the cosine meaningful: a caption scores high only when both its
 * colour and its shape agree with the image, and near zero when either is wrong. The small
 * constant on the "none" axes keeps every embedding non-zero (a caption without colour or shape
 * words still has a direction) while adding little to any cosine.
 */
import { mixSeed, SeededRandom, SHAPE_COLOURS, SHAPE_NAMES } from "../sample/wat-generator.js";

export const COLOUR_AXES = [...SHAPE_COLOURS, "none"] as const;
export const SHAPE_AXES = [...SHAPE_NAMES, "none"] as const;
export const JOINT_SIZE = COLOUR_AXES.length * SHAPE_AXES.length;
/** Output size of both towers; a little more than JOINT_SIZE, as a real projection would be. */
export const PROJECTION_DIM = 48;
/** Value of the "none" colour and shape axes, relative to one word or a whole image's colour. */
export const NONE_AXIS_WEIGHT = 0.1;

/** Words that name a colour or a shape for the text tower, with their plurals. */
export const SHAPE_WORDS: Readonly<Record<(typeof SHAPE_NAMES)[number], readonly string[]>> = {
  circle: ["circle", "circles"],
  square: ["square", "squares"],
  triangle: ["triangle", "triangles"],
  star: ["star", "stars"],
};

/**
 * Nouns after which a colour word describes the surroundings, not the subject: in "a red circle
 * on a white background" the circle is red, not white.
 */
export const BACKGROUND_NOUNS = ["background", "backdrop", "card", "paper"] as const;

/** The JOINT_SIZE × PROJECTION_DIM matrix both towers end with: orthonormal rows, seeded. */
export function jointProjection(): Float32Array {
  const random = new SeededRandom(mixSeed(0x7c11, JOINT_SIZE, PROJECTION_DIM));
  const rows: number[][] = [];
  while (rows.length < JOINT_SIZE) {
    const row = Array.from({ length: PROJECTION_DIM }, () => random.next() * 2 - 1);
    // Gram–Schmidt against the rows so far keeps cosines exact after projection.
    for (const previous of rows) {
      const overlap = dot(row, previous);
      for (let index = 0; index < row.length; index++) {
        row[index] = (row[index] as number) - overlap * (previous[index] as number);
      }
    }
    const norm = Math.sqrt(dot(row, row));
    if (norm > 1e-3) rows.push(row.map((value) => value / norm));
  }
  return Float32Array.from(rows.flat());
}

function dot(left: readonly number[], right: readonly number[]): number {
  let sum = 0;
  for (let index = 0; index < left.length; index++) {
    sum += (left[index] as number) * (right[index] as number);
  }
  return sum;
}
