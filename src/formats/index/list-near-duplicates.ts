/**
 * The near-duplicate search over an inverted file's lists, shared by the compressed tier (its
 * IVF-PQ lists, rows as their codes give them back) and the memory tier's build (RowLists: its
 * rows themselves). A near-duplicate falls in its twin's list, or in one of the lists beside it
 * when the twin lies near a boundary (besideLists), so each query row is compared only with the
 * rows of those lists: every query of a list against every row of it in one product on ONNX
 * Runtime (DotProducts; MLAS runs several times usearch's exactSearch, which ran at 7 GFLOP/s on
 * 512-d rows), keeping each query's best estimates at or above a floor.
 */
import { DotProducts } from "../../models/dot-products.js";
import { usearch, whole } from "./ivf-pq.js";

/** Rows filed in lists by their nearest centroid. */
export interface ListedRows {
  readonly dimensions: number;
  readonly lists: number;
  /** The lists' centroids, row-major. */
  readonly centroids: Float32Array;
  /** For each list, the `count` lists nearest it (itself among them), as IvfPqIndex gives them. */
  nearestLists(count: number, threads: number): { lists: Uint32Array; distances: Float32Array };
  /**
   * A list's rows: their ids, vectors (row-major) and, when the vectors are approximations, what
   * to add to a query's product with each for an unbiased estimate of its cosine.
   */
  listRows(list: number): { ids: Uint32Array; vectors: Float32Array; corrections?: Float32Array };
}

/** Query rows `rowAt(0 … count − 1)`, one after another (row-major). */
export type QueryRows = (count: number, rowAt: (at: number) => number) => Float32Array;

export interface ListCandidateSearch {
  /** The queries' lists (`ListedRows`'s), one a query. */
  assignment: Uint32Array;
  /** Cosine similarity a near-duplicate has at least (where lists may split a pair). */
  threshold: number;
  /** The lowest estimate kept. */
  floor: number;
  /** The most candidates kept for one query. */
  count: number;
  threads: number;
  /** The id of query `row` among the listed rows, skipped as its own candidate; −1: none. */
  self: (row: number) => number;
}

/**
 * Each query's best `count` candidates by estimate, at least `floor`: query r's are
 * candidates/estimates[r · count …], found[r] of them.
 */
export async function listCandidates(
  listed: ListedRows,
  queries: QueryRows,
  search: ListCandidateSearch,
): Promise<{ candidates: Uint32Array; estimates: Float32Array; found: Uint32Array }> {
  const { assignment, threshold, floor, count, threads, self } = search;
  const rows = assignment.length;
  const candidates = new Uint32Array(rows * count);
  const estimates = new Float32Array(rows * count);
  const found = new Uint32Array(rows);
  const byList = rowsByList(assignment, listed.lists);
  const beside = besideLists(listed, queries, byList, threshold, threads);
  const products = await DotProducts.open(threads);
  try {
    for (let list = 0; list < listed.lists; list++) {
      const own = byList.rows.subarray(byList.starts[list], byList.starts[list + 1]);
      const near = beside.rows.subarray(beside.starts[list], beside.starts[list + 1]);
      const askedRows = own.length + near.length;
      if (askedRows === 0) continue;
      const members = listed.listRows(list);
      const size = members.ids.length;
      if (size === 0) continue;
      const rowAt = (at: number) => (at < own.length ? own[at] : near[at - own.length]) as number;
      const asked = queries(askedRows, rowAt);
      const scores = await products.products(
        asked,
        askedRows,
        members.vectors,
        size,
        listed.dimensions,
      );
      const corrections = members.corrections;
      for (let at = 0; at < askedRows; at++) {
        const row = rowAt(at);
        const itself = self(row);
        for (let member = 0; member < size; member++) {
          const estimate =
            (scores[at * size + member] as number) +
            (corrections === undefined ? 0 : (corrections[member] as number));
          if (estimate < floor) continue;
          const id = members.ids[member] as number;
          if (id !== itself) keepBest(row, id, estimate, count, candidates, estimates, found);
        }
      }
    }
  } finally {
    await products.close();
  }
  return { candidates, estimates, found };
}

/** The lists nearest a row's own that its near-duplicates may lie in (besideLists). */
const BESIDE_LISTS = 8;
/**
 * How far, in standard deviations, a near-duplicate may lie across a list boundary from its
 * twin (besideLists): a twin at the threshold is √(2 − 2·threshold) away in a direction at
 * random, so its distance along any one line is about that over √dimensions. Three keeps a
 * planted pair's chance of being split unseen under 0.2 % (99.97 % of 7,357 planted pairs
 * grouped at 250,000 rows in 1,024 lists, against 94.8 % in their own list alone).
 */
const BOUNDARY_DEVIATIONS = 3;

/**
 * For each query row (grouped by its own list in `byList`), the other lists a near-duplicate of
 * it may have been filed in: among the BESIDE_LISTS lists whose centroids are nearest its own
 * list's, those whose boundary with its own list lies within reach of it (see
 * BOUNDARY_DEVIATIONS): its score for them, x·c − ½‖c‖² (add files a row in the list of the
 * highest), within reach · ‖c_own − c‖ of its own list's. Grouped by those lists as rowsByList
 * groups rows by their own.
 */
function besideLists(
  listed: ListedRows,
  queries: QueryRows,
  byList: { starts: Uint32Array; rows: Uint32Array },
  threshold: number,
  threads: number,
): { starts: Uint32Array; rows: Uint32Array } {
  const { dimensions, centroids, lists } = listed;
  const boundaryReach =
    (BOUNDARY_DEVIATIONS * Math.sqrt(Math.max(0, 2 - 2 * threshold))) / Math.sqrt(dimensions);
  const { exactSearch, MetricKind } = usearch();
  const reach = Math.min(BESIDE_LISTS + 1, lists);
  if (reach < 2) return { starts: new Uint32Array(lists + 1), rows: new Uint32Array(0) };
  const centres = listed.nearestLists(reach, threads);
  const pairRows: number[] = [];
  const pairLists: number[] = [];
  for (let list = 0; list < lists; list++) {
    const own = byList.rows.subarray(byList.starts[list], byList.starts[list + 1]);
    if (own.length === 0) continue;
    const around = new Float32Array(reach * dimensions);
    const apart = new Float32Array(reach);
    const aroundLists = new Uint32Array(reach);
    aroundLists[0] = list;
    around.set(centroids.subarray(list * dimensions, (list + 1) * dimensions), 0);
    let filled = 1;
    for (let slot = list * reach; slot < (list + 1) * reach && filled < reach; slot++) {
      const other = centres.lists[slot] as number;
      if (other === list) continue;
      aroundLists[filled] = other;
      apart[filled] = Math.sqrt(centres.distances[slot] as number);
      around.set(
        centroids.subarray(other * dimensions, (other + 1) * dimensions),
        filled * dimensions,
      );
      filled++;
    }
    const asked = queries(own.length, (at) => own[at] as number);
    const scored = exactSearch(
      whole(around.subarray(0, filled * dimensions)),
      asked,
      dimensions,
      filled,
      MetricKind.L2sq,
      threads,
    );
    for (let at = 0; at < own.length; at++) {
      let ownDistance = 0;
      for (let slot = at * filled; slot < (at + 1) * filled; slot++) {
        if (Number(scored.keys[slot]) === 0) ownDistance = scored.distances[slot] as number;
      }
      for (let slot = at * filled; slot < (at + 1) * filled; slot++) {
        const which = Number(scored.keys[slot]);
        if (which === 0) continue;
        const margin = ((scored.distances[slot] as number) - ownDistance) / 2;
        if (margin < boundaryReach * (apart[which] as number)) {
          pairRows.push(own[at] as number);
          pairLists.push(aroundLists[which] as number);
        }
      }
    }
  }
  const grouped = rowsByList(Uint32Array.from(pairLists), lists);
  return {
    starts: grouped.starts,
    rows: Uint32Array.from(grouped.rows, (pair) => pairRows[pair] as number),
  };
}

/** Query rows read from `source` (row-major). */
export function queryRowsOf(source: Float32Array, dimensions: number): QueryRows {
  return (count, rowAt) => gatherRows(source, count, rowAt, dimensions);
}

/** Rows `rowAt(0 … count − 1)` of `source` (row-major), one after another. */
function gatherRows(
  source: Float32Array,
  count: number,
  rowAt: (at: number) => number,
  dimensions: number,
): Float32Array {
  const rows = new Float32Array(count * dimensions);
  for (let at = 0; at < count; at++) {
    const row = rowAt(at);
    rows.set(source.subarray(row * dimensions, (row + 1) * dimensions), at * dimensions);
  }
  return rows;
}

/**
 * Adds candidate `id` of `row` with its estimated cosine, keeping the row's best `count`: its
 * slots are candidates/estimates[row · count …], found[row] of them filled.
 */
function keepBest(
  row: number,
  id: number,
  estimate: number,
  count: number,
  candidates: Uint32Array,
  estimates: Float32Array,
  found: Uint32Array,
): void {
  const base = row * count;
  const filled = found[row] as number;
  if (filled < count) {
    candidates[base + filled] = id;
    estimates[base + filled] = estimate;
    found[row] = filled + 1;
    return;
  }
  let lowest = base;
  for (let slot = base + 1; slot < base + count; slot++) {
    if ((estimates[slot] as number) < (estimates[lowest] as number)) lowest = slot;
  }
  if (estimate > (estimates[lowest] as number)) {
    candidates[lowest] = id;
    estimates[lowest] = estimate;
  }
}

/** Query rows grouped by list: `rows[starts[l] … starts[l + 1]]` are list l's, in row order. */
export function rowsByList(
  lists: Uint32Array,
  count: number,
): { starts: Uint32Array; rows: Uint32Array } {
  const starts = new Uint32Array(count + 1);
  for (const list of lists) starts[list + 1] = (starts[list + 1] as number) + 1;
  for (let list = 0; list < count; list++) {
    starts[list + 1] = (starts[list + 1] as number) + (starts[list] as number);
  }
  const cursor = starts.slice(0, count);
  const rows = new Uint32Array(lists.length);
  lists.forEach((list, row) => {
    rows[cursor[list] as number] = row;
    cursor[list] = (cursor[list] as number) + 1;
  });
  return { starts, rows };
}
