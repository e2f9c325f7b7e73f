/**
 * Turns the UI state into a `/knn-service` body and runs it. A text or image URL goes as is; an
 * upload comes from session storage; "more like this" sends the result's own image, read from the
 * dataset's shard through the thumbnail route (the bytes the index embedded), and falls back to
 * its original URL when the shard lacks it.
 */
import { blobToBase64, type ClipcrawlApi, type KnnQuery, type KnnResult } from "./api.js";
import { knnFilters, type Query, type UiState, UNSAFE_THRESHOLD } from "./state.js";
import { loadUpload } from "./uploads.js";

/** A query the page cannot send (an upload this tab no longer holds, a vanished row). */
export class QueryUnavailableError extends Error {}

export async function knnBody(
  api: ClipcrawlApi,
  state: UiState,
  index: string,
  signal?: AbortSignal,
): Promise<KnnQuery> {
  if (state.query === null) throw new QueryUnavailableError("no query");
  return { ...knnFilters(state, index), ...(await queryFields(api, state.query, index, signal)) };
}

export interface SearchAnswer {
  results: KnnResult[];
  /** Rows the server sent, before repeated URLs were hidden: a full page means there is more. */
  received: number;
  /** Index shards that did not answer: the results lack their rows. */
  missingShards: string[];
}

export async function search(
  api: ClipcrawlApi,
  state: UiState,
  index: string,
  signal?: AbortSignal,
): Promise<SearchAnswer> {
  if (state.query?.kind === "rows") return chosenRows(api, state, state.query.ids, index);
  const body = await knnBody(api, state, index, signal);
  const { results, missingShards } = await api.knnWithShards(body, signal);
  return {
    results: state.hideDuplicates ? withoutRepeatedUrls(results) : results,
    received: results.length,
    missingShards,
  };
}

async function queryFields(
  api: ClipcrawlApi,
  query: Query,
  index: string,
  signal?: AbortSignal,
): Promise<Pick<KnnQuery, "text" | "image" | "image_url">> {
  switch (query.kind) {
    case "text":
      return { text: query.text };
    case "imageUrl":
      return { image_url: query.url };
    case "upload": {
      const image = loadUpload(query.ref);
      if (image === undefined) {
        throw new QueryUnavailableError(
          "The uploaded image of this link is not in this browser tab: upload it again.",
        );
      }
      return { image };
    }
    case "like":
      return likeFields(api, query.id, index, signal);
    case "rows":
      throw new QueryUnavailableError(
        "Rows chosen on the atlas are shown as they are, not searched.",
      );
  }
}

/**
 * Rows chosen on the Atlas map, a page of them: their metadata, in the order chosen, less the
 * flagged ones in safe mode "hide" (no similarity: they answer no query).
 */
async function chosenRows(
  api: ClipcrawlApi,
  state: UiState,
  ids: readonly number[],
  index: string,
): Promise<SearchAnswer> {
  const page = ids.slice((state.page - 1) * state.count, state.page * state.count);
  const metadata = await api.metadata(index, page);
  const results = page.flatMap((id): KnnResult[] => {
    const row = metadata.get(id);
    if (row === undefined) return [];
    if (state.safe === "hide" && (row.punsafe ?? 0) > UNSAFE_THRESHOLD) return [];
    return [{ ...emptyResult(id), ...row, id, similarity: Number.NaN }];
  });
  return { results, received: page.length, missingShards: [] };
}

function emptyResult(id: number): KnnResult {
  return {
    id,
    similarity: Number.NaN,
    url: "",
    caption: null,
    key: null,
    punsafe: null,
    pwatermark: null,
    ptoxic: null,
    AESTHETIC_SCORE: null,
    LANGUAGE: null,
    WIDTH: null,
    HEIGHT: null,
    page_url: null,
    source: null,
  };
}

async function likeFields(
  api: ClipcrawlApi,
  id: number,
  index: string,
  signal?: AbortSignal,
): Promise<Pick<KnnQuery, "image" | "image_url">> {
  const row = (await api.metadata(index, [id])).get(id);
  if (row === undefined) {
    throw new QueryUnavailableError(`Result #${id} is not in index ${index}.`);
  }
  if (typeof row.key === "string" && row.key !== "") {
    try {
      const response = await fetch(api.thumbnailUrl(index, row.key), { signal: signal ?? null });
      if (response.ok) return { image: await blobToBase64(await response.blob()) };
    } catch (error) {
      // The route redirects to the original site when the shard lacks the image, and that
      // site rarely allows a cross-origin read: let the server fetch the URL instead.
      if (signal?.aborted) throw error;
    }
  }
  if (typeof row.url === "string" && row.url !== "") return { image_url: row.url };
  throw new QueryUnavailableError(`Result #${id} has neither an image in the dataset nor a URL.`);
}

/** clip-front's "hide duplicate URLs": the first result of each URL is kept. */
function withoutRepeatedUrls(results: KnnResult[]): KnnResult[] {
  const seen = new Set<string>();
  return results.filter((result) => {
    if (seen.has(result.url)) return false;
    seen.add(result.url);
    return true;
  });
}
