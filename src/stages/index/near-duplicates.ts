/**
 * Joins rows with the near-duplicates that shards' image graphs find for them, so a group
 * crosses shard boundaries: each row looks in the graphs it is given for its `duplicateNeighbors`
 * nearest rows and is joined with those at least `duplicateThreshold` cosine-similar (compressed
 * shards: their lists' near-duplicates, CompressedGraph.nearDuplicates). A row added later
 * searches the rows before it, so every pair is found from its later row.
 */
import { CompressedGraph } from "../../formats/index/compressed-graph.js";
import type { DuplicateGroups } from "../../formats/index/duplicate-groups.js";
import type { VectorGraph } from "../../formats/index/graph.js";
import type { IndexParams } from "../../formats/index/index-manifest.js";

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
          ? await image.nearDuplicates(
              batchVectors,
              params.duplicateThreshold,
              params.duplicateNeighbors + 1,
              threads,
              assigned,
            )
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
