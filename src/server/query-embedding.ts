/**
 * A query's embedding, as clip-back computes it: a text through the CLIP text tower (or the
 * multilingual one with `use_mclip`), an image (base64, or downloaded from image_url) through
 * the vision tower after the model's own preprocessing, an embedding as given (normalised, since
 * the index compares cosines); then the aesthetic mix. Everything a client can get wrong is a
 * RequestError naming its field: invalid base64, an image over the size or pixel limit or that
 * does not decode, an image_url that is not http(s) or cannot be fetched, an embedding of the
 * wrong length.
 */
import type { ImageFetcher } from "../io/fetch/image-fetcher.js";
import { checkImageHeader } from "../io/image-header.js";
import type { ClipEmbedder } from "../models/embedder.js";
import { mixAesthetic } from "./aesthetic-embeddings.js";
import type { KnnQuery } from "./knn-request.js";
import type { ServerMetrics } from "./metrics.js";
import { RequestError } from "./request-error.js";
import { rowVector } from "./row-vectors.js";
import type { ServedIndex } from "./served-index.js";

export interface ImageLimits {
  maxImageBytes: number;
  maxImagePixels: number;
}

export interface QueryEmbeddingContext {
  fetcher: ImageFetcher;
  metrics: ServerMetrics;
  limits: ImageLimits;
}

export async function queryEmbedding(
  served: ServedIndex,
  query: KnnQuery,
  context: QueryEmbeddingContext,
): Promise<Float32Array> {
  const vector = await inputEmbedding(served, query, context);
  if (query.aesthetic === undefined) return vector;
  const embeddings = await served.aestheticEmbeddings();
  return mixAesthetic(vector, embeddings, query.aesthetic.score, query.aesthetic.weight);
}

async function inputEmbedding(
  served: ServedIndex,
  query: KnnQuery,
  context: QueryEmbeddingContext,
): Promise<Float32Array> {
  const { input } = query;
  const { metrics } = context;
  if (input.kind === "embedding") return embeddingInput(input.values, served.index.dimensions);
  if (input.kind === "row") {
    if (served.index.isRemoved(input.id)) {
      throw new RequestError("like_id", `like_id ${input.id} is a removed sample`, 404);
    }
    const vector = await rowVector(served.storage, served.index.manifest, input.id, input.modality);
    if (vector === undefined) {
      throw new RequestError(
        "like_id",
        `like_id ${input.id} is not a row of index ${served.name} (0 … ${served.index.size - 1})`,
      );
    }
    return vector;
  }
  const models = served.models;
  const field = input.kind === "text" ? "text" : input.kind;
  if (models === undefined) {
    throw new RequestError(
      field,
      `index ${served.name} is served without a CLIP model: only embedding_input queries`,
    );
  }
  switch (input.kind) {
    case "text": {
      if (query.useMclip && models.multilingual === undefined) {
        throw new RequestError(
          "use_mclip",
          `index ${served.name} has no multilingual text model; serve it with one or set use_mclip to false`,
        );
      }
      const embedder = query.useMclip ? models.multilingual?.embedder : models.embedder;
      const { embeddings } = await metrics.time("embed", served.name, () =>
        (embedder ?? models.embedder).embedTexts([input.text]),
      );
      return embeddings.data.slice(0, embeddings.dimensions);
    }
    case "image":
      return imageEmbedding(
        models.embedder,
        served.name,
        decodeBase64(input.base64, context.limits),
        "image",
        context,
      );
    case "image_url": {
      const bytes = await metrics.time("download", served.name, () =>
        downloadImage(input.url, context),
      );
      return imageEmbedding(models.embedder, served.name, bytes, "image_url", context);
    }
  }
}

async function imageEmbedding(
  embedder: ClipEmbedder,
  indexName: string,
  bytes: Buffer,
  field: "image" | "image_url",
  context: QueryEmbeddingContext,
): Promise<Float32Array> {
  await checkImage(bytes, field, context.limits);
  const result = await context.metrics.time("embed", indexName, () =>
    embedder.embedImages([bytes]),
  );
  const failure = result.failures[0];
  if (failure !== undefined || result.embeddings.rows === 0) {
    throw new RequestError(field, `${field} is not an image that decodes: ${failure?.message}`);
  }
  return result.embeddings.data.slice(0, result.embeddings.dimensions);
}

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** Standard or URL-safe base64, padded or not, line breaks allowed, a data: URL prefix too. */
export function decodeBase64(text: string, limits: ImageLimits): Buffer {
  const payload = text.replace(/^data:[\w/+.-]*(;[\w=.-]+)*;base64,/, "").replace(/\s+/g, "");
  if (!BASE64.test(payload) || payload.length % 4 === 1) {
    throw new RequestError("image", "image is not valid base64");
  }
  if (Math.floor((payload.length * 3) / 4) > limits.maxImageBytes + 3) {
    throw new RequestError("image", `image is larger than ${limits.maxImageBytes} bytes`);
  }
  const bytes = Buffer.from(payload, "base64");
  if (bytes.length === 0) throw new RequestError("image", "image is empty");
  if (bytes.length > limits.maxImageBytes) {
    throw new RequestError("image", `image is larger than ${limits.maxImageBytes} bytes`);
  }
  return bytes;
}

async function downloadImage(url: string, context: QueryEmbeddingContext): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RequestError("image_url", "image_url is not a valid URL");
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new RequestError("image_url", `image_url must be http(s), got ${parsed.protocol}`);
  }
  const outcome = await context.fetcher.fetch(parsed.href);
  if (outcome.status === "ok") return outcome.bytes;
  const reason = outcome.status === "failed" ? outcome.error : outcome.reason;
  throw new RequestError("image_url", `image_url could not be fetched: ${reason}`);
}

/**
 * Refuses what would cost too much to decode, from the header alone (the rule every decoder
 * shares: raster formats only, so SVG and PDF are never rendered on request; the pixel limit).
 */
async function checkImage(bytes: Buffer, field: string, limits: ImageLimits): Promise<void> {
  const checked = await checkImageHeader(bytes, limits.maxImagePixels);
  if (checked.ok) return;
  switch (checked.refusal) {
    case "undecodable":
      throw new RequestError(field, `${field} is not an image that decodes: ${checked.error}`);
    case "unsupported_format":
      throw new RequestError(
        field,
        `${field} is refused: ${checked.error}; send a JPEG, PNG, WebP, GIF, AVIF or TIFF image`,
      );
    case "decompression_bomb":
      throw new RequestError(field, `${field} is refused: ${checked.error}`);
  }
}

/** embedding_input as a unit vector of the index's size. */
function embeddingInput(values: readonly unknown[], dimensions: number): Float32Array {
  if (values.length !== dimensions) {
    throw new RequestError(
      "embedding_input",
      `embedding_input has ${values.length} values, the index ${dimensions}`,
    );
  }
  const vector = new Float32Array(dimensions);
  let norm = 0;
  for (let index = 0; index < dimensions; index++) {
    const value = values[index];
    if (typeof value !== "number" || !Number.isFinite(value) || Math.abs(value) > 1e30) {
      throw new RequestError(
        "embedding_input",
        `embedding_input value ${index} is not a finite number`,
      );
    }
    vector[index] = value;
    // The stored float32, so values that underflow it count as the zeros they became.
    norm += (vector[index] as number) ** 2;
  }
  if (!(norm > 0) || !Number.isFinite(norm)) {
    throw new RequestError("embedding_input", "embedding_input has no direction (all zeros)");
  }
  const scale = 1 / Math.sqrt(norm);
  for (let index = 0; index < dimensions; index++)
    vector[index] = (vector[index] as number) * scale;
  return vector;
}
