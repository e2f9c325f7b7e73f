/**
 * Rows of a matrix scaled to unit length: CLIP's embeddings, compared by their cosine, which is
 * then their inner product. A leaf module, so the index (src/formats/index/) can use it without
 * loading the models' image code.
 */
import type { EmbeddingMatrix } from "./onnx-tower.js";

/** Scales every row to unit length; an all-zero row stays zero (its cosine with anything is 0). */
export function normaliseRows(embeddings: EmbeddingMatrix): EmbeddingMatrix {
  const { rows, dimensions } = embeddings;
  const data = new Float32Array(embeddings.data.length);
  for (let row = 0; row < rows; row++) {
    let sumOfSquares = 0;
    for (let column = 0; column < dimensions; column++) {
      const value = embeddings.data[row * dimensions + column] as number;
      sumOfSquares += value * value;
    }
    const scale = sumOfSquares > 0 ? 1 / Math.sqrt(sumOfSquares) : 0;
    for (let column = 0; column < dimensions; column++) {
      data[row * dimensions + column] =
        (embeddings.data[row * dimensions + column] as number) * scale;
    }
  }
  return { rows, dimensions, data };
}
