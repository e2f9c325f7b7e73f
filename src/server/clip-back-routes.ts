/**
 * clip-back's routes, field for field (docs/http-api.md): `GET /indices-list`,
 * `POST /knn-service`, `POST /metadata`. ClipClient and clip-front call these unchanged.
 */
import type { FastifyInstance } from "fastify";
import { asObject, parseKnnQuery, stringField } from "./knn-request.js";
import { RequestError } from "./request-error.js";
import { resultMetadata } from "./result-rows.js";
import type { ServerContext } from "./server-context.js";
import { answerKnnQuery, PARTIAL_HEADER } from "./shard-fanout.js";

export function registerClipBackRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get("/indices-list", async () => context.names);

  app.post("/knn-service", async (request, reply) => {
    const query = parseKnnQuery(request.body, context.limits);
    const served = context.index(query.indexName);
    const answer = await answerKnnQuery(served, query, request.body, context);
    if (answer.missing.length > 0) reply.header(PARTIAL_HEADER, answer.missing.join(","));
    return answer.rows;
  });

  app.post("/metadata", async (request) => {
    const fields = asObject(request.body);
    const served = context.index(stringField(fields, "indice_name", 256));
    // A removed sample's row has no metadata to give: it is left out of the answer.
    const ids = metadataIds(fields.ids, served.index.size, context.limits.maxResults).filter(
      (id) => !served.index.isRemoved(id),
    );
    if (ids.length === 0) return [];
    const metadata = context.metrics.timeSync("metadata", served.name, () =>
      resultMetadata(served, ids),
    );
    return ids.map((id, position) => ({ id, metadata: metadata[position] }));
  });
}

function metadataIds(value: unknown, rows: number, limit: number): number[] {
  if (!Array.isArray(value)) throw new RequestError("ids", "ids must be an array of row ids");
  if (value.length > limit) {
    throw new RequestError("ids", `ids has ${value.length} entries; the limit is ${limit}`);
  }
  for (const id of value) {
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= rows) {
      throw new RequestError(
        "ids",
        `id ${JSON.stringify(id)} is not a row of the index (0 … ${rows - 1})`,
      );
    }
  }
  return value as number[];
}
