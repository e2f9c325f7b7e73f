/**
 * A `/knn-service` query from its checked fields to its results: the query embedding, the
 * filters it asks for (safe mode, deduplication, the violence detector, clipcrawl's score and
 * language filters), and the search, each step timed in the metrics.
 */
import type { SearchFilters, SearchResult } from "../formats/index/clip-index.js";
import type { KnnQuery } from "./knn-request.js";
import { findResults, SAFETY_THRESHOLD } from "./knn-search.js";
import { type QueryEmbeddingContext, queryEmbedding } from "./query-embedding.js";
import type { ServedIndex } from "./served-index.js";

export async function runKnnQuery(
  served: ServedIndex,
  query: KnnQuery,
  context: QueryEmbeddingContext,
  count: number = query.numResultIds,
  /** The query's embedding when the caller has it already (a fan-out embeds once). */
  embedded?: Float32Array,
): Promise<SearchResult[]> {
  const vector = embedded ?? (await queryEmbedding(served, query, context));
  const violence = query.useViolenceDetector ? await served.violenceFlags() : undefined;
  const filters: SearchFilters = { ...query.filters, deduplicate: query.deduplicate };
  if (query.useSafetyModel) {
    filters.maxPunsafe = Math.min(filters.maxPunsafe ?? SAFETY_THRESHOLD, SAFETY_THRESHOLD);
  }
  return context.metrics.time("search", served.name, () =>
    findResults(
      served,
      {
        vector,
        modality: query.modality,
        count,
        offset: query.offset,
        filters,
        violence,
        uniqueUrls: query.deduplicate,
      },
      served.graphSearcher,
    ),
  );
}
