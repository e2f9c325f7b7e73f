import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { VectorGraph } from "../src/formats/index/graph.js";
import type { GraphQuantization } from "../src/formats/index/index-manifest.js";
import { randomUnit } from "./support/index-fixture.js";
import { tempDir } from "./support/temp.js";

const DIMENSIONS = 32;
const ROWS = 400;

let workDir: string;

before(async () => {
  workDir = await tempDir("index-graph");
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** ROWS unit rows, then each scaled by a factor of 0.2–5 (what an index may be handed). */
function scaledRows(seed: number): { units: Float32Array; scaled: Float32Array } {
  const next = seededUniform(seed);
  const units = new Float32Array(ROWS * DIMENSIONS);
  const scaled = new Float32Array(ROWS * DIMENSIONS);
  for (let row = 0; row < ROWS; row++) {
    const vector = randomUnit(next, DIMENSIONS);
    const factor = 0.2 + 4.8 * next();
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      units[row * DIMENSIONS + dim] = vector[dim] as number;
      scaled[row * DIMENSIONS + dim] = (vector[dim] as number) * factor;
    }
  }
  return { units, scaled };
}

function cosines(units: Float32Array, query: Float32Array): { id: number; similarity: number }[] {
  let norm = 0;
  for (const value of query) norm += value * value;
  const scale = 1 / Math.sqrt(norm);
  const found: { id: number; similarity: number }[] = [];
  for (let row = 0; row < ROWS; row++) {
    let dot = 0;
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      dot += (units[row * DIMENSIONS + dim] as number) * (query[dim] as number) * scale;
    }
    found.push({ id: row, similarity: dot });
  }
  return found.sort((a, b) => b.similarity - a.similarity);
}

function assertCosineAnswers(
  graph: VectorGraph,
  units: Float32Array,
  tolerance: number,
  label: string,
): void {
  const next = seededUniform(99);
  for (let query = 0; query < 20; query++) {
    // A query of norm 7: similarities are cosines whatever the norms on either side.
    const vector = randomUnit(next, DIMENSIONS).map((value) => value * 7);
    const all = cosines(units, vector);
    const cosineOf = new Map(all.map((hit) => [hit.id, hit.similarity]));
    const found = graph.search(vector, 5);
    assert.equal(found.ids.length, 5, label);
    found.ids.forEach((id, at) => {
      // Each row's similarity is its cosine; the first is the true nearest (HNSW may miss a
      // lower rank, which is not what this checks).
      const cosine = cosineOf.get(id) as number;
      const where = `${label}: query ${query}, rank ${at}`;
      if (at === 0) {
        const truth = all[0]?.similarity as number;
        assert.ok(
          Math.abs(cosine - truth) <= tolerance,
          `${where}: row ${id} at ${cosine}, truth ${truth}`,
        );
      }
      const similarity = found.similarities[at] as number;
      assert.ok(
        Math.abs(similarity - cosine) <= tolerance,
        `${where}: similarity ${similarity}, cosine ${cosine}`,
      );
    });
    const [batch] = graph.searchBatch(Float32Array.from([...vector, ...vector]), 5, ADD_THREADS);
    assert.deepEqual(Array.from(batch?.ids ?? []), Array.from(found.ids), `${label}: batch`);
  }
}

const SETTINGS = { connectivity: 16, expansionAdd: 128, expansionSearch: 400 };
/**
 * One thread: the same graph every run. Two insert in an order of their own and once in a while
 * leave a row the search cannot reach (CI's run lost a true nearest so). usearch then searches
 * on as many threads as the graph was built with.
 */
const ADD_THREADS = 1;

test("a graph answers cosine similarities for rows and queries of any norm, at every precision", () => {
  const { units, scaled } = scaledRows(3);
  const tolerances: Record<GraphQuantization, number> = { f32: 2e-4, f16: 2e-3, i8: 5e-2 };
  for (const quantization of ["f32", "f16", "i8"] as const) {
    const graph = VectorGraph.create(DIMENSIONS, { ...SETTINGS, quantization });
    graph.add(0, scaled, ADD_THREADS);
    assert.equal(graph.size, ROWS);
    assertCosineAnswers(graph, units, tolerances[quantization], quantization);
  }
});

test("a graph saved with usearch's cosine metric (indices built before) opens, answers and grows alike", () => {
  const { units, scaled } = scaledRows(7);
  const usearch = createRequire(import.meta.url)("usearch") as typeof import("usearch");
  const old = new usearch.Index({
    dimensions: DIMENSIONS,
    metric: usearch.MetricKind.Cos,
    quantization: usearch.ScalarKind.F32,
    connectivity: 16,
    expansion_add: 128,
    expansion_search: 64,
    multi: false,
  });
  const half = (ROWS / 2) * DIMENSIONS;
  const keys = BigUint64Array.from({ length: ROWS / 2 }, (_, row) => BigInt(row));
  old.add(keys, scaled.subarray(0, half), 1);
  const path = join(workDir, "cosine.usearch");
  old.save(path);

  const settings = { ...SETTINGS, quantization: "f32" as const };
  const grown = VectorGraph.open(path, DIMENSIONS, settings, "load");
  grown.add(ROWS / 2, scaled.subarray(half), 2);
  assertCosineAnswers(grown, units, 2e-4, "cosine file grown");
  const grownPath = join(workDir, "cosine-grown.usearch");
  grown.save(grownPath);
  assertCosineAnswers(
    VectorGraph.open(grownPath, DIMENSIONS, settings, "view"),
    units,
    2e-4,
    "cosine file viewed",
  );
});
