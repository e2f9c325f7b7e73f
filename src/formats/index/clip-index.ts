/**
 * The query side of an index, for `clipcrawl serve`: `openIndex(root)` reads the manifest,
 * memory-maps the two graphs, loads the columns filters read and the near-duplicate groups, opens
 * the segments' metadata.rows (a result's other columns, read by id from disk), and answers
 * `search` and `metadata` synchronously (no await on the hot path).
 *
 * How a query is answered (the filter design; measured in docs/index-engine.md):
 * - an index of at most `flatMaxVectors` rows: exact search over every row that passes;
 * - no filter: the graph, k results;
 * - a filter: the planner estimates how many rows pass (sorted score values, language counts).
 *   When scoring those rows exactly costs less than the graph search that would find k of them,
 *   it does that (a rare language, a strict aesthetic threshold); otherwise it asks the graph
 *   for k / selectivity × 1.5 candidates, keeps those that pass, and asks again for more, sized
 *   by the pass rate it saw, until k pass, the graph is exhausted, or exact search is cheaper.
 * So a filtered query returns k rows whenever k rows pass.
 */

import { layout } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import { duckdbConnection } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { readTombstones, type Tombstones } from "../tombstones.js";
import { CompressedGraph } from "./compressed-graph.js";
import { readDuplicateGroups } from "./duplicate-groups.js";
import { checkGraphFile, type GraphMatches, type GraphSettings, VectorGraph } from "./graph.js";
import { DUPLICATE_GROUP_COLUMN, INDEX_COLUMNS, SEGMENT_COLUMNS } from "./index-columns.js";
import {
  type CompressedParams,
  type IndexManifest,
  type IndexShard,
  indexShards,
  MODALITIES,
  type Modality,
  readManifest,
} from "./index-manifest.js";
import { MetadataColumns, type MetadataLookup, type MetadataValue } from "./metadata-columns.js";
import { MetadataRows } from "./metadata-rows.js";
import {
  type CompiledFilter,
  FILTER_COLUMNS,
  FilterColumns,
  type SearchFilters,
} from "./search-filters.js";
import { SegmentVectors } from "./segment-vectors.js";
import { type HeldShard, ShardedGraph, type VectorFile } from "./sharded-graph.js";

export type { MetadataValue } from "./metadata-columns.js";
export type { SearchFilters } from "./search-filters.js";

export interface OpenIndexOptions {
  /** Memory-map the graphs (the default: several processes share one copy) or load them. */
  mapGraphs?: boolean;
  /** The graph's candidate list per search; default: the manifest's. */
  expansionSearch?: number;
  /**
   * Hold the float16 vectors used by exact search in memory; default: when they take at most
   * 1 GB together and the index is not of the compressed tier (whose point is not to hold them).
   * Otherwise they are read from the segment files when needed.
   */
  vectorsInMemory?: boolean;
  /**
   * The index shards (sNNNNN) this process answers for; default: all. Rows of the others are in
   * no result (another serve process holds them).
   */
  shards?: readonly string[];
  /** Compressed tier: lists scanned and candidates re-ranked a query; default: the manifest's. */
  compressedSearch?: Partial<Pick<CompressedParams, "probes" | "rerank">>;
}

/** A shard the index should hold but could not open: its rows are in no result. */
export interface UnavailableShard {
  name: string;
  path: string;
  reason: string;
}

export interface SearchQuery {
  /** The query embedding; any norm (similarities are cosines). */
  vector: Float32Array | readonly number[];
  k: number;
  /** Which index: image embeddings or caption embeddings. */
  modality: Modality;
  filters?: SearchFilters;
}

export interface SearchResult {
  /** The row id: its position in the index, as clip-back's ids. */
  id: number;
  /** Cosine similarity of the query and the row's embedding. */
  similarity: number;
}

/** One graph search the planner needs: the normalised query and how many candidates. */
export interface GraphRequest {
  vector: Float32Array;
  count: number;
}

/** Searches the held shards' graphs of a modality: the `count` best matches, best first. */
export type GraphSearcher = (
  modality: Modality,
  vector: Float32Array,
  count: number,
) => Promise<GraphMatches>;

export interface SearchReport {
  results: SearchResult[];
  /** How the planner answered: the graph (with over-fetch when filtered) or exact search. */
  path: "graph" | "exact";
  /** Rows the graph returned over all its rounds, or rows scored exactly. */
  candidates: number;
  rounds: number;
}

const DEFAULT_VECTOR_MEMORY = 1e9;
const OVERFETCH_MARGIN = 1.5;
/**
 * Costs in units of one graph distance computation (usearch, SIMD), measured on 512-d vectors
 * (bench/index.ts): scoring a row exactly in JavaScript (float16 table lookups) costs about 8;
 * testing a candidate row's filter about 1/16.
 */
const EXACT_ROW_COST = 8;
const CANDIDATE_COST = 1 / 16;

/** The segment vector files that hold a shard's rows (a worker thread re-ranks with them). */
async function shardVectorFiles(
  storage: DatasetStorage,
  manifest: IndexManifest,
  shard: IndexShard,
  modality: Modality,
): Promise<VectorFile[]> {
  const end = shard.firstId + shard.rows;
  return Promise.all(
    manifest.segments
      .filter((segment) => segment.firstId < end && segment.firstId + segment.rows > shard.firstId)
      .map(async (segment) => ({
        path: await storage.localPath(layout.indexSegmentVectors(segment.name, modality)),
        firstId: segment.firstId,
        rows: segment.rows,
      })),
  );
}

export class ClipIndex {
  private constructor(
    readonly manifest: IndexManifest,
    private readonly graphs: Record<Modality, ShardedGraph>,
    private readonly vectors: Record<Modality, SegmentVectors>,
    private readonly columns: MetadataLookup,
    private readonly groups: Uint32Array,
    private readonly filterColumns: FilterColumns,
    readonly expansionSearch: number,
    /** 1 for a row of a shard this process does not hold; undefined: it holds every row. */
    private readonly outside: Uint8Array | undefined,
    /** Shards it was to hold whose graph file could not be opened (answers are partial). */
    readonly unavailableShards: readonly UnavailableShard[],
  ) {}

  static async open(
    root: string | DatasetStorage,
    options: OpenIndexOptions = {},
  ): Promise<ClipIndex> {
    const storage = openRoot(root);
    const manifest = await readManifest(storage);
    if (manifest === undefined) {
      throw new Error(
        `no index at ${storage.describe(layout.indexManifest())}; run clipcrawl index first`,
      );
    }
    const expansionSearch = options.expansionSearch ?? manifest.params.expansionSearch;
    const settings = { ...manifest.params, expansionSearch };
    const mode = options.mapGraphs === false ? "load" : "view";
    const graphs = {} as Record<Modality, ShardedGraph>;
    const vectors = {} as Record<Modality, SegmentVectors>;
    const vectorBytes = manifest.rows * manifest.dimensions * 2 * MODALITIES.length;
    const compressed =
      manifest.params.compressed === undefined
        ? undefined
        : { ...manifest.params.compressed, ...options.compressedSearch };
    const inMemory =
      options.vectorsInMemory ?? (compressed === undefined && vectorBytes <= DEFAULT_VECTOR_MEMORY);
    const shards = indexShards(manifest);
    if (options.shards !== undefined) {
      const known = new Set(shards.map((shard) => shard.name));
      const unknown = options.shards.filter((name) => !known.has(name));
      if (unknown.length > 0) {
        throw new RangeError(
          `no shard ${unknown.join(", ")} in ${storage.describe(layout.indexManifest())} (it has ${shards.map((shard) => shard.name).join(", ")})`,
        );
      }
    }
    const wanted = shards.filter(
      (shard) => options.shards === undefined || options.shards.includes(shard.name),
    );
    const unavailable: UnavailableShard[] = [];
    const held: Record<Modality, HeldShard>[] = [];
    for (const shard of wanted) {
      const opened = {} as Record<Modality, HeldShard>;
      let failed = false;
      for (const modality of MODALITIES) {
        const path = await storage.localPath(shard.graphs[modality]);
        try {
          let graph: VectorGraph | CompressedGraph;
          if (compressed === undefined) {
            checkGraphFile(path, {
              rows: shard.rows,
              dimensions: manifest.dimensions,
              quantization: manifest.params.quantization,
              ...(shard.bytes === undefined ? {} : { bytes: shard.bytes[modality] }),
            });
            graph = VectorGraph.open(path, manifest.dimensions, settings, mode);
          } else {
            // Read whole and checksummed: a damaged or foreign file is refused with its path.
            graph = await CompressedGraph.open(path, manifest.dimensions, compressed);
          }
          if (graph.size !== shard.rows) {
            throw new Error(`holds ${graph.size} vectors, the manifest says ${shard.rows}`);
          }
          opened[modality] = {
            name: shard.name,
            firstId: shard.firstId,
            rows: shard.rows,
            path,
            graph,
            ...(compressed === undefined
              ? {}
              : { vectorFiles: await shardVectorFiles(storage, manifest, shard, modality) }),
          };
        } catch (error) {
          const message = (error as Error).message;
          // IVF-PQ file errors start with the path, which UnavailableShard gives apart.
          const reason = message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message;
          unavailable.push({ name: shard.name, path, reason });
          failed = true;
          break;
        }
      }
      if (!failed) held.push(opened);
    }
    for (const modality of MODALITIES) {
      graphs[modality] = new ShardedGraph(held.map((shard) => shard[modality]));
      const files = await Promise.all(
        manifest.segments.map(async (segment) => ({
          path: await storage.localPath(layout.indexSegmentVectors(segment.name, modality)),
          firstId: segment.firstId,
          rows: segment.rows,
        })),
      );
      vectors[modality] = await SegmentVectors.open(files, manifest.dimensions, inMemory);
      for (const shard of held) {
        const graph = shard[modality].graph;
        if (graph instanceof CompressedGraph) graph.attachVectors(vectors[modality]);
      }
    }
    let outside: Uint8Array | undefined;
    if (held.length < shards.length) {
      outside = new Uint8Array(manifest.rows).fill(1);
      for (const shard of held)
        outside.fill(0, shard.image.firstId, shard.image.firstId + shard.image.rows);
    }
    // Indices built before metadata.rows existed hold every column in memory instead.
    const rowsOnDisk = (
      await Promise.all(
        manifest.segments.map((segment) => storage.exists(layout.indexSegmentRows(segment.name))),
      )
    ).every((exists) => exists);
    const connection = await duckdbConnection();
    let heldColumns: MetadataColumns;
    try {
      const files = await Promise.all(
        manifest.segments.map((segment) =>
          storage.localPath(layout.indexSegmentMetadata(segment.name)),
        ),
      );
      const wanted = rowsOnDisk
        ? SEGMENT_COLUMNS.filter((column) => FILTER_COLUMNS.includes(column.name))
        : SEGMENT_COLUMNS;
      heldColumns = await MetadataColumns.load(connection, files, wanted, manifest.rows);
    } finally {
      connection.closeSync();
    }
    const groups = await readDuplicateGroups(
      storage,
      manifest.files.duplicateGroups,
      manifest.rows,
    );
    const filterColumns = new FilterColumns(
      manifest.rows,
      heldColumns,
      groups,
      manifest.duplicateGroups,
    );
    const columns = rowsOnDisk
      ? MetadataRows.open(
          await Promise.all(
            manifest.segments.map(async (segment) => ({
              path: await storage.localPath(layout.indexSegmentRows(segment.name)),
              rows: segment.rows,
            })),
          ),
          SEGMENT_COLUMNS.map((column) => column.name),
          "key",
        )
      : heldColumns;
    const index = new ClipIndex(
      manifest,
      graphs,
      vectors,
      columns,
      groups,
      filterColumns,
      expansionSearch,
      outside,
      unavailable,
    );
    try {
      index.applyTombstones(await readTombstones(storage));
    } catch (error) {
      index.close();
      throw error;
    }
    return index;
  }

  /**
   * Leaves the rows whose key a tombstone names out of every search from now on (replacing the
   * tombstones applied before); `open` applies the root's own. Returns how many rows that is.
   */
  applyTombstones(tombstones: Tombstones): number {
    // Rows of shards held elsewhere are left out of every search the same way.
    const outside = this.outside;
    if (tombstones.keys.size === 0) {
      this.filterColumns.setRemoved(outside?.slice());
      return 0;
    }
    const removed = outside?.slice() ?? new Uint8Array(this.manifest.rows);
    let count = 0;
    for (const id of this.columns.idsWithKeys(tombstones.keys)) {
      if (removed[id] === 0) count++;
      removed[id] = 1;
    }
    this.filterColumns.setRemoved(removed);
    return count;
  }

  /** Whether some shards it was to hold could not be opened, so answers may lack rows. */
  get partial(): boolean {
    return this.unavailableShards.length > 0;
  }

  /** The shards whose rows this process answers for. */
  get heldShards(): string[] {
    return this.graphs.image.shards.map((shard) => shard.name);
  }

  /** Whether a tombstone removed the row: it is in no result, and must not be served. */
  isRemoved(id: number): boolean {
    return this.filterColumns.isRemoved(id);
  }

  /** Rows no tombstone removed. */
  get liveRows(): number {
    return this.manifest.rows - this.filterColumns.removedRows;
  }

  get size(): number {
    return this.manifest.rows;
  }

  get dimensions(): number {
    return this.manifest.dimensions;
  }

  /** The metadata columns `metadata` can return. */
  get columnNames(): string[] {
    return INDEX_COLUMNS.map((column) => column.name);
  }

  search(query: SearchQuery): SearchResult[] {
    return this.searchWithReport(query).results;
  }

  searchWithReport(query: SearchQuery): SearchReport {
    const graph = this.graphs[query.modality];
    const steps = this.plan(query);
    let step = steps.next();
    while (!step.done) step = steps.next(graph.search(step.value.vector, step.value.count));
    return step.value;
  }

  /**
   * The same answer, with each graph search made by `searchGraph` (serve runs the held shards'
   * searches on worker threads at once and merges them: see src/server/shard-threads.ts).
   */
  async searchWith(query: SearchQuery, searchGraph: GraphSearcher): Promise<SearchReport> {
    const steps = this.plan(query);
    let step = steps.next();
    while (!step.done) {
      step = steps.next(await searchGraph(query.modality, step.value.vector, step.value.count));
    }
    return step.value;
  }

  /** What the graphs were opened with (a worker thread opens them the same way). */
  get graphSettings(): GraphSettings {
    const { quantization, connectivity, expansionAdd } = this.manifest.params;
    return { quantization, connectivity, expansionAdd, expansionSearch: this.expansionSearch };
  }

  /** The graph shards this process holds for a modality, for searches made elsewhere. */
  heldGraphs(modality: Modality): readonly HeldShard[] {
    return this.graphs[modality].shards;
  }

  /**
   * The query planner: yields each graph search it needs (the normalised query and how many
   * candidates) and is handed back the matches, so the same plan runs with the graphs searched
   * here (searchWithReport) or elsewhere (searchWith).
   */
  private *plan(query: SearchQuery): Generator<GraphRequest, SearchReport, GraphMatches> {
    const k = query.k;
    if (!Number.isInteger(k) || k < 1)
      throw new RangeError(`k must be a positive integer, got ${k}`);
    const graph = this.graphs[query.modality];
    const vectors = this.vectors[query.modality];
    if (graph === undefined || vectors === undefined) {
      throw new RangeError(`modality must be "image" or "text", got ${String(query.modality)}`);
    }
    const vector = this.normalised(query.vector);
    const filter = this.filterColumns.compile(query.filters);
    const rows = this.manifest.rows;
    if (rows === 0) return { results: [], path: "exact", candidates: 0, rounds: 0 };
    if (rows <= this.manifest.params.flatMaxVectors) {
      return this.exact(vector, k, filter, vectors);
    }
    if (filter.trivial && !filter.deduplicate) {
      const found = yield { vector, count: k };
      const results: SearchResult[] = [];
      for (let index = 0; index < found.ids.length; index++) {
        results.push({
          id: found.ids[index] as number,
          similarity: found.similarities[index] as number,
        });
      }
      return { results, path: "graph", candidates: found.ids.length, rounds: 1 };
    }

    const passing = Math.max(1, rows * filter.selectivity);
    let fetch = Math.min(rows, Math.ceil((k / filter.selectivity) * OVERFETCH_MARGIN) + 10);
    if (this.exactCost(passing, filter) <= this.graphCost(fetch)) {
      return this.exact(vector, k, filter, vectors);
    }
    let candidates = 0;
    for (let round = 1; ; round++) {
      const found = yield { vector, count: fetch };
      candidates += found.ids.length;
      const results: SearchResult[] = [];
      const seen = filter.deduplicate ? new Set<number>() : undefined;
      let accepted = 0;
      for (let index = 0; index < found.ids.length; index++) {
        const id = found.ids[index] as number;
        if (!filter.accepts(id)) continue;
        accepted++;
        if (seen !== undefined) {
          const group = this.groups[id] as number;
          if (seen.has(group)) continue;
          seen.add(group);
        }
        if (results.length < k) {
          results.push({ id, similarity: found.similarities[index] as number });
        }
      }
      if (results.length >= k || found.ids.length < fetch || fetch >= rows) {
        return { results, path: "graph", candidates, rounds: round };
      }
      const passRate = Math.max(results.length, 1) / Math.max(found.ids.length, 1);
      const next = Math.min(
        rows,
        Math.max(fetch * 2, Math.ceil((k / passRate) * OVERFETCH_MARGIN) + 10),
      );
      if (this.exactCost(Math.max(passing, accepted), filter) <= this.graphCost(next)) {
        const exact = this.exact(vector, k, filter, vectors);
        return { ...exact, candidates: candidates + exact.candidates, rounds: round + 1 };
      }
      fetch = next;
    }
  }

  /** Values of `columns` (default: all) for each id, in the order given; unknown ids throw. */
  metadata(
    ids: readonly number[],
    columns: readonly string[] = this.columnNames,
  ): Record<string, MetadataValue>[] {
    for (const column of columns) {
      if (column !== DUPLICATE_GROUP_COLUMN.name && !this.columns.has(column)) {
        throw new RangeError(`unknown metadata column ${column}`);
      }
    }
    return ids.map((id) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.manifest.rows) {
        throw new RangeError(`id ${id} is not in the index (0 … ${this.manifest.rows - 1})`);
      }
      const row: Record<string, MetadataValue> = {};
      for (const column of columns) {
        row[column] =
          column === DUPLICATE_GROUP_COLUMN.name
            ? (this.groups[id] as number)
            : this.columns.value(column, id);
      }
      return row;
    });
  }

  close(): void {
    for (const modality of MODALITIES) this.vectors[modality].close();
    this.columns.close();
  }

  private normalised(vector: Float32Array | readonly number[]): Float32Array {
    const dimensions = this.manifest.dimensions;
    if (vector.length !== dimensions) {
      throw new RangeError(`query vector has ${vector.length} values, the index ${dimensions}`);
    }
    const out = new Float32Array(dimensions);
    let norm = 0;
    for (let index = 0; index < dimensions; index++) {
      const value = Number(vector[index]);
      if (!Number.isFinite(value))
        throw new RangeError(`query vector value ${index} is not a number`);
      out[index] = value;
      norm += value * value;
    }
    if (norm === 0) throw new RangeError("query vector is all zeros");
    const scale = 1 / Math.sqrt(norm);
    for (let index = 0; index < dimensions; index++) out[index] = (out[index] as number) * scale;
    return out;
  }

  /**
   * Distance computations of a graph search with `fetch` results (HNSW visits ~2M per step); the
   * compressed tier's cost is its float16 re-rank of at least `rerank` candidates.
   */
  private graphCost(fetch: number): number {
    const compressed = this.manifest.params.compressed;
    if (compressed !== undefined) return Math.max(fetch, compressed.rerank) * EXACT_ROW_COST;
    return Math.max(fetch, this.expansionSearch) * this.manifest.params.connectivity * 2;
  }

  private exactCost(passing: number, filter: CompiledFilter): number {
    return passing * EXACT_ROW_COST + filter.candidateCount * CANDIDATE_COST;
  }

  private exact(
    vector: Float32Array,
    k: number,
    filter: CompiledFilter,
    vectors: SegmentVectors,
  ): SearchReport {
    const chosen = filter.passing();
    const count = chosen.length;
    const scores = new Float32Array(count);
    vectors.dotMany(vector, chosen, scores);
    const order = Uint32Array.from({ length: count }, (_, index) => index).sort(
      (a, b) => (scores[b] as number) - (scores[a] as number) || a - b,
    );
    const results: SearchResult[] = [];
    const seen = filter.deduplicate ? new Set<number>() : undefined;
    for (const index of order) {
      const id = chosen[index] as number;
      if (seen !== undefined) {
        const group = this.groups[id] as number;
        if (seen.has(group)) continue;
        seen.add(group);
      }
      results.push({ id, similarity: scores[index] as number });
      if (results.length >= k) break;
    }
    return { results, path: "exact", candidates: count, rounds: 1 };
  }
}

/** Opens the index of a dataset root for querying (see ClipIndex). */
export function openIndex(
  root: string | DatasetStorage,
  options: OpenIndexOptions = {},
): Promise<ClipIndex> {
  return ClipIndex.open(root, options);
}
