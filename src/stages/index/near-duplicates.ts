/**
 * Joins rows with the near-duplicates that shards' image graphs find for them, so a group
 * crosses shard boundaries: each row looks in the graphs it is given for its `duplicateNeighbors`
 * nearest rows and is joined with those at least `duplicateThreshold` cosine-similar (compressed
 * shards: their lists' near-duplicates, CompressedGraph.nearDuplicates). A row added later
 * searches the rows before it, so every pair is found from its later row.
 */
import { CompressedGraph } from "../../formats/index/compressed-graph.js";
import type { DuplicateGroups } from "../../formats/index/duplicate-groups.js";
import type { GraphSettings, VectorGraph } from "../../formats/index/graph.js";
import type { IndexParams } from "../../formats/index/index-manifest.js";
import { type AddedRows, RowLists } from "../../formats/index/row-lists.js";

/**
 * The compressed tier's lists of rows as they are added, add by add, kept while every add gave
 * them under one training: joinNearDuplicates then needs no second assignment.
 */
export class EncodedLists {
  private readonly lists: Uint32Array;
  /** The training they are under; null once an add gave none, or another's. */
  private training: string | undefined | null;

  constructor(rows: number) {
    this.lists = new Uint32Array(rows);
  }

  /** What adding rows `at …` returned (nothing: an HNSW graph, or rows waiting to be trained on). */
  record(assigned: Awaited<ReturnType<BuildGraph["add"]>>, at: number): void {
    if (
      assigned !== undefined &&
      (this.training === undefined || this.training === assigned.trainingKey)
    ) {
      this.lists.set(assigned.lists, at);
      this.training = assigned.trainingKey;
    } else {
      this.training = null;
    }
  }

  /** The lists by training, as joinNearDuplicates takes them; empty unless every add gave them. */
  byTraining(): Map<string, Uint32Array> {
    return typeof this.training === "string" ? new Map([[this.training, this.lists]]) : new Map();
  }
}

/**
 * The settings a build gives the HNSW graphs it adds to or opens: while it builds, a graph is
 * searched only for near-duplicates, with their own candidate list (the saved file does not
 * depend on it; serve opens it with the index's).
 */
export function duplicateSearchSettings(params: IndexParams): GraphSettings {
  return { ...params, expansionSearch: params.duplicateExpansion ?? params.expansionSearch };
}

/** A modality's search structure while it is built: an HNSW graph or the compressed tier's. */
export type BuildGraph = VectorGraph | CompressedGraph;

export interface NearDuplicateSearch {
  dimensions: number;
  params: IndexParams;
  /** Where the joins go (ids as the graphs return them). */
  groups: Pick<DuplicateGroups, "union">;
  threads: number;
}

/**
 * Joins rows `firstId …` (`vectors`, row-major) with the near-duplicates each of `images` finds.
 * `imageLists`: the rows' lists by training, when adding them gave them (no second assignment).
 */
export async function joinNearDuplicates(
  search: NearDuplicateSearch,
  images: readonly BuildGraph[],
  vectors: Float32Array,
  firstId: number,
  imageLists = new Map<string, Uint32Array>(),
): Promise<void> {
  const { dimensions, params, groups, threads } = search;
  const rows = vectors.length / dimensions;
  // A compressed shard decodes each list a batch touches: the segment at once, so lists are
  // decoded once a segment rather than once a few thousand rows.
  const batch = params.tier === "compressed" ? Math.max(rows, 1) : 4096;
  for (let start = 0; start < rows; start += batch) {
    const end = Math.min(rows, start + batch);
    const batchVectors = vectors.subarray(start * dimensions, end * dimensions);
    const assigned = batch === rows ? imageLists : new Map<string, Uint32Array>();
    for (const image of images) {
      const found =
        image instanceof CompressedGraph
          ? await image.nearDuplicates(batchVectors, {
              threshold: params.duplicateThreshold,
              count: params.duplicateNeighbors,
              threads,
              firstId: firstId + start,
              assigned,
            })
          : image.searchBatch(batchVectors, params.duplicateNeighbors + 1, threads);
      found.forEach((matches, offset) => {
        const id = firstId + start + offset;
        for (let index = 0; index < matches.ids.length; index++) {
          if ((matches.similarities[index] as number) < params.duplicateThreshold) break;
          const other = matches.ids[index] as number;
          if (other !== id) groups.union(id, other);
        }
      });
    }
  }
}

/**
 * Joins the rows a memory-tier build added (`added`: consecutive ids, taken: RowLists.build
 * empties it) with their near-duplicates among themselves, through lists of those rows (RowLists)
 * rather than their graphs. Rows of an index the build extends are found through that index's
 * graphs (joinNearDuplicates).
 */
export async function joinAddedDuplicates(
  search: NearDuplicateSearch,
  added: AddedRows[],
): Promise<void> {
  const first = added[0];
  if (first === undefined) return;
  const { dimensions, params, groups, threads } = search;
  const lists = await RowLists.build(added, dimensions, threads);
  await lists.nearDuplicates(
    { threshold: params.duplicateThreshold, count: params.duplicateNeighbors, threads },
    (row, other) => groups.union(first.firstId + row, first.firstId + other),
  );
}
