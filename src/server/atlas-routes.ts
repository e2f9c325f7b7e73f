/**
 * The Atlas page's routes (docs/http-api.md): `/api/atlas/:index`, what the map holds (clusters
 * and their labels, the language codes, how it was made), and `/api/atlas/:index/points`, every
 * point as one binary answer (atlas-map.ts), less the flagged ones under `max_punsafe`.
 */
import type { FastifyInstance } from "fastify";
import { errorMessage } from "../errors.js";
import type { AtlasMap } from "./atlas-map.js";
import { RequestError } from "./request-error.js";
import type { ServedIndex } from "./served-index.js";
import type { ServerContext } from "./server-context.js";

interface IndexParams {
  index: string;
}

interface PointsQuery {
  max_punsafe?: string;
}

export function registerAtlasRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get<{ Params: IndexParams }>("/api/atlas/:index", async (request) => {
    const served = context.index(request.params.index, "index", 404);
    return (await atlasOf(served)).describe(served.name);
  });

  app.get<{ Params: IndexParams; Querystring: PointsQuery }>(
    "/api/atlas/:index/points",
    async (request, reply) => {
      const served = context.index(request.params.index, "index", 404);
      const maxPunsafe = maxPunsafeParameter(request.query.max_punsafe);
      const atlas = await atlasOf(served);
      return reply
        .type("application/octet-stream")
        .header("cache-control", "no-cache")
        .send(atlas.encode(maxPunsafe));
    },
  );
}

async function atlasOf(served: ServedIndex): Promise<AtlasMap> {
  let atlas: AtlasMap | undefined;
  try {
    atlas = await served.atlasMap();
  } catch (error) {
    // A damaged or unreadable _atlas/ is the root's state, not the server's fault: say which.
    throw new RequestError(
      "index",
      `the atlas of index ${served.name} cannot be read: ${errorMessage(error)}; run clipcrawl index on its root to rebuild it`,
      503,
    );
  }
  if (atlas === undefined) {
    throw new RequestError(
      "index",
      `index ${served.name} has no atlas; run clipcrawl index (with index.atlasPoints above 0) on its root`,
      404,
    );
  }
  return atlas;
}

function maxPunsafeParameter(text: string | undefined): number | undefined {
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || value > 1) {
    throw new RequestError(
      "max_punsafe",
      `max_punsafe must be a number in [0, 1], got ${JSON.stringify(text)}`,
    );
  }
  return value;
}
