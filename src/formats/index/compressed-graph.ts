/**
 * The compressed tier's search for one modality: the IVF-PQ's best `rerank` candidates by
 * approximate score, re-ranked by exact inner product with their float16 rows read from the
 * index's segment files (SegmentVectors; only those rows are read, nothing else is resident).
 * It answers as VectorGraph does (ids and cosine similarities, best first), so ClipIndex's
 * planner and the build's near-duplicate search use either.
 *
 * While an index is built, rows are added before it can be trained: the first `add` of at least
 * 256 rows (what a sub-quantiser's 256 centroids need) trains it on those rows (autofaiss trains
 * on a sample of the same vectors) and later ones are encoded with that training; fewer rows wait
 * in memory, searched exactly, until more come or the index is saved. An index shard that ends
 * with fewer is encoded with the training of the shard before it (`trainedLike`), copied into its
 * own file, so every shard's file stands alone and a full shard is never rewritten.
 */

import type { GraphMatches } from "./graph.js";
import type { CompressedParams } from "./index-manifest.js";
import { CENTROIDS_PER_SUBSPACE, IvfPqIndex, usearch, whole } from "./ivf-pq.js";
import { listCandidates, queryRowsOf } from "./list-near-duplicates.js";
import type { SegmentVectors } from "./segment-vectors.js";

/**
 * Training sample sizes and k-means rounds: what gave recall@10 ≥ 0.90 in the 200k bench at
 * less training than faiss's (which takes up to 256 points a centroid and 25 rounds).
 */
export const TRAINING = { pointsPerList: 32, pointsPerCode: 64, iterations: 8 };

/**
 * How far below the near-duplicate threshold a row's estimated cosine from its codes may fall
 * and still be scored exactly (the estimate: see lostSquaredNorms). Over 2,000 planted pairs of
 * the index bench's vectors its error stayed within 0.062, mostly over-estimating.
 */
const NEAR_DUPLICATE_MARGIN = 0.05;

/** Rows' lists (IvfPqIndex.assign) under the key of the training that gave them. */
export interface ListAssignment {
  trainingKey: string;
  lists: Uint32Array;
}

/** What CompressedGraph.nearDuplicates looks for. */
export interface NearDuplicateQuery {
  /** Cosine similarity a near-duplicate has at least. */
  threshold: number;
  /** The most near-duplicates returned for one query. */
  count: number;
  threads: number;
  /** The id of the first query when the queries are rows this index holds: each skips its own. */
  firstId?: number | undefined;
  /** The queries' lists by training (IvfPqIndex.trainingKey): shards that share one reuse them. */
  assigned?: Map<string, Uint32Array> | undefined;
}

const NO_MATCHES: GraphMatches = { ids: new Uint32Array(0), similarities: new Float32Array(0) };

export class CompressedGraph {
  private vectors: SegmentVectors | undefined;
  /** Rows added before there were enough to train on, in the order added. */
  private pending: { firstId: number; chunks: Float32Array[]; rows: number } | undefined;

  private constructor(
    readonly dimensions: number,
    private readonly params: CompressedParams,
    private index: IvfPqIndex | undefined,
    private readonly trainedLike: CompressedGraph | undefined,
    private readonly trainingRows: number,
  ) {}

  /**
   * An empty index. With `trainedLike` trained, it takes that training (an index's shards share
   * one: lists and codes mean the same in each); otherwise rows wait until `trainingRows` have
   * come (at least 256), are trained on, and encoded, and `trainedLike` lends its training only
   * if this one ends with too few rows.
   */
  static create(
    dimensions: number,
    params: CompressedParams,
    options: { trainedLike?: CompressedGraph | undefined; trainingRows?: number } = {},
  ): CompressedGraph {
    const shared = options.trainedLike?.index?.withoutRows();
    return new CompressedGraph(
      dimensions,
      params,
      shared,
      options.trainedLike,
      Math.max(CENTROIDS_PER_SUBSPACE, options.trainingRows ?? CENTROIDS_PER_SUBSPACE),
    );
  }

  /** Whether rows are encoded as they come (false while they wait for training). */
  get trained(): boolean {
    return this.index !== undefined;
  }

  /** A saved index (the whole file is read and checked; see IvfPqIndex.open). */
  static async open(
    path: string,
    dimensions: number,
    params: CompressedParams,
  ): Promise<CompressedGraph> {
    return new CompressedGraph(
      dimensions,
      params,
      await IvfPqIndex.open(path, dimensions),
      undefined,
      CENTROIDS_PER_SUBSPACE,
    );
  }

  get size(): number {
    return (this.index?.size ?? 0) + (this.pending?.rows ?? 0);
  }

  /** Bytes of everything the search holds: lists, codes, ids, centroids and codebooks. */
  get bytes(): number {
    return this.index?.bytes ?? 0;
  }

  /** Where the float16 rows of every id the index holds are read from for re-ranking. */
  attachVectors(vectors: SegmentVectors): void {
    this.vectors = vectors;
  }

  /**
   * Adds rows `firstId …`. Returns their lists under the training's key when they were encoded
   * now (nearDuplicates takes them instead of assigning the rows again), undefined while they
   * wait for the training.
   */
  async add(
    firstId: number,
    vectors: Float32Array,
    threads: number,
  ): Promise<ListAssignment | undefined> {
    if (this.index !== undefined) {
      const lists = await this.index.add(firstId, vectors, threads);
      return { trainingKey: this.index.trainingKey, lists };
    }
    const rows = vectors.length / this.dimensions;
    if (this.pending === undefined) this.pending = { firstId, chunks: [], rows: 0 };
    this.pending.chunks.push(vectors);
    this.pending.rows += rows;
    await this.train(threads, false);
    return undefined;
  }

  /** Trains on the rows waiting (however few) and encodes them: the last rows have come. */
  async trainNow(threads: number): Promise<void> {
    await this.train(threads, true);
  }

  /** Trains on the pending rows when there are enough (or `required`), and encodes them. */
  private async train(threads: number, required: boolean): Promise<void> {
    const waiting = this.pending;
    if (waiting === undefined) return;
    const { rows } = waiting;
    if (rows < this.trainingRows && !required) return;
    const pending = {
      firstId: waiting.firstId,
      vectors: joinChunks(waiting.chunks, rows * this.dimensions),
    };
    this.pending = { firstId: waiting.firstId, chunks: [pending.vectors], rows };
    if (rows < CENTROIDS_PER_SUBSPACE) {
      if (!required) return;
      const borrowed = this.trainedLike?.index;
      if (borrowed !== undefined) {
        this.index = borrowed.withoutRows();
        await this.index.add(pending.firstId, pending.vectors, threads);
        this.pending = undefined;
        return;
      }
      throw new RangeError(
        `the compressed tier needs at least ${CENTROIDS_PER_SUBSPACE} rows to train on, has ${rows}`,
      );
    }
    const index = await IvfPqIndex.train(pending.vectors, this.dimensions, {
      lists: this.params.lists,
      subQuantizers: this.params.subQuantizers,
      ...TRAINING,
      threads,
    });
    await index.add(pending.firstId, pending.vectors, threads);
    this.index = index;
    this.pending = undefined;
  }

  /** The `count` nearest rows of one query, best first, by exact float16 inner product. */
  search(query: Float32Array, count: number): GraphMatches {
    if (this.pending !== undefined) return this.searchPending(query, count);
    const index = this.index;
    const vectors = this.vectors;
    if (index === undefined || index.size === 0) {
      return { ids: new Uint32Array(0), similarities: new Float32Array(0) };
    }
    if (vectors === undefined) throw new Error("compressed index has no vectors to re-rank with");
    const depth = Math.max(count, this.params.rerank);
    const ids = new Uint32Array(depth);
    const approximate = new Float32Array(depth);
    // More lists when the probed ones hold fewer rows than asked for: fewer means all were seen.
    let probes = this.params.probes;
    let found = index.search(query, probes, depth, ids, approximate);
    while (found < depth && probes < index.lists) {
      probes = Math.min(index.lists, probes * 2);
      found = index.search(query, probes, depth, ids, approximate);
    }
    const candidates = ids.subarray(0, found).sort();
    const exact = new Float32Array(found);
    vectors.dotMany(query, candidates, exact);
    const order = Uint32Array.from({ length: found }, (_, at) => at).sort(
      (a, b) => (exact[b] as number) - (exact[a] as number) || a - b,
    );
    const kept = Math.min(count, found);
    const matches = { ids: new Uint32Array(kept), similarities: new Float32Array(kept) };
    for (let at = 0; at < kept; at++) {
      const from = order[at] as number;
      matches.ids[at] = candidates[from] as number;
      matches.similarities[at] = exact[from] as number;
    }
    return matches;
  }

  /** One query after another: the build's near-duplicate search. */
  searchBatch(queries: Float32Array, count: number, _threads: number): GraphMatches[] {
    const rows = queries.length / this.dimensions;
    return Array.from({ length: rows }, (_, row) =>
      this.search(queries.subarray(row * this.dimensions, (row + 1) * this.dimensions), count),
    );
  }

  /**
   * For each query (row-major), the other rows this index holds at cosine ≥ `threshold`, at most
   * `count`, best first: the build's near-duplicate step. Each query is compared with the rows
   * of its own list and those beside it as their codes give them back (listCandidates; no lookup
   * table, no re-rank of R); rows within NEAR_DUPLICATE_MARGIN of the threshold are then scored
   * exactly with their float16 rows.
   */
  async nearDuplicates(queries: Float32Array, search: NearDuplicateQuery): Promise<GraphMatches[]> {
    const { threshold, count, threads } = search;
    const index = this.index;
    const vectors = this.vectors;
    const self = (row: number) => (search.firstId === undefined ? -1 : search.firstId + row);
    if (this.pending !== undefined || index === undefined) {
      return this.searchBatch(queries, count + 1, threads).map((matches, row) =>
        aboveThreshold(matches, threshold, self(row)),
      );
    }
    if (vectors === undefined) throw new Error("compressed index has no vectors to re-rank with");
    const { dimensions } = this;
    const rows = queries.length / dimensions;
    const assigned = search.assigned ?? new Map<string, Uint32Array>();
    let lists = assigned.get(index.trainingKey);
    if (lists === undefined) {
      lists = await index.assign(queries, threads);
      assigned.set(index.trainingKey, lists);
    }
    const { candidates, found } = await listCandidates(
      {
        dimensions,
        lists: index.lists,
        centroids: index.centroids,
        nearestLists: (reach, threads) => index.nearestLists(reach, threads),
        listRows: (list) => {
          const members = index.decodeList(list);
          return { ...members, corrections: lostSquaredNorms(members.vectors, dimensions) };
        },
      },
      queryRowsOf(queries, dimensions),
      {
        assignment: lists,
        threshold,
        floor: threshold - NEAR_DUPLICATE_MARGIN,
        count,
        threads,
        self,
      },
    );
    const exact = new Float32Array(count);
    const order = new Uint32Array(count);
    return Array.from({ length: rows }, (_, row) => {
      const total = found[row] as number;
      if (total === 0) return NO_MATCHES;
      const ids = candidates.subarray(row * count, row * count + total).sort();
      vectors.dotMany(queries.subarray(row * dimensions, (row + 1) * dimensions), ids, exact);
      let kept = 0;
      for (let at = 0; at < total; at++) if ((exact[at] as number) >= threshold) order[kept++] = at;
      if (kept === 0) return NO_MATCHES;
      const best = order
        .subarray(0, kept)
        .sort((a, b) => (exact[b] as number) - (exact[a] as number) || a - b);
      return {
        ids: Uint32Array.from(best, (at) => ids[at] as number),
        similarities: Float32Array.from(best, (at) => exact[at] as number),
      };
    });
  }

  async save(path: string): Promise<void> {
    await this.train(1, true);
    if (this.index === undefined) throw new Error("an empty compressed index cannot be saved");
    await this.index.save(path);
  }

  /** Exact search over rows still waiting for training (fewer than 256: a build's first rows). */
  private searchPending(query: Float32Array, count: number): GraphMatches {
    const waiting = this.pending as { firstId: number; chunks: Float32Array[]; rows: number };
    const rows = waiting.rows;
    const pending = {
      firstId: waiting.firstId,
      vectors: joinChunks(waiting.chunks, rows * this.dimensions),
    };
    waiting.chunks = [pending.vectors];
    const { exactSearch, MetricKind } = usearch();
    const found = exactSearch(
      whole(pending.vectors),
      whole(query),
      this.dimensions,
      Math.min(count, rows),
      MetricKind.IP,
      1,
    );
    return {
      ids: Uint32Array.from(found.keys, (key) => pending.firstId + Number(key)),
      similarities: Float32Array.from(found.distances, (distance) => 1 - distance),
    };
  }
}

/**
 * For each decoded row (row-major), 1 − its squared norm: what its code lost of a unit row. A
 * code's error e is nearly orthogonal to what it decodes to, so for a query q near the row b,
 * q·decoded(b) = q·b − q·e ≈ q·b − |e|², and |e|² ≈ 1 − |decoded(b)|²: adding this back makes a
 * near-duplicate's score from its code unbiased (it ran 0.06–0.13 low without it on rows far
 * from their list's centroid, as CLIP's are).
 */
function lostSquaredNorms(vectors: Float32Array, dimensions: number): Float32Array {
  const lost = new Float32Array(vectors.length / dimensions);
  for (let row = 0; row < lost.length; row++) {
    let norm = 0;
    for (let at = row * dimensions; at < (row + 1) * dimensions; at++) {
      norm += (vectors[at] as number) * (vectors[at] as number);
    }
    lost[row] = 1 - norm;
  }
  return lost;
}

/** The matches at `threshold` or above, `own` (the query's row) left out. */
function aboveThreshold(matches: GraphMatches, threshold: number, own: number): GraphMatches {
  const kept = [...matches.ids.keys()].filter(
    (at) => (matches.similarities[at] as number) >= threshold && matches.ids[at] !== own,
  );
  return {
    ids: Uint32Array.from(kept, (at) => matches.ids[at] as number),
    similarities: Float32Array.from(kept, (at) => matches.similarities[at] as number),
  };
}

function joinChunks(chunks: readonly Float32Array[], length: number): Float32Array {
  if (chunks.length === 1 && (chunks[0] as Float32Array).length === length) {
    return chunks[0] as Float32Array;
  }
  const joined = new Float32Array(length);
  let at = 0;
  for (const chunk of chunks) {
    joined.set(chunk, at);
    at += chunk.length;
  }
  return joined;
}
