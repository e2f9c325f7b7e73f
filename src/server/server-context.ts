/**
 * What every route reads: the served indices by name, the serve config, the image_url fetcher,
 * the metrics and the export jobs. One per server; the routes get it when they are registered.
 */
import type { ServeConfig } from "../config/schema.js";
import type { ImageFetcher } from "../stages/download/fetcher.js";
import type { ExportJobs } from "./export-jobs.js";
import type { KnnLimits } from "./knn-request.js";
import type { ServerMetrics } from "./metrics.js";
import type { QueryEmbeddingContext } from "./query-embedding.js";
import { RequestError } from "./request-error.js";
import type { ServedIndex } from "./served-index.js";

/** How deep pagination may go, in multiples of maxResults. */
const MAX_DEPTH_PAGES = 10;

export class ServerContext {
  readonly limits: KnnLimits;
  readonly embedding: QueryEmbeddingContext;

  constructor(
    readonly indices: ReadonlyMap<string, ServedIndex>,
    readonly config: ServeConfig,
    readonly fetcher: ImageFetcher,
    readonly metrics: ServerMetrics,
    readonly exports: ExportJobs,
    /** Bearer token required by the routes that change data; undefined: none required. */
    readonly token: string | undefined,
  ) {
    this.limits = {
      maxResults: config.maxResults,
      maxDepth: config.maxResults * MAX_DEPTH_PAGES,
    };
    this.embedding = {
      fetcher,
      metrics,
      limits: { maxImageBytes: config.maxImageBytes, maxImagePixels: config.maxImagePixels },
    };
  }

  get names(): string[] {
    return [...this.indices.keys()];
  }

  /**
   * The index a request names; clip-back's first index when it names none. An unknown name is a
   * 400 in a query's body, a 404 in a URL's path.
   */
  index(name: string | undefined, field = "indice_name", status = 400): ServedIndex {
    const chosen = name ?? this.names[0];
    const served = chosen === undefined ? undefined : this.indices.get(chosen);
    if (served === undefined) {
      throw new RequestError(
        field,
        `unknown index ${JSON.stringify(chosen)}; this server has ${this.names.map((known) => JSON.stringify(known)).join(", ")}`,
        status,
      );
    }
    return served;
  }
}
