/**
 * A query's results: the index search with the filters inside it (safe mode's punsafe cut, the
 * score and language filters, one row per near-duplicate group), then what the index cannot
 * filter on (the violence detector's flags, repeated URLs), dropped while results are gathered.
 * When those drops leave fewer results than asked for, the search is asked again for more,
 * sized by the share that passed, until enough pass or the index has no more: a filtered query
 * returns as many results as an unfiltered one whenever the index holds them (clip-retrieval
 * #283 is what post-filtering alone gives).
 */
import type { GraphSearcher, SearchFilters, SearchResult } from "../formats/index/clip-index.js";
import type { Modality } from "../formats/index/index-manifest.js";
import type { ServedIndex } from "./served-index.js";
import type { ViolenceFlags } from "./violence-detector.js";

/** clip-back's safe mode drops what its NSFW head puts above this. */
export const SAFETY_THRESHOLD = 0.5;

export interface ResultRequest {
  vector: Float32Array;
  modality: Modality;
  /** Results wanted after `offset` are skipped. */
  count: number;
  offset: number;
  filters: SearchFilters;
  /** Drop rows the violence detector flags. */
  violence: ViolenceFlags | undefined;
  /** Keep one row per URL (the best). */
  uniqueUrls: boolean;
}

export async function findResults(
  served: ServedIndex,
  request: ResultRequest,
  /** Searches the held shards' graphs elsewhere (worker threads); default: on this thread. */
  searchGraph?: GraphSearcher,
): Promise<SearchResult[]> {
  const index = served.index;
  const wanted = request.offset + request.count;
  const postFiltered = request.violence !== undefined || request.uniqueUrls;
  let k = Math.min(wanted, index.size);
  if (k === 0) return [];
  for (;;) {
    const query = {
      vector: request.vector,
      k,
      modality: request.modality,
      filters: request.filters,
    };
    const found =
      searchGraph === undefined
        ? index.search(query)
        : (await index.searchWith(query, searchGraph)).results;
    const kept = postFiltered ? postFilter(served, found, request) : found;
    if (kept.length >= wanted || found.length < k || k >= index.size) {
      return kept.slice(request.offset, wanted);
    }
    const passRate = Math.max(kept.length, 1) / Math.max(found.length, 1);
    k = Math.min(index.size, Math.max(k * 2, Math.ceil((wanted / passRate) * 1.5)));
  }
}

function postFilter(
  served: ServedIndex,
  found: readonly SearchResult[],
  request: ResultRequest,
): SearchResult[] {
  const flags = request.violence;
  const unflagged = flags === undefined ? found : found.filter((result) => flags[result.id] !== 1);
  if (!request.uniqueUrls) return unflagged.slice();
  const urls = served.index.metadata(
    unflagged.map((result) => result.id),
    ["URL"],
  );
  const seen = new Set<string>();
  return unflagged.filter((_, position) => {
    const url = urls[position]?.URL;
    if (typeof url !== "string") return true;
    if (seen.has(url)) return false;
    seen.add(url);
    return true;
  });
}
