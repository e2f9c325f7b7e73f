/**
 * What every route reads: the served indices by name, the serve config, the image_url fetcher,
 * the metrics and the export jobs. One per server; the routes get it when they are registered.
 *
 * The indices follow their files: before each request `refresh` compares every index's manifest
 * with the one it was opened from (one stat), and an index rewritten since (`clipcrawl remove`
 * rebuilds it without the removed rows) is reopened and swapped in, so the next query no longer
 * sees removed samples. Each request leases the indices it takes (`withLeases`), so one still
 * running finishes on the old index, which is closed after it.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { ClipcrawlError, errorMessage } from "../errors.js";
import type { ImageFetcher } from "../io/fetch/image-fetcher.js";
import { LocalStorage } from "../io/local-storage.js";
import type { ServeConfig } from "./config.js";
import type { ExportJobs } from "./export-jobs.js";
import type { KnnLimits } from "./knn-request.js";
import type { ServerMetrics } from "./metrics.js";
import type { QueryEmbeddingContext } from "./query-embedding.js";
import { RequestError } from "./request-error.js";
import { manifestStamp, type ServedIndex } from "./served-index.js";

/** How deep pagination may go, in multiples of maxResults. */
const MAX_DEPTH_PAGES = 10;

/** The lease releases of the request being handled. */
const REMOTE_CHECK_MS = 2_000;
const requestLeases = new AsyncLocalStorage<Array<() => void>>();

/** An index whose rewritten files could not be opened (or were deleted): 503 until they change. */
interface UnavailableIndex {
  stamp: string;
  reason: string;
  /** A damaged tombstone file, not the index's files: the fix is to restore it. */
  tombstones?: boolean;
}

export class ServerContext {
  readonly limits: KnnLimits;
  readonly embedding: QueryEmbeddingContext;
  private readonly reloads = new Map<string, Promise<void>>();
  private readonly unavailable = new Map<string, UnavailableIndex>();
  /** When each index on object storage was last checked for changes (see refresh). */
  private readonly remoteChecks = new Map<string, number>();

  constructor(
    /** By name; `refresh` swaps in a reopened index. */
    readonly indices: Map<string, ServedIndex>,
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
    const unavailable = this.unavailable.get(served.name);
    if (unavailable !== undefined) {
      throw new RequestError(
        field,
        unavailable.tombstones === true
          ? `index ${served.name} is not available: ${unavailable.reason}`
          : `index ${served.name} is not available: ${unavailable.reason}; run clipcrawl index on its root`,
        503,
      );
    }
    requestLeases.getStore()?.push(served.lease());
    return served;
  }

  /** Runs a route's handler; the indices it takes stay open until it is done. */
  async withLeases<T>(handler: () => T | Promise<T>): Promise<T> {
    const leases: Array<() => void> = [];
    try {
      return await requestLeases.run(leases, handler);
    } finally {
      for (const release of leases) release();
    }
  }

  /**
   * Reopens every index whose manifest changed since it was opened, and applies the tombstones of
   * a removal made since; cheap when nothing changed (a stat and a directory read an index). On
   * object storage those are requests: the tombstones are still listed before every request (one
   * LIST), so a removal is honoured the moment it returns, but the manifest is checked at most
   * once every REMOTE_CHECK_MS, and whenever the tombstones changed (a compaction rebuilds the
   * index before it deletes the tombstones it applied: the new tombstones must not be applied to
   * the old index).
   */
  async refresh(): Promise<void> {
    const now = Date.now();
    for (const [name, served] of this.indices) {
      if (!(served.storage instanceof LocalStorage)) {
        const recent = now - (this.remoteChecks.get(name) ?? 0) < REMOTE_CHECK_MS;
        if (recent && !(await served.tombstonesChanged())) continue;
        this.remoteChecks.set(name, now);
      }
      const stamp = await manifestStamp(served.storage);
      const unavailable = this.unavailable.get(name);
      if (
        stamp === served.stamp &&
        (unavailable === undefined || unavailable.tombstones === true)
      ) {
        if (await served.tombstonesChanged()) await this.applyTombstones(name, served, stamp);
        continue;
      }
      if (unavailable?.stamp === stamp) continue;
      let reload = this.reloads.get(name);
      if (reload === undefined) {
        reload = this.reload(name, served, stamp).finally(() => this.reloads.delete(name));
        this.reloads.set(name, reload);
      }
      await reload;
    }
  }

  private async applyTombstones(name: string, served: ServedIndex, stamp: string): Promise<void> {
    let update = this.reloads.get(name);
    if (update === undefined) {
      update = (async () => {
        try {
          await served.refreshTombstones();
          if (this.unavailable.get(name)?.tombstones === true) this.unavailable.delete(name);
        } catch (error) {
          // Which samples are removed cannot be told: serving any could serve one of them.
          this.unavailable.set(name, { stamp, reason: errorMessage(error), tombstones: true });
        }
      })().finally(() => this.reloads.delete(name));
      this.reloads.set(name, update);
    }
    await update;
  }

  private async reload(name: string, served: ServedIndex, stamp: string): Promise<void> {
    try {
      const next = await served.reopen();
      this.indices.set(name, next);
      this.unavailable.delete(name);
      next.warm();
    } catch (error) {
      // Serving the old files would serve what was removed from them: refuse until rebuilt.
      served.retire();
      const reason = stamp === "missing" ? "its index was deleted" : errorMessage(error);
      if (error instanceof ClipcrawlError && error.code === "CC_TOMBSTONES") {
        // Tried again on the next request: the fix is to the tombstone file, not the manifest.
        this.unavailable.set(name, { stamp: "", reason, tombstones: true });
      } else {
        this.unavailable.set(name, { stamp, reason });
      }
    }
  }
}
