import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { CompressedGraph } from "../src/formats/index/compressed-graph.js";
import { IvfPqFileError, IvfPqIndex } from "../src/formats/index/ivf-pq.js";
import { RowLists } from "../src/formats/index/row-lists.js";
import { encodeSegmentVectors, SegmentVectors } from "../src/formats/index/segment-vectors.js";
import { fromFloat16Bits, toFloat16Bits } from "../src/models/float16.js";
import { tempDir } from "./support/temp.js";

const DIMENSIONS = 64;
const ROWS = 4000;

/** Unit vectors around 40 random centres (CLIP-like: clustered, not uniform), float16-rounded. */
function clusteredVectors(count: number, seed: number): Float32Array {
  let state = seed;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const centres = Float32Array.from({ length: 40 * DIMENSIONS }, next);
  const vectors = new Float32Array(count * DIMENSIONS);
  for (let row = 0; row < count; row++) {
    const centre = Math.floor((next() + 0.5) * 40) * DIMENSIONS;
    let norm = 0;
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      const value = (centres[centre + dim] as number) * 2 + next();
      vectors[row * DIMENSIONS + dim] = value;
      norm += value * value;
    }
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      const at = row * DIMENSIONS + dim;
      vectors[at] = (vectors[at] as number) / Math.sqrt(norm);
    }
  }
  return fromFloat16Bits(toFloat16Bits(vectors));
}

function exactTop(vectors: Float32Array, query: Float32Array, k: number): number[] {
  const scores: { id: number; score: number }[] = [];
  for (let row = 0; row < vectors.length / DIMENSIONS; row++) {
    let sum = 0;
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      sum += (vectors[row * DIMENSIONS + dim] as number) * (query[dim] as number);
    }
    scores.push({ id: row, score: sum });
  }
  return scores
    .sort((a, b) => b.score - a.score)
    .slice(0, k)
    .map((entry) => entry.id);
}

const PARAMS = { lists: 16, subQuantizers: 16, probes: 4, rerank: 50 };
let folder: string;
let vectors: Float32Array;
/** Drawn from the same clusters as the rows, not stored. */
let queries: Float32Array;
let savedPath: string;
let rowSource: SegmentVectors;

before(async () => {
  folder = await tempDir("ivfpq");
  const drawn = clusteredVectors(ROWS + 50, 7);
  vectors = drawn.slice(0, ROWS * DIMENSIONS);
  queries = drawn.slice(ROWS * DIMENSIONS);
  const rowsPath = join(folder, "image_emb.npy");
  await writeFile(rowsPath, encodeSegmentVectors(vectors, DIMENSIONS));
  rowSource = await SegmentVectors.open(
    [{ path: rowsPath, firstId: 0, rows: ROWS }],
    DIMENSIONS,
    false,
  );
  // Two adds: the first trains, the second is encoded with that training.
  const graph = CompressedGraph.create(DIMENSIONS, PARAMS);
  await graph.add(0, vectors.subarray(0, 3000 * DIMENSIONS), 1);
  await graph.add(3000, vectors.subarray(3000 * DIMENSIONS), 1);
  savedPath = join(folder, "image.ivfpq");
  await graph.save(savedPath);
});

after(() => rowSource.close());

test("the compressed tier reaches recall@10 ≥ 0.9 on clustered vectors after the float16 re-rank", async () => {
  const graph = await CompressedGraph.open(savedPath, DIMENSIONS, PARAMS);
  graph.attachVectors(rowSource);
  assert.equal(graph.size, ROWS);
  assert.ok(graph.bytes < ROWS * DIMENSIONS, "lists, codes and ids take less than a byte a value");
  let hits = 0;
  for (let query = 0; query < 50; query++) {
    const vector = queries.subarray(query * DIMENSIONS, (query + 1) * DIMENSIONS);
    const found = graph.search(vector, 10);
    assert.equal(found.ids.length, 10);
    for (let at = 1; at < 10; at++) {
      assert.ok((found.similarities[at - 1] as number) >= (found.similarities[at] as number));
    }
    const truth = new Set(exactTop(vectors, vector, 10));
    for (const id of found.ids) if (truth.has(id)) hits++;
  }
  assert.ok(hits / 500 >= 0.9, `recall@10 ${hits / 500}`);
});

test("a stored row is its own nearest neighbour, rows of the second add included", async () => {
  const graph = await CompressedGraph.open(savedPath, DIMENSIONS, PARAMS);
  graph.attachVectors(rowSource);
  for (const row of [0, 17, 2999, 3000, 3999]) {
    const query = vectors.subarray(row * DIMENSIONS, (row + 1) * DIMENSIONS);
    assert.equal(graph.search(query, 1).ids[0], row);
  }
});

test("more candidates than the probed lists hold: more lists are scanned until there are enough", async () => {
  const graph = await CompressedGraph.open(savedPath, DIMENSIONS, { ...PARAMS, probes: 1 });
  graph.attachVectors(rowSource);
  const found = graph.search(vectors.subarray(0, DIMENSIONS), 1500);
  assert.equal(found.ids.length, 1500);
  assert.equal(new Set(found.ids).size, 1500);
});

test("a damaged index file is refused with its path: truncated, a flipped byte, not an index", async () => {
  const bytes = await readFile(savedPath);
  const cases: [string, Buffer, RegExp][] = [
    [
      "truncated.ivfpq",
      bytes.subarray(0, bytes.length - 100),
      /bytes, the header implies .*truncated/,
    ],
    ["flipped.ivfpq", Buffer.from(bytes), /checksum mismatch/],
    [
      "other.ivfpq",
      Buffer.from("PAR1 something else entirely, not an index"),
      /not a clipcrawl IVF-PQ/,
    ],
  ];
  const flipped = cases[1]?.[1] as Buffer;
  flipped[bytes.length - 7] = (flipped[bytes.length - 7] as number) ^ 0x40;
  for (const [name, content, reason] of cases) {
    const path = join(folder, name);
    await writeFile(path, content);
    await assert.rejects(CompressedGraph.open(path, DIMENSIONS, PARAMS), (error: Error) => {
      assert.ok(error instanceof IvfPqFileError, String(error));
      assert.ok(error.message.startsWith(`${path}: `), error.message);
      assert.match(error.message, reason);
      assert.equal(error.message.includes("\n"), false);
      return true;
    });
  }
});

test("an index built for another dimension is refused with one line", async () => {
  await assert.rejects(IvfPqIndex.open(savedPath, 512), (error: Error) => {
    assert.equal(error.message, `${savedPath}: built for 64-d vectors, the index holds 512-d`);
    return true;
  });
});

test("a code size that does not split the dimensions is refused", async () => {
  await assert.rejects(
    () =>
      IvfPqIndex.train(vectors, DIMENSIONS, {
        lists: 4,
        subQuantizers: 5,
        pointsPerList: 100,
        pointsPerCode: 4,
        iterations: 1,
        threads: 1,
      }),
    /64 dimensions do not split into 5 sub-quantisers/,
  );
});

test("fewer than 256 rows wait untrained, are searched exactly, and cannot be saved alone", async () => {
  const graph = CompressedGraph.create(DIMENSIONS, PARAMS);
  await graph.add(100, vectors.subarray(0, 200 * DIMENSIONS), 1);
  assert.equal(graph.size, 200);
  const found = graph.search(vectors.subarray(5 * DIMENSIONS, 6 * DIMENSIONS), 3);
  assert.equal(found.ids[0], 105);
  await assert.rejects(
    graph.save(join(folder, "small.ivfpq")),
    /at least 256 rows to train on, has 200/,
  );
  await graph.add(300, vectors.subarray(200 * DIMENSIONS, 400 * DIMENSIONS), 1);
  assert.equal(graph.size, 400);
  await graph.save(join(folder, "small.ivfpq"));
});

test("add gives each encoded row's list under its training's key (none while rows wait untrained)", async () => {
  const graph = CompressedGraph.create(DIMENSIONS, PARAMS, { trainingRows: 1000 });
  assert.equal(await graph.add(0, vectors.subarray(0, 500 * DIMENSIONS), 1), undefined);
  // The training happens in this add, over the waiting rows too: their lists are not these.
  assert.equal(
    await graph.add(500, vectors.subarray(500 * DIMENSIONS, 1000 * DIMENSIONS), 1),
    undefined,
  );
  const later = vectors.subarray(1000 * DIMENSIONS, 2000 * DIMENSIONS);
  const added = await graph.add(1000, later, 1);
  const saved = await IvfPqIndex.open(join(folder, "image.ivfpq"), DIMENSIONS);
  assert.ok(added !== undefined);
  const trained = join(folder, "assigned.ivfpq");
  await graph.save(trained);
  const index = await IvfPqIndex.open(trained, DIMENSIONS);
  assert.equal(added.trainingKey, index.trainingKey);
  assert.notEqual(added.trainingKey, saved.trainingKey, "another training has another key");
  assert.deepEqual(added.lists, await index.assign(later, 1));
  const counts = new Uint32Array(index.lists);
  for (const list of added.lists) counts[list] = (counts[list] as number) + 1;
  assert.ok(counts.filter((count) => count > 0).length > 1, "rows fall in several lists");
});

test("every approximate score is the query's inner product with the row its code decodes to, for every code layout", async () => {
  // 4 dimensions a sub-quantiser (the table's fast path), 8 and 16 (the general one); 16 and 8
  // sub-quantisers (the scan's eight-a-step loop), 4 (its tail alone).
  const rows = 1200;
  const sample = vectors.subarray(0, rows * DIMENSIONS);
  const query = queries.subarray(0, DIMENSIONS);
  for (const subQuantizers of [16, 8, 4]) {
    const index = await IvfPqIndex.build(sample, DIMENSIONS, {
      lists: 4,
      subQuantizers,
      pointsPerList: 200,
      pointsPerCode: 4,
      iterations: 2,
      threads: 1,
    });
    const ids = new Uint32Array(rows);
    const scores = new Float32Array(rows);
    assert.equal(index.search(query, index.lists, rows, ids, scores), rows);
    const expected = new Map<number, number>();
    for (let list = 0; list < index.lists; list++) {
      const decoded = index.decodeList(list);
      decoded.ids.forEach((id, at) => {
        let sum = 0;
        for (let dim = 0; dim < DIMENSIONS; dim++) {
          sum += (decoded.vectors[at * DIMENSIONS + dim] as number) * (query[dim] as number);
        }
        expected.set(id, sum);
      });
    }
    assert.equal(expected.size, rows);
    ids.forEach((id, at) => {
      const want = expected.get(id) as number;
      assert.ok(
        Math.abs((scores[at] as number) - want) < 1e-4,
        `m ${subQuantizers}, row ${id}: ${scores[at]} against ${want}`,
      );
    });
  }
});

test("every near-duplicate pair is found: rows far from their list's centroid (their codes' lost norm added back) and pairs a list boundary splits", async () => {
  const dir = await tempDir("ivfpq-twins");
  const { stored, twins } = withTwins(clusteredVectors(2000, 23));
  const path = join(dir, "image_emb.npy");
  await writeFile(path, encodeSegmentVectors(stored, DIMENSIONS));
  const source = await SegmentVectors.open([{ path, firstId: 0, rows: 2000 }], DIMENSIONS, false);
  try {
    const expected = nearDuplicatesOf(stored);
    assert.ok(twins.length > 150);
    // One list: its rows lie far from its centroid and their codes lose ~10 % of their norm.
    // 48 lists of about 42 rows: some twins are filed in lists beside each other's.
    for (const lists of [1, 48]) {
      const graph = CompressedGraph.create(DIMENSIONS, { ...PARAMS, lists });
      await graph.add(0, stored, 1);
      graph.attachVectors(source);
      const found = await graph.nearDuplicates(stored, {
        threshold: 0.96,
        count: 10,
        threads: 1,
        firstId: 0,
      });
      for (let row = 0; row < 2000; row++) {
        const ids = [...(found[row]?.ids ?? [])].sort();
        assert.deepEqual(ids, expected(row).sort(), `${lists} lists, row ${row}`);
      }
    }
  } finally {
    source.close();
  }
});

test("the memory tier's build lists find every near-duplicate pair of its rows, and none below the threshold", async () => {
  const { stored, twins } = withTwins(clusteredVectors(2000, 29));
  assert.ok(twins.length > 150);
  const expected = nearDuplicatesOf(stored);
  const bits = toFloat16Bits(stored);
  // Two segments, as a build adds them; ids from 500: the lists number rows from 0.
  const added = [
    { firstId: 500, bits: bits.subarray(0, 700 * DIMENSIONS) },
    { firstId: 1200, bits: bits.subarray(700 * DIMENSIONS) },
  ];
  const lists = await RowLists.build(added, DIMENSIONS, 1);
  assert.equal(added.length, 0, "the build takes the chunks, so it holds one copy of the rows");
  assert.ok(lists.lists > 30, `${lists.lists} lists: pairs split by a boundary are possible`);
  const found = Array.from({ length: 2000 }, () => new Set<number>());
  await lists.nearDuplicates({ threshold: 0.96, count: 10, threads: 1 }, (row, other) => {
    assert.notEqual(row, other);
    found[row]?.add(other);
  });
  for (let row = 0; row < 2000; row++) {
    assert.deepEqual([...(found[row] ?? [])].sort(), expected(row).sort(), `row ${row}`);
  }
});

/**
 * `rows` with about 200 rows replaced by near-duplicates of an earlier row (noise of norm
 * 0.08–0.24 over the 64 values: cosine 0.997 down to 0.972), rounded to float16 as stored.
 */
function withTwins(rows: Float32Array): { stored: Float32Array; twins: [number, number][] } {
  const next = seededUniform(5);
  const twins: [number, number][] = [];
  const count = rows.length / DIMENSIONS;
  for (let twin = 0; twin < 200; twin++) {
    const row = 100 + Math.floor(next() * (count - 100));
    const source = Math.floor(next() * row);
    if (twins.some(([other]) => other === source || other === row)) continue;
    const noise = 0.01 + 0.02 * next();
    const copy = rows.slice(source * DIMENSIONS, (source + 1) * DIMENSIONS);
    for (let dim = 0; dim < DIMENSIONS; dim++) {
      copy[dim] = (copy[dim] as number) + noise * 1.7 * (next() * 2 - 1);
    }
    const norm = Math.hypot(...copy);
    rows.set(
      copy.map((value) => value / norm),
      row * DIMENSIONS,
    );
    twins.push([row, source]);
  }
  return { stored: fromFloat16Bits(toFloat16Bits(rows)), twins };
}

/** Each row's rows at cosine ≥ 0.96 among its exact 10 nearest others. */
function nearDuplicatesOf(stored: Float32Array): (row: number) => number[] {
  const rowOf = (row: number) => stored.subarray(row * DIMENSIONS, (row + 1) * DIMENSIONS);
  const cosine = (a: number, b: number) =>
    rowOf(a).reduce((sum, value, dim) => sum + value * (rowOf(b)[dim] as number), 0);
  return (row) =>
    exactTop(stored, rowOf(row), 11).filter((other) => other !== row && cosine(row, other) >= 0.96);
}
