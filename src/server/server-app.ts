/**
 * The Fastify app: how every request is read and answered before a route sees it. Bodies are
 * JSON whatever their content type (clip-back reads them with `get_json(force=True)` and
 * ClipClient sends none), up to a size that fits the largest query image as base64. CORS is open
 * unless configured, each client address has a request rate, and every error is one JSON
 * object with a 4xx status, so bad input never becomes a 5xx. The web UI's built files are served
 * at `/` when they exist.
 */
import { existsSync } from "node:fs";
import cors from "@fastify/cors";
import rateLimit from "@fastify/rate-limit";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyError, type FastifyInstance } from "fastify";
import { registerApiRoutes } from "./api-routes.js";
import { registerAtlasRoutes } from "./atlas-routes.js";
import { registerClipBackRoutes } from "./clip-back-routes.js";
import { registerOpsRoutes } from "./ops-routes.js";
import { type ErrorBody, errorBody, RequestError } from "./request-error.js";
import type { ServerContext } from "./server-context.js";

/** Room in a body beyond the base64 of the largest image: the other fields. */
const BODY_MARGIN = 1024 * 1024;
const UNMEASURED_ROUTES = new Set(["/metrics"]);

export interface ServerAppOptions {
  /** Folder of the web UI's built files (index.html, assets/); not served when absent. */
  webRoot: string | undefined;
  /** Hears what went wrong on the server's side (a 500): a bug or a damaged index file. */
  onServerError: (error: unknown, route: string) => void;
}

export async function buildServerApp(
  context: ServerContext,
  options: ServerAppOptions,
): Promise<FastifyInstance> {
  const { config } = context;
  const requestTimeoutMs = config.requestTimeoutSeconds * 1000;
  const app = Fastify({
    logger: false,
    bodyLimit: Math.ceil((config.maxImageBytes * 4) / 3) + BODY_MARGIN,
    requestTimeout: requestTimeoutMs,
    // Node looks for overdue requests every 30 s by default (a slow client would hold its
    // connection that much past the timeout), and enforces requestTimeout only when the headers
    // timeout is not longer.
    http: {
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, requestTimeoutMs / 4)),
      headersTimeout: Math.min(60_000, requestTimeoutMs),
    },
    return503OnClosing: true,
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_request, body, done) => {
    try {
      done(null, body.length === 0 ? undefined : JSON.parse(body.toString("utf8")));
    } catch (error) {
      done(
        new RequestError(undefined, `the body is not valid JSON: ${(error as Error).message}`),
        undefined,
      );
    }
  });

  app.setErrorHandler((error: FastifyError | RequestError, request, reply) => {
    const [status, body] = errorAnswer(error);
    if (status >= 500) options.onServerError(error, `${request.method} ${request.url}`);
    return reply.status(status).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: `no route ${request.method} ${request.url.split("?")[0]}` }),
  );

  // An index rewritten on disk (clipcrawl remove) is reopened before the request that notices it.
  app.addHook("onRequest", async () => {
    await context.refresh();
  });
  app.addHook("onRoute", (route) => {
    const handler = route.handler;
    // A handler that sends on its own and returns nothing (@fastify/static's) must not resolve
    // to undefined here: fastify would answer at once with an empty body. Returning the reply
    // tells fastify the handler sends it.
    route.handler = async function (this: FastifyInstance, request, reply) {
      const result = await context.withLeases(() => handler.call(this, request, reply));
      return result === undefined ? reply : result;
    };
  });

  // Once the server is closing, an answer ends its connection: a client's keep-alive connection
  // would otherwise stay open until the shutdown grace period cuts it (see serve.ts).
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  app.addHook("onSend", async (_request, reply) => {
    if (closing) reply.header("connection", "close");
  });

  app.addHook("onResponse", async (request, reply) => {
    const route = request.routeOptions.url ?? "unmatched";
    if (UNMEASURED_ROUTES.has(route)) return;
    context.metrics.observeRequest(
      route,
      request.method,
      reply.statusCode,
      reply.elapsedTime / 1000,
    );
  });

  await app.register(cors, {
    origin: config.corsOrigins.includes("*") ? "*" : config.corsOrigins,
    methods: ["GET", "POST", "OPTIONS"],
  });
  if (config.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: config.rateLimitPerMinute,
      timeWindow: 60_000,
      allowList: (request) => request.url === "/health" || request.url === "/metrics",
      errorResponseBuilder: (_request, limit) =>
        new RequestError(
          undefined,
          `rate limit: at most ${limit.max} requests a minute from one address; retry in ${limit.after}`,
          429,
        ),
    });
  }

  registerClipBackRoutes(app, context);
  registerOpsRoutes(app, context);
  registerApiRoutes(app, context);
  registerAtlasRoutes(app, context);
  if (options.webRoot !== undefined && existsSync(options.webRoot)) {
    await app.register(fastifyStatic, { root: options.webRoot, prefix: "/", index: "index.html" });
  } else {
    app.get("/", async (_request, reply) =>
      reply
        .type("text/plain; charset=utf-8")
        .send(
          `clipcrawl serve: indices ${context.names.join(", ")}\nAPI: GET /indices-list, POST /knn-service, POST /metadata, GET /api/indices, GET /metrics (see docs/http-api.md)\nThe web UI is not built here (npm run build:web writes web/dist).\n`,
        ),
    );
  }
  return app;
}

/** The status and body of an error answer: 4xx as they are, anything else a 500. */
function errorAnswer(error: FastifyError | RequestError): [number, ErrorBody] {
  if (error instanceof RequestError) return [error.statusCode, errorBody(error)];
  const status = typeof error.statusCode === "number" ? error.statusCode : 500;
  if (status >= 400 && status < 500) {
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      return [413, { error: `the body is larger than the server's limit (${error.message})` }];
    }
    return [status, { error: error.message }];
  }
  return [500, { error: "internal error; the server's log has the details" }];
}
