/** What operators and monitoring read: `/health`, Prometheus `/metrics`, clip-back's `/metrics-summary`. */
import type { FastifyInstance } from "fastify";
import type { ServerContext } from "./server-context.js";

export function registerOpsRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get("/health", async () => ({ status: "ok", indices: context.names }));

  app.get("/metrics", async (_request, reply) => {
    reply.type(context.metrics.contentType);
    return context.metrics.metrics();
  });

  app.get("/metrics-summary", async (_request, reply) => {
    reply.type("text/plain; charset=utf-8");
    return context.metrics.summary();
  });
}
