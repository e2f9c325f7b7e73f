import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Float16Reranker } from "../bench/engines/f16-reranker.js";
import { IvfPqIndex } from "../bench/engines/ivf-pq.js";
import { encodeNpy } from "../src/io/npy.js";
import { toFloat16Bits } from "../src/models/float16.js";

const DIMENSIONS = 16;

function clusteredVectors(count: number): Float32Array {
  let state = 7;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const centres = Float32Array.from({ length: 8 * DIMENSIONS }, next);
  const vectors = new Float32Array(count * DIMENSIONS);
  for (let row = 0; row < count; row++) {
    const centre = (row % 8) * DIMENSIONS;
    let norm = 0;
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      const value = (centres[centre + dim] as number) * 4 + next();
      vectors[row * DIMENSIONS + dim] = value;
      norm += value * value;
    }
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      const at = row * DIMENSIONS + dim;
      vectors[at] = (vectors[at] as number) / Math.sqrt(norm);
    }
  }
  return vectors;
}

test("the own IVF-PQ with float16 re-ranking finds a stored vector as its own nearest neighbour", async () => {
  const folder = await mkdtemp(join(tmpdir(), "clipcrawl-ivfpq-"));
  try {
    const vectors = clusteredVectors(2000);
    const path = join(folder, "img_emb_00000.npy");
    await writeFile(
      path,
      encodeNpy({ dtype: "<f2", shape: [2000, DIMENSIONS], data: toFloat16Bits(vectors) }),
    );
    const index = IvfPqIndex.build(vectors, DIMENSIONS, {
      lists: 8,
      subQuantizers: 4,
      pointsPerList: 250,
      iterations: 5,
      threads: 1,
    });
    const reranker = new Float16Reranker([path], DIMENSIONS);
    const candidates = new Uint32Array(50);
    let found = 0;
    for (const row of [0, 17, 503, 1999]) {
      const query = vectors.subarray(row * DIMENSIONS, (row + 1) * DIMENSIONS);
      const count = index.search(query, 2, 50, candidates);
      assert.equal(count, 50);
      if (reranker.rerank(query, candidates, count, 1)[0] === row) found++;
    }
    reranker.close();
    assert.equal(found, 4);
    assert.ok(index.bytes() < vectors.byteLength, "codes take less room than the vectors");
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
});

test("the float16 re-ranker refuses embeddings of another dimension, naming the file", async () => {
  const folder = await mkdtemp(join(tmpdir(), "clipcrawl-rerank-"));
  try {
    const path = join(folder, "img_emb_00000.npy");
    await writeFile(path, encodeNpy({ dtype: "<f2", shape: [3, 8], data: new Uint16Array(24) }));
    assert.throws(
      () => new Float16Reranker([path], DIMENSIONS),
      (error: Error) => {
        assert.match(error.message, /img_emb_00000\.npy: expected float16 rows of 16/);
        return true;
      },
    );
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
});

test("the own IVF-PQ refuses a code size that does not split the dimensions", () => {
  assert.throws(
    () =>
      IvfPqIndex.build(clusteredVectors(300), DIMENSIONS, {
        lists: 2,
        subQuantizers: 5,
        pointsPerList: 100,
        iterations: 1,
        threads: 1,
      }),
    /16 dimensions do not split into 5 sub-quantisers/,
  );
});
