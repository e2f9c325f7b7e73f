/**
 * The memory tier's near-duplicate step: a build's lists of its own rows (RowLists, what
 * `joinAddedDuplicates` runs once every row is added) against searching an HNSW graph for each
 * row (`joinNearDuplicates` with `index.duplicateExpansion`, what the build did before and still
 * does for the rows of an index it extends), on the same rows.
 *
 * Vectors: N clustered 512-d rows as in `npm run bench -- index`, of which about 3 % are planted
 * near-duplicates of an earlier row (the row plus noise, cosine 0.965–0.997: a re-encoded or
 * resized copy of an image, as CLIP sees it; a copy of a copy makes a chain). One HNSW graph
 * (M 16, efConstruction 128, the index bench's) is built once and kept in bench/.data/; each
 * search list then runs over every row on that graph, memory-mapped; the lists take the rows as
 * the build holds them (float16, in segments of 100,000). Reported: seconds, rows/s, the planted
 * pairs that end in one group, rows in groups, and the step's share of a build of both graphs
 * plus the step (the stage's other parts are a few per cent; `npm run bench -- index` measures
 * the whole stage). Target: the share ≤ 20 % (issue 19).
 *
 *   npm run bench -- near-duplicates [--vectors 200000] [--lists 32] [--rebuild]
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { DuplicateGroups } from "../src/formats/index/duplicate-groups.js";
import { VectorGraph } from "../src/formats/index/graph.js";
import type { IndexParams } from "../src/formats/index/index-manifest.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { indexConfigSchema } from "../src/stages/index/config.js";
import { defaultExpansionSearch } from "../src/stages/index/index-params.js";
import { joinAddedDuplicates, joinNearDuplicates } from "../src/stages/index/near-duplicates.js";
import { ClusterMixture, NEAR_DUPLICATE_SHARE, plantNearDuplicate } from "./index.js";
import { type BenchRow, benchDataPath, loadAverage, printTable } from "./support.js";

const DIMENSIONS = 512;
/** Rows a segment, as the index bench's embedding shards. */
const SEGMENT_ROWS = 100_000;

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      vectors: { type: "string", default: "200000" },
      lists: { type: "string", default: "32" },
      rebuild: { type: "boolean", default: false },
    },
  });
  const rows = Number(values.vectors);
  const threads = cpus().length;
  const indexList = defaultExpansionSearch(rows);
  const chosen = indexConfigSchema.parse({}).duplicateExpansion;
  const lists = [...new Set([...values.lists.split(",").map(Number), chosen])].sort(
    (a, b) => a - b,
  );
  console.log(`${threads} cores, load average at start: ${loadAverage()}`);

  const { vectors, planted } = plantedVectors(rows);
  const params: IndexParams = {
    quantization: "f32",
    connectivity: 16,
    expansionAdd: 128,
    expansionSearch: indexList,
    flatMaxVectors: 0,
    duplicateThreshold: 0.96,
    duplicateNeighbors: 10,
    tier: "memory",
  };
  const graphPath = await benchDataPath(`near-duplicates-${rows}.usearch`);
  const buildPath = `${graphPath}.json`;
  let graphSeconds: number;
  if (values.rebuild || !(await exists(graphPath)) || !(await exists(buildPath))) {
    console.log(`building the image graph of ${rows} rows (once; kept in bench/.data/)`);
    const started = performance.now();
    const graph = VectorGraph.create(DIMENSIONS, params);
    graph.add(0, vectors, threads);
    graphSeconds = (performance.now() - started) / 1000;
    graph.save(graphPath);
    await writeFile(buildPath, JSON.stringify({ graphSeconds, load: loadAverage() }));
  } else {
    graphSeconds = (JSON.parse(await readFile(buildPath, "utf8")) as { graphSeconds: number })
      .graphSeconds;
  }
  console.log(`one graph: ${graphSeconds.toFixed(1)} s to build (${threads} threads)`);

  const measure = async (step: (groups: DuplicateGroups) => Promise<void>): Promise<Result> => {
    const groups = new DuplicateGroups();
    groups.grow(rows);
    const started = performance.now();
    await step(groups);
    const seconds = (performance.now() - started) / 1000;
    const together = planted.filter(([row, source]) => groups.find(row) === groups.find(source));
    const { groups: named } = groups.resolve();
    const sizes = new Map<number, number>();
    for (const group of named) sizes.set(group, (sizes.get(group) ?? 0) + 1);
    const inGroups = named.filter((group) => (sizes.get(group) ?? 0) > 1).length;
    return { seconds, together: together.length, inGroups };
  };

  const bits = toFloat16Bits(vectors);
  const segments = Array.from({ length: Math.ceil(rows / SEGMENT_ROWS) }, (_, segment) => ({
    firstId: segment * SEGMENT_ROWS,
    bits: bits.subarray(
      segment * SEGMENT_ROWS * DIMENSIONS,
      Math.min(rows, (segment + 1) * SEGMENT_ROWS) * DIMENSIONS,
    ),
  }));
  const built = await measure((groups) =>
    joinAddedDuplicates({ dimensions: DIMENSIONS, params, groups, threads }, segments),
  );
  const searched = new Map<number, Result>();
  for (const list of lists) {
    const graph = VectorGraph.open(
      graphPath,
      DIMENSIONS,
      { ...params, expansionSearch: list },
      "view",
    );
    searched.set(
      list,
      await measure((groups) =>
        joinNearDuplicates(
          { dimensions: DIMENSIONS, params, groups, threads },
          [graph],
          vectors,
          0,
        ),
      ),
    );
  }

  const share = (seconds: number) => seconds / (2 * graphSeconds + seconds);
  const line = (name: string, result: Result) => [
    name,
    result.seconds.toFixed(1),
    Math.round(rows / result.seconds),
    `${result.together}/${planted.length} (${((100 * result.together) / planted.length).toFixed(2)} %)`,
    result.inGroups,
    `${(100 * share(result.seconds)).toFixed(1)} %`,
  ];
  printTable([
    ["search", "seconds", "rows/s", "planted pairs in one group", "rows in groups", "share"],
    line("the build's lists (RowLists)", built),
    ...lists.map((list) =>
      line(
        `graph, list ${list}${list === chosen ? " (extended indices)" : ""}`,
        searched.get(list) as Result,
      ),
    ),
  ]);
  console.log(`load average at end: ${loadAverage()}`);

  const peer = searched.get(chosen) as Result;
  const grouped = (found: number) => ((100 * found) / planted.length).toFixed(2);
  return [
    {
      stage: `near-duplicate search, ${rows} rows (${planted.length} planted): the build's lists vs a graph search a row (list ${chosen}): planted pairs grouped ${grouped(built.together)} % vs ${grouped(peer.together)} %`,
      unit: "rows/s",
      clipcrawl: rows / built.seconds,
      peer: { name: `graph search, list ${chosen}`, value: rows / peer.seconds },
      ratio: peer.seconds / built.seconds,
      target: "none (report; the share below is the target)",
    },
    {
      stage: `near-duplicate search, ${rows} rows: share of both graphs + the step (the build's lists; ${(100 * share(peer.seconds)).toFixed(1)} % with a graph search a row)`,
      unit: "%",
      clipcrawl: 100 * share(built.seconds),
      peer: { name: "limit", value: 20 },
      ratio: share(built.seconds) / 0.2,
      target: "≤ 20 %",
      met: share(built.seconds) <= 0.2,
    },
  ];
}

interface Result {
  seconds: number;
  together: number;
  inGroups: number;
}

/** Clustered rows with about 3 % near-duplicates of earlier rows; the planted (row, source) pairs. */
function plantedVectors(rows: number): {
  vectors: Float32Array;
  planted: [number, number][];
} {
  const mixture = new ClusterMixture(Math.max(50, Math.round(rows / 1000)), 20240601);
  const next = seededUniform(29);
  const vectors = new Float32Array(rows * DIMENSIONS);
  const planted: [number, number][] = [];
  for (let row = 0; row < rows; row++) {
    const offset = row * DIMENSIONS;
    if (row === 0 || next() >= NEAR_DUPLICATE_SHARE) {
      mixture.sample(next, vectors, offset);
      continue;
    }
    const source = Math.floor(next() * row);
    plantNearDuplicate(next, vectors, source * DIMENSIONS, vectors, offset);
    planted.push([row, source]);
  }
  return { vectors, planted };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
