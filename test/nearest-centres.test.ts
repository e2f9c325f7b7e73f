import assert from "node:assert/strict";
import { test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { NearestCentres } from "../src/models/nearest-centres.js";

function bruteForce(
  rows: Float32Array,
  centres: Float32Array,
  subspaces: number,
  width: number,
  count: number,
): Uint32Array {
  const total = rows.length / (subspaces * width);
  const answer = new Uint32Array(total * subspaces);
  for (let row = 0; row < total; row++) {
    for (let sub = 0; sub < subspaces; sub++) {
      let best = 0;
      let bestDistance = Number.POSITIVE_INFINITY;
      for (let centre = 0; centre < count; centre++) {
        let distance = 0;
        for (let dim = 0; dim < width; dim++) {
          const delta =
            (rows[(row * subspaces + sub) * width + dim] as number) -
            (centres[(sub * count + centre) * width + dim] as number);
          distance += delta * delta;
        }
        if (distance < bestDistance) {
          bestDistance = distance;
          best = centre;
        }
      }
      answer[row * subspaces + sub] = best;
    }
  }
  return answer;
}

test("each row's nearest centre in every subspace is brute force's, across batches", async () => {
  const next = seededUniform(3);
  const nearest = await NearestCentres.open(1);
  try {
    for (const [rows, subspaces, width, count] of [
      [300, 1, 24, 17],
      [200, 8, 4, 256],
      // 4 × 2^22 scores a batch: 2^24 / (4 × 2^12 centres) = 1,024 rows a batch, 3 batches.
      [2500, 4, 2, 4096],
    ] as const) {
      const data = Float32Array.from({ length: rows * subspaces * width }, () => next() * 2 - 1);
      const centres = Float32Array.from(
        { length: subspaces * count * width },
        () => next() * 2 - 1,
      );
      const found = await nearest.nearest(data, centres, subspaces, width, count);
      assert.deepEqual(found, bruteForce(data, centres, subspaces, width, count));
    }
    await assert.rejects(
      nearest.nearest(new Float32Array(8), new Float32Array(5), 1, 4, 2),
      /5 centre values, expected 1 × 2 × 4/,
    );
  } finally {
    await nearest.close();
  }
});
