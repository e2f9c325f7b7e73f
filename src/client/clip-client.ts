/**
 * A client for clip-back's `/knn-service`, clipcrawl's or LAION's, mirroring clip-retrieval's
 * Python `ClipClient`: the same options with the same defaults, the same `query` rules (an
 * `image` starting with `http` is sent as `image_url`, any other as the base64 of that file), and
 * the same request body, field for field, so both clients get the same answers from a server.
 *
 *   const client = new ClipClient("http://127.0.0.1:1234/knn-service", { indiceName: "demo" });
 *   const results = await client.query({ text: "a red circle" });
 */
import { readFile } from "node:fs/promises";

export type ClipModality = "image" | "text";

export interface ClipClientOptions {
  /** Which index to search, as `/indices-list` names it. */
  indiceName: string;
  /** Embed text queries with the multilingual text model (default false). */
  useMclip?: boolean;
  /** Mix the query toward images rated this (0–9; default 9); null: off. */
  aestheticScore?: number | null;
  /** How strongly (default 0.5); null: off. */
  aestheticWeight?: number | null;
  /** Search the image embeddings or the caption embeddings (default "image"). */
  modality?: ClipModality;
  /** Results to return (default 40). */
  numImages?: number;
  /** Drop near-duplicate images and repeated URLs (default true). */
  deduplicate?: boolean;
  /** Drop what the NSFW score puts above 0.5 (default true). */
  useSafetyModel?: boolean;
  /** Drop what the violence detector flags (default true). */
  useViolenceDetector?: boolean;
  /** Milliseconds before a query is abandoned (default: ClipClient's hour). */
  timeoutMs?: number;
}

export interface ClipQuery {
  text?: string;
  /** A URL starting with http (the server fetches it), or the path of an image file. */
  image?: string;
  embeddingInput?: readonly number[];
}

/** A result: `id` and `similarity`, and the index's metadata columns (url, caption, …). */
export interface ClipResult {
  id: number;
  similarity: number;
  url?: string | null;
  caption?: string | null;
  [column: string]: unknown;
}

/** The server refused a query (4xx) or failed (5xx); `field` names the field it blamed. */
export class ClipClientError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | undefined,
  ) {
    super(message);
    this.name = "ClipClientError";
  }
}

/** The body ClipClient POSTs: every field, absent queries as null. */
export interface KnnServiceRequest {
  text: string | null;
  image: string | null;
  image_url: string | null;
  embedding_input: readonly number[] | null;
  deduplicate: boolean;
  use_safety_model: boolean;
  use_violence_detector: boolean;
  indice_name: string;
  use_mclip: boolean;
  aesthetic_score: number | null;
  aesthetic_weight: number | null;
  modality: ClipModality;
  num_images: number;
  num_result_ids: number;
}

export class ClipClient {
  readonly url: string;
  readonly indiceName: string;
  readonly useMclip: boolean;
  readonly aestheticScore: number | null;
  readonly aestheticWeight: number | null;
  readonly modality: ClipModality;
  readonly numImages: number;
  readonly deduplicate: boolean;
  readonly useSafetyModel: boolean;
  readonly useViolenceDetector: boolean;
  readonly timeoutMs: number;

  /** `url` is the full `/knn-service` URL, as for the Python client. */
  constructor(url: string, options: ClipClientOptions) {
    this.url = url;
    this.indiceName = options.indiceName;
    this.useMclip = options.useMclip ?? false;
    this.aestheticScore = options.aestheticScore === undefined ? 9 : options.aestheticScore;
    this.aestheticWeight = options.aestheticWeight === undefined ? 0.5 : options.aestheticWeight;
    this.modality = options.modality ?? "image";
    this.numImages = options.numImages ?? 40;
    this.deduplicate = options.deduplicate ?? true;
    this.useSafetyModel = options.useSafetyModel ?? true;
    this.useViolenceDetector = options.useViolenceDetector ?? true;
    this.timeoutMs = options.timeoutMs ?? 3_600_000;
  }

  async query(query: ClipQuery): Promise<ClipResult[]> {
    if (query.text && query.image) throw new Error("Only one of text or image can be provided.");
    if (query.text) return this.search({ text: query.text });
    if (query.image) {
      if (query.image.startsWith("http")) return this.search({ imageUrl: query.image });
      const bytes = await readFile(query.image);
      return this.search({ image: bytes.toString("base64") });
    }
    if (query.embeddingInput && query.embeddingInput.length > 0) {
      return this.search({ embeddingInput: query.embeddingInput });
    }
    throw new Error("Either text or image must be provided.");
  }

  /** The body a query sends (what the Python client sends, in its order). */
  requestBody(input: {
    text?: string;
    image?: string;
    imageUrl?: string;
    embeddingInput?: readonly number[];
  }): KnnServiceRequest {
    return {
      text: input.text ?? null,
      image: input.image ?? null,
      image_url: input.imageUrl ?? null,
      embedding_input: input.embeddingInput ?? null,
      deduplicate: this.deduplicate,
      use_safety_model: this.useSafetyModel,
      use_violence_detector: this.useViolenceDetector,
      indice_name: this.indiceName,
      use_mclip: this.useMclip,
      aesthetic_score: this.aestheticScore,
      aesthetic_weight: this.aestheticWeight,
      modality: this.modality,
      num_images: this.numImages,
      num_result_ids: this.numImages,
    };
  }

  private async search(input: Parameters<ClipClient["requestBody"]>[0]): Promise<ClipResult[]> {
    const response = await fetch(this.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(this.requestBody(input)),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const answer = (await response.json().catch(() => undefined)) as unknown;
    if (!response.ok) {
      const error = answer as { error?: unknown; field?: unknown } | undefined;
      throw new ClipClientError(
        response.status,
        typeof error?.error === "string" ? error.error : `HTTP ${response.status} from ${this.url}`,
        typeof error?.field === "string" ? error.field : undefined,
      );
    }
    if (!Array.isArray(answer)) {
      throw new ClipClientError(
        response.status,
        `${this.url} did not answer a JSON array`,
        undefined,
      );
    }
    return answer as ClipResult[];
  }
}
