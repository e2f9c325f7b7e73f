/**
 * `clipcrawl serve` as a function: loads every index with its query models, builds the app and
 * listens (on 127.0.0.1 unless told otherwise). The caller gets the URL and a `close` that stops
 * the server, finishes what is running and releases the models.
 *
 * Closing takes at most a grace period whatever clients do: idle connections close at once,
 * requests in flight have SHUTDOWN_GRACE_MS to finish, then every connection is cut. Node stops
 * enforcing the request timeout once the server closes, so a client holding a half-sent request
 * would otherwise keep the process alive for as long as it likes.
 */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance } from "fastify";
import { loadConfig, parseConfig } from "../config/config-file.js";
import { ConfigError, errorMessage } from "../errors.js";
import { ImageFetcher } from "../io/fetch/image-fetcher.js";
import { openRoot } from "../io/open-root.js";
import type { ServeConfig } from "./config.js";
import { ExportJobs } from "./export-jobs.js";
import { checkIndexName } from "./indices-file.js";
import { ServerMetrics } from "./metrics.js";
import { type IndexSource, ServedIndex } from "./served-index.js";
import { buildServerApp } from "./server-app.js";
import { ServerContext } from "./server-context.js";
import { checkRemoteShards } from "./shard-fanout.js";
import { ShardThreads } from "./shard-threads.js";

export type { IndexSource } from "./served-index.js";

/** How long requests in flight may take to finish once the server is closing. */
export const SHUTDOWN_GRACE_MS = 5000;

export interface ServeOptions {
  /** The indices to serve, by name; the first answers queries that name none. */
  indices: readonly IndexSource[];
  /** Serve settings over the defaults (or over a root's config: see serveConfigOf). */
  config?: Partial<ServeConfig>;
  /** Bearer token the data-changing routes require; default: CLIPCRAWL_SERVE_TOKEN, else none. */
  token?: string;
  /** The web UI's built files; default: the package's web/dist. */
  webRoot?: string;
  /** Hears what is served less than asked (a shard not loaded or not answering; default: stderr). */
  onWarning?: (line: string) => void;
  /** Hears server-side errors (default: one line on stderr). */
  onServerError?: (error: unknown, route: string) => void;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:1234 */
  url: string;
  indices: string[];
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function serve(options: ServeOptions): Promise<RunningServer> {
  if (options.indices.length === 0) throw new ConfigError("serve needs at least one index");
  const config = parseConfig({ serve: options.config ?? {} }, "serve options").serve;
  const names = new Set<string>();
  for (const source of options.indices) {
    checkIndexName(source.name, "serve");
    if (names.has(source.name)) {
      throw new ConfigError(`index name ${source.name} is given twice`);
    }
    names.add(source.name);
  }
  const indices = new Map<string, ServedIndex>();
  const fetcher = new ImageFetcher({
    timeoutSeconds: config.imageUrlTimeoutSeconds,
    totalTimeoutSeconds: config.imageUrlTimeoutSeconds,
    retries: 0,
    retryBackoffSeconds: 0,
    maxRedirects: 5,
    maxBodyBytes: config.maxImageBytes,
    dnsCacheSeconds: 60,
    userAgentToken: "",
    disallowedHeaderDirectives: [],
    allowPrivateNetwork: config.allowPrivateNetwork,
    connectTo: [],
    caCertificates: "",
    contentTypeCheck: true,
    connectionsPerHost: 4,
  });
  const exports = new ExportJobs();
  const metrics = new ServerMetrics();
  const shardThreads = ShardThreads.configured(config.shardThreads, (index, shard, seconds) =>
    metrics.observeShard(index, shard, "ok", seconds),
  );
  const release = async () => {
    await Promise.all([...indices.values()].map((served) => served.close()));
    await shardThreads?.close();
    // Nothing is left to answer once the app is closed: image_url downloads still running stop.
    await Promise.all([fetcher.destroy(), exports.close()]);
  };
  try {
    for (const source of options.indices) {
      indices.set(
        source.name,
        await ServedIndex.load(source, {
          threads: config.threads,
          expansionSearch: config.expansionSearch,
          violencePrompts: { violent: config.violencePrompts, safe: config.safePrompts },
          maxImagePixels: config.maxImagePixels,
          ...(shardThreads === undefined ? {} : { shardThreads }),
        }),
      );
    }
    const warn =
      options.onWarning ?? ((line) => process.stderr.write(`clipcrawl serve: ${line}\n`));
    for (const served of indices.values()) {
      for (const shard of served.index.unavailableShards) {
        warn(
          `index ${served.name}: shard ${shard.name} is not served (answers are partial): ${shard.path}: ${shard.reason}`,
        );
      }
      try {
        await checkRemoteShards(served, warn);
      } catch (error) {
        throw new ConfigError(errorMessage(error));
      }
    }
    const token = options.token ?? process.env.CLIPCRAWL_SERVE_TOKEN;
    const context = new ServerContext(
      indices,
      config,
      fetcher,
      metrics,
      exports,
      token === "" ? undefined : token,
    );
    const app = await buildServerApp(context, {
      webRoot: options.webRoot ?? packagedWebRoot(),
      onServerError:
        options.onServerError ??
        ((error, route) =>
          process.stderr.write(`clipcrawl serve: ${route} failed: ${errorMessage(error)}\n`)),
    });
    const address = await app.listen({ host: config.host, port: config.port });
    for (const served of indices.values()) served.warm();
    return {
      url: address,
      indices: [...indices.keys()],
      app,
      close: async () => {
        await closeWithinGrace(app);
        await release();
      },
    };
  } catch (error) {
    await release();
    throw error;
  }
}

/** Closes the app; connections still open after the grace period are cut. */
async function closeWithinGrace(app: FastifyInstance): Promise<void> {
  const closed = app.close();
  const cut = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
  try {
    await closed;
  } finally {
    clearTimeout(cut);
  }
}

/** A root's `serve` config section with `overrides` on top (the CLI's flags). */
export async function serveConfigOf(
  root: string,
  overrides: Partial<ServeConfig> = {},
): Promise<ServeConfig> {
  return (await loadConfig(openRoot(root), { serve: overrides })).serve;
}

/** web/dist of the package this module belongs to (from src/server or dist/src/server). */
function packagedWebRoot(): string | undefined {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 4; depth++) {
    folder = dirname(folder);
    if (existsSync(join(folder, "package.json"))) {
      const web = join(folder, "web", "dist");
      return existsSync(web) ? web : undefined;
    }
  }
  return undefined;
}
