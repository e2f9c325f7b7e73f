/**
 * clipcrawl's own routes for the web UI (docs/http-api.md): the indices and their columns,
 * thumbnails from the dataset's own shards, the statistics page, and exports of a query's
 * results (at once, or as a background job with progress).
 */
import { createReadStream } from "node:fs";
import { join } from "node:path";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { requireToken } from "./bearer-token.js";
import { runKnnQuery } from "./knn-query.js";
import { RequestError } from "./request-error.js";
import type { ServedIndex } from "./served-index.js";
import type { ServerContext } from "./server-context.js";
import {
  type ExportFormat,
  type ExportRequest,
  exportContentType,
  exportFileName,
  exportFolder,
  parseExportRequest,
  removeExportFolder,
  selectedRows,
  writeExport,
} from "./subset-export.js";

interface IndexParams {
  index: string;
}

interface ThumbnailParams extends IndexParams {
  key: string;
}

interface JobParams {
  id: string;
}

const THUMBNAIL_CACHE = "public, max-age=604800";

export function registerApiRoutes(app: FastifyInstance, context: ServerContext): void {
  app.get("/api/indices", async () =>
    [...context.indices.values()].map((served) => served.describe()),
  );

  app.get<{ Params: ThumbnailParams }>("/api/thumbnail/:index/:key", async (request, reply) => {
    const served = context.index(request.params.index, "index", 404);
    const key = request.params.key;
    const id = key.length <= 256 ? served.rowOfKey(key) : undefined;
    if (id === undefined) {
      throw new RequestError(
        "key",
        `index ${served.name} has no sample with key ${JSON.stringify(key)}`,
        404,
      );
    }
    const thumbnail = await served.thumbnails.find(key);
    if (thumbnail !== undefined && "refused" in thumbnail) {
      // Not the URL either: what the site serves is likely the same bytes.
      throw new RequestError(
        "key",
        `the stored image for key ${JSON.stringify(key)} is not served: ${thumbnail.refused}`,
        404,
      );
    }
    if (thumbnail !== undefined) {
      return reply
        .type(thumbnail.contentType)
        .header("cache-control", THUMBNAIL_CACHE)
        .send(thumbnail.bytes);
    }
    const url = served.index.metadata([id], ["URL"])[0]?.URL;
    if (typeof url === "string" && /^https?:\/\//i.test(url)) return reply.redirect(url, 302);
    throw new RequestError(
      "key",
      `no image for key ${JSON.stringify(key)} in the dataset's shards`,
      404,
    );
  });

  app.get<{ Params: IndexParams }>("/api/stats/:index", async (request) =>
    context.index(request.params.index, "index", 404).stats(),
  );

  app.post("/api/export", async (request, reply) => {
    const exported = parseExportRequest(request.body, context.limits, context.config.maxExport);
    const served = context.index(exported.indexName);
    const folder = await exportFolder();
    try {
      const path = await writeSubset(served, exported, context, folder);
      return sendExport(reply, path, exported.format, folder);
    } catch (error) {
      await removeExportFolder(folder);
      throw error;
    }
  });

  app.post("/api/export/jobs", { preHandler: requireToken(context.token) }, async (request) => {
    const exported = parseExportRequest(request.body, context.limits, context.config.maxExport);
    const served = context.index(exported.indexName);
    // The job outlives the request: it holds the index open itself.
    const release = served.lease();
    const id = context.exports.start(async (progress) => {
      try {
        const folder = await exportFolder();
        try {
          const path = await writeSubset(served, exported, context, folder, progress);
          return { folder, path, format: exported.format };
        } catch (error) {
          await removeExportFolder(folder);
          throw error;
        }
      } finally {
        release();
      }
    });
    return { id };
  });

  app.get<{ Params: JobParams }>("/api/export/jobs/:id", async (request) => {
    const status = context.exports.status(request.params.id);
    if (status === undefined) throw unknownJob(request);
    return status;
  });

  app.get<{ Params: JobParams }>("/api/export/jobs/:id/file", async (request, reply) => {
    const status = context.exports.status(request.params.id);
    if (status === undefined) throw unknownJob(request);
    const file = context.exports.file(request.params.id);
    if (file === undefined) {
      throw new RequestError(
        "id",
        `export job ${request.params.id} is ${status.state}, not done`,
        409,
      );
    }
    return sendExport(reply, file.path, file.format, undefined);
  });
}

async function writeSubset(
  served: ServedIndex,
  exported: ExportRequest,
  context: ServerContext,
  folder: string,
  progress?: { setTotal(total: number): void; setDone(done: number): void },
): Promise<string> {
  const { selection } = exported;
  const results =
    selection.kind === "rows"
      ? selectedRows(served, selection)
      : await runKnnQuery(served, selection.query, context.embedding, selection.rows);
  progress?.setTotal(results.length);
  const path = join(folder, exportFileName(exported.format));
  await writeExport(served, results, exported.format, path, (done) => progress?.setDone(done));
  return path;
}

/** Streams the file; a one-off export's folder is removed once it is sent. */
function sendExport(
  reply: FastifyReply,
  path: string,
  format: ExportFormat,
  removeAfter: string | undefined,
): FastifyReply {
  const stream = createReadStream(path);
  if (removeAfter !== undefined) {
    stream.once("close", () => void removeExportFolder(removeAfter));
  }
  return reply
    .type(exportContentType(format))
    .header("content-disposition", `attachment; filename=${exportFileName(format)}`)
    .send(stream);
}

function unknownJob(request: FastifyRequest<{ Params: JobParams }>): RequestError {
  return new RequestError("id", `no export job ${JSON.stringify(request.params.id)}`, 404);
}
