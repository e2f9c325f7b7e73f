/**
 * What every head kind is to the code that runs it: a batch of row-aligned pairs in, one score or
 * one error per row out. Errors are data at the sample level: a head that returns NaN for a row,
 * or cannot decode its image, gives that row null and a reason; the other rows keep their scores.
 */
import type { EmbeddingMatrix } from "../clip-model.js";

/** One batch of pairs: the L2-normalised embeddings of both sides, row-aligned. */
export interface HeadInputs {
  image: EmbeddingMatrix;
  text: EmbeddingMatrix;
  /** The encoded images, row-aligned; heads over pixels need them. */
  imageBytes?: readonly Uint8Array[];
}

/** Per row: the score, or null and the reason in `errors`. */
export interface HeadScores {
  values: (number | null)[];
  errors: (string | null)[];
}

export interface ScoreHead {
  /** The score column the head fills, which every row error names. */
  readonly name: string;
  /** Files the head was loaded from (models, weights), for the stage's input digest. */
  readonly files: readonly string[];
  readonly needsImageBytes: boolean;
  score(inputs: HeadInputs): Promise<HeadScores>;
  release(): Promise<void>;
}

/** The embedding side a head reads, checked against the size the head was loaded for. */
export function embeddingsFor(
  inputs: HeadInputs,
  side: "image" | "text",
  dimensions: number,
): EmbeddingMatrix {
  const matrix = inputs[side];
  if (matrix.dimensions !== dimensions) {
    throw new RangeError(
      `${side} embeddings have ${matrix.dimensions} dimensions, the head takes ${dimensions}`,
    );
  }
  return matrix;
}
