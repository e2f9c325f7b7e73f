/**
 * The `clipcrawl serve` HTTP API as the web UI calls it (docs/http-api.md is the contract).
 * Every path is relative to the API base, the folder the page is served from unless the `back`
 * URL parameter names another server (as clip-front's does), so the UI works under any prefix.
 */

export type Modality = "image" | "text";
export type ExportFormat = "parquet" | "csv" | "jsonl";

/** A `/knn-service` body: clip-back's fields plus clipcrawl's filters and `offset`. */
export interface KnnQuery {
  text?: string;
  /** Base64 of the image bytes. */
  image?: string;
  image_url?: string;
  modality: Modality;
  indice_name: string;
  num_images: number;
  use_mclip?: boolean;
  deduplicate?: boolean;
  max_punsafe?: number;
  max_pwatermark?: number;
  min_aesthetic_score?: number;
  languages?: string[];
  offset?: number;
}

/** One `/knn-service` result: the index's metadata columns, its row id and the similarity. */
export interface KnnResult {
  id: number;
  similarity: number;
  url: string;
  caption: string | null;
  key: string | null;
  punsafe: number | null;
  pwatermark: number | null;
  ptoxic: number | null;
  AESTHETIC_SCORE: number | null;
  LANGUAGE: string | null;
  WIDTH: number | null;
  HEIGHT: number | null;
  page_url: string | null;
  source: string | null;
  dup_group?: number | string | null;
}

export interface IndexInfo {
  name: string;
  rows: number;
  dimensions: number;
  modalities: Modality[];
  hasMultilingual: boolean;
  columns: string[];
}

/** A histogram bin: `[lower, upper, count]`. */
export type Bin = [number, number, number];

export interface Histogram {
  bins: Bin[];
}

/** `/api/stats/:index`: the statistics page's numbers. */
export interface DatasetStats {
  /** links, candidates, downloaded, embedded, kept; null where that stage's numbers are missing. */
  funnel: Record<string, number | null>;
  /** Null before the filter stage has run. */
  thresholds: Record<string, number> | null;
  similarity: Histogram;
  languages: [string, number][];
  sizes: { width: Histogram; height: Histogram };
  punsafe: Histogram;
  pwatermark: Histogram;
  aesthetic: Histogram;
  downloadErrors: [string, number][];
  dropReasons: [string, number][];
  /** The latest `clipcrawl recheck` (overall and per domain); null before one. */
  linkRot: LinkRot | null;
}

export interface LinkRotCounts {
  urls: number;
  alive: number;
  changed: number;
  gone: number;
  opted_out: number;
  error: number;
}

export interface LinkRot {
  date: string;
  overall: LinkRotCounts | null;
  domains: ({ domain: string } & LinkRotCounts)[];
}

/** `/api/atlas/:index`: what the map holds. */
export interface AtlasInfo {
  index: string;
  points: number;
  bounds: [number, number, number, number];
  clusters: { id: number; label: string; words: string[]; x: number; y: number; points: number }[];
  /** The language byte's meaning: the code of value i. */
  languages: string[];
  method: {
    pcaDimensions: number;
    layoutSample: number;
    umap: { nNeighbors: number; minDist: number; nEpochs: number };
    placementNeighbors: number;
    seconds: Record<string, number>;
  };
  rejoined: boolean;
}

export interface ExportJobProgress {
  state: "running" | "done" | "failed";
  done: number;
  total: number;
  error?: string;
}

/** A 4xx/5xx answer, with the server's message and the field it blames when it names one. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly field?: string,
  ) {
    super(message);
    this.name = "ApiError";
  }
}

export class ClipcrawlApi {
  readonly base: URL;

  constructor(base: string | URL) {
    const url = new URL(base, window.location.href);
    if (!url.pathname.endsWith("/")) url.pathname += "/";
    this.base = url;
  }

  url(path: string): string {
    return new URL(path, this.base).href;
  }

  indicesList(): Promise<string[]> {
    return this.json("indices-list");
  }

  /** Index details; an older clip-back has no `/api/indices`, so a 404 gives `[]`. */
  async indices(): Promise<IndexInfo[]> {
    try {
      return await this.json<IndexInfo[]>("api/indices");
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return [];
      throw error;
    }
  }

  knn(query: KnnQuery, signal?: AbortSignal): Promise<KnnResult[]> {
    return this.json("knn-service", { method: "POST", body: query, signal });
  }

  /**
   * The same, with the shards whose rows the answer lacks (the server's X-Clipcrawl-Partial:
   * a shard down or past its deadline); empty when the answer is complete.
   */
  async knnWithShards(
    query: KnnQuery,
    signal?: AbortSignal,
  ): Promise<{ results: KnnResult[]; missingShards: string[] }> {
    const response = await this.request("knn-service", { method: "POST", body: query, signal });
    const partial = response.headers.get("x-clipcrawl-partial");
    return {
      results: (await response.json()) as KnnResult[],
      missingShards: partial === null || partial === "" ? [] : partial.split(","),
    };
  }

  async metadata(index: string, ids: number[]): Promise<Map<number, Partial<KnnResult>>> {
    const answer = await this.json<{ id: number; metadata: Partial<KnnResult> }[]>("metadata", {
      method: "POST",
      body: { ids, indice_name: index },
    });
    return new Map(answer.map((row) => [row.id, row.metadata]));
  }

  stats(index: string, signal?: AbortSignal): Promise<DatasetStats> {
    return this.json(`api/stats/${encodeURIComponent(index)}`, { signal });
  }

  atlas(index: string, signal?: AbortSignal): Promise<AtlasInfo> {
    return this.json(`api/atlas/${encodeURIComponent(index)}`, { signal });
  }

  /** The map's points, binary (docs/http-api.md); flagged ones left out under `maxPunsafe`. */
  async atlasPoints(
    index: string,
    maxPunsafe: number | undefined,
    signal?: AbortSignal,
  ): Promise<ArrayBuffer> {
    const query = maxPunsafe === undefined ? "" : `?max_punsafe=${maxPunsafe}`;
    const response = await this.request(`api/atlas/${encodeURIComponent(index)}/points${query}`, {
      signal,
    });
    return response.arrayBuffer();
  }

  /** The export file of rows chosen by id (the Atlas page's lasso). */
  async exportRows(
    index: string,
    ids: readonly number[],
    format: ExportFormat,
    maxPunsafe: number | undefined,
  ): Promise<{ blob: Blob; filename: string }> {
    const body: Record<string, unknown> = { indice_name: index, ids, format };
    if (maxPunsafe !== undefined) body.max_punsafe = maxPunsafe;
    const response = await this.request("api/export", { method: "POST", body });
    return { blob: await response.blob(), filename: exportName(response, format) };
  }

  thumbnailUrl(index: string, key: string): string {
    return this.url(`api/thumbnail/${encodeURIComponent(index)}/${encodeURIComponent(key)}`);
  }

  /** The export file of a query, with the name the server gives it. */
  async exportFile(
    query: KnnQuery,
    format: ExportFormat,
  ): Promise<{ blob: Blob; filename: string }> {
    const response = await this.request("api/export", {
      method: "POST",
      body: { ...query, format },
    });
    return { blob: await response.blob(), filename: exportName(response, format) };
  }

  startExportJob(query: KnnQuery, format: ExportFormat, expand: number): Promise<{ id: string }> {
    return this.json("api/export/jobs", { method: "POST", body: { ...query, format, expand } });
  }

  exportJob(id: string, signal?: AbortSignal): Promise<ExportJobProgress> {
    return this.json(`api/export/jobs/${encodeURIComponent(id)}`, { signal });
  }

  exportJobFileUrl(id: string): string {
    return this.url(`api/export/jobs/${encodeURIComponent(id)}/file`);
  }

  private async json<T>(
    path: string,
    options: { method?: string; body?: unknown; signal?: AbortSignal | undefined } = {},
  ): Promise<T> {
    const response = await this.request(path, options);
    return (await response.json()) as T;
  }

  private async request(
    path: string,
    options: { method?: string; body?: unknown; signal?: AbortSignal | undefined },
  ): Promise<Response> {
    const init: RequestInit = { method: options.method ?? "GET" };
    if (options.signal !== undefined) init.signal = options.signal;
    if (options.body !== undefined) {
      init.body = JSON.stringify(options.body);
      init.headers = { "content-type": "application/json" };
    }
    const response = await fetch(this.url(path), init);
    if (!response.ok) throw await apiError(response, path);
    return response;
  }
}

/** The file name the server gives an export. */
function exportName(response: Response, format: ExportFormat): string {
  const disposition = response.headers.get("content-disposition") ?? "";
  return /filename="?([^";]+)"?/.exec(disposition)?.[1] ?? `clipcrawl-subset.${format}`;
}

async function apiError(response: Response, path: string): Promise<ApiError> {
  const text = await response.text();
  try {
    const body = JSON.parse(text) as { error?: string; field?: string };
    if (typeof body.error === "string") {
      return new ApiError(body.error, response.status, body.field);
    }
  } catch {
    // Not the contract's JSON error (a proxy's page, a crash): say what came back instead.
  }
  const detail = text.trim().slice(0, 200) || response.statusText;
  return new ApiError(`${path}: HTTP ${response.status} ${detail}`, response.status);
}

/** Base64 of bytes, for `/knn-service`'s `image`. */
export async function blobToBase64(blob: Blob): Promise<string> {
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let binary = "";
  const chunk = 0x8000;
  for (let start = 0; start < bytes.length; start += chunk) {
    binary += String.fromCharCode(...bytes.subarray(start, start + chunk));
  }
  return btoa(binary);
}
