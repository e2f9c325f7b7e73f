/**
 * The `/knn-service` body → a checked `KnnQuery`, with clip-back's fields, defaults and
 * precedence (text, then image / image_url, then embedding_input) and clipcrawl's optional
 * filters. Every field is checked here, so a wrong type or an out-of-range value is a 400 naming
 * it; what needs the index (the embedding's length, the index's name) is checked by the caller.
 *
 * clip-back reads these with Python's leniency, which clients rely on: absent and `null` mean the
 * default, `aesthetic_score` / `aesthetic_weight` may be `""` (off) or numeric strings, and
 * booleans may come as 0/1. Fields it does not know (`verbose`) are ignored.
 */
import type { Modality } from "../formats/index/index-manifest.js";
import { RequestError } from "./request-error.js";

export type QueryInput =
  | { kind: "text"; text: string }
  | { kind: "image"; base64: string }
  | { kind: "image_url"; url: string }
  | { kind: "embedding"; values: readonly unknown[] }
  /** clipcrawl's `like_id`: the stored embedding of a row of the index. */
  | { kind: "row"; id: number; modality: Modality };

export interface ScoreFilters {
  maxPunsafe?: number;
  maxPwatermark?: number;
  maxPtoxic?: number;
  minAestheticScore?: number;
  languages?: string[];
}

export interface KnnQuery {
  /** undefined: the server's first index, as clip-back does. */
  indexName: string | undefined;
  input: QueryInput;
  modality: Modality;
  /** Results that carry their metadata (clip-back's num_images). */
  numImages: number;
  /** Results returned in all, ids and similarities (clip-back's num_result_ids). */
  numResultIds: number;
  /** Results skipped first (pagination). */
  offset: number;
  useMclip: boolean;
  deduplicate: boolean;
  useSafetyModel: boolean;
  useViolenceDetector: boolean;
  /** Mix the query toward the mean embedding of images rated `score`, by `weight`. */
  aesthetic: { score: number; weight: number } | undefined;
  filters: ScoreFilters;
}

export interface KnnLimits {
  maxResults: number;
  /** Largest offset + num_result_ids a query may reach. */
  maxDepth: number;
}

export const DEFAULT_NUM_IMAGES = 40;
/** clip-front and ClipClient send 0.5 with a score; a score alone gets the same. */
export const DEFAULT_AESTHETIC_WEIGHT = 0.5;
export const MAX_TEXT_LENGTH = 10_000;
export const MAX_URL_LENGTH = 4096;
const MAX_LANGUAGES = 256;
const MAX_EMBEDDING_VALUES = 65_536;

type Body = Record<string, unknown>;

export function parseKnnQuery(body: unknown, limits: KnnLimits): KnnQuery {
  const fields = asObject(body);
  const numImages = integerField(fields, "num_images", 1, limits.maxResults) ?? DEFAULT_NUM_IMAGES;
  const numResultIds = integerField(fields, "num_result_ids", 1, limits.maxResults) ?? numImages;
  const offset = integerField(fields, "offset", 0, limits.maxDepth) ?? 0;
  if (offset + numResultIds > limits.maxDepth) {
    throw new RequestError("offset", `offset + num_result_ids must be at most ${limits.maxDepth}`);
  }
  return {
    indexName: stringField(fields, "indice_name", 256),
    input: queryInput(fields),
    modality: modalityField(fields),
    numImages,
    numResultIds,
    offset,
    useMclip: booleanField(fields, "use_mclip"),
    deduplicate: booleanField(fields, "deduplicate"),
    useSafetyModel: booleanField(fields, "use_safety_model"),
    useViolenceDetector: booleanField(fields, "use_violence_detector"),
    aesthetic: aestheticFields(fields),
    filters: scoreFilters(fields),
  };
}

/** The fields of a body that must be a JSON object. */
export function asObject(body: unknown): Body {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new RequestError(undefined, "the body must be a JSON object");
  }
  return body as Body;
}

function queryInput(fields: Body): QueryInput {
  const text = stringField(fields, "text", MAX_TEXT_LENGTH);
  const image = stringField(fields, "image", Number.POSITIVE_INFINITY);
  const imageUrl = stringField(fields, "image_url", MAX_URL_LENGTH);
  const embedding = fields.embedding_input;
  if (embedding !== undefined && embedding !== null && !Array.isArray(embedding)) {
    throw new RequestError("embedding_input", "embedding_input must be an array of numbers");
  }
  if (Array.isArray(embedding) && embedding.length > MAX_EMBEDDING_VALUES) {
    throw new RequestError(
      "embedding_input",
      `embedding_input has ${embedding.length} values; the limit is ${MAX_EMBEDDING_VALUES}`,
    );
  }
  if (text !== undefined && text.trim() !== "") return { kind: "text", text };
  if (image !== undefined && image !== "") return { kind: "image", base64: image };
  if (imageUrl !== undefined && imageUrl !== "") return { kind: "image_url", url: imageUrl };
  if (Array.isArray(embedding) && embedding.length > 0) {
    return { kind: "embedding", values: embedding };
  }
  const likeId = integerField(fields, "like_id", 0, Number.MAX_SAFE_INTEGER);
  if (likeId !== undefined) {
    const modality = fields.like_modality ?? "image";
    if (modality !== "image" && modality !== "text") {
      throw new RequestError(
        "like_modality",
        `like_modality must be "image" or "text", got ${describe(modality)}`,
      );
    }
    return { kind: "row", id: likeId, modality };
  }
  throw new RequestError(
    "text",
    "no query: give one of text, image (base64), image_url, embedding_input or like_id",
  );
}

function modalityField(fields: Body): Modality {
  const value = fields.modality;
  if (value === undefined || value === null || value === "") return "image";
  if (value === "image" || value === "text") return value;
  throw new RequestError("modality", `modality must be "image" or "text", got ${describe(value)}`);
}

function aestheticFields(fields: Body): KnnQuery["aesthetic"] {
  const score = numericField(fields, "aesthetic_score");
  const weight = numericField(fields, "aesthetic_weight");
  if (score === undefined) return undefined;
  if (!Number.isInteger(score) || score < 0 || score > 9) {
    throw new RequestError(
      "aesthetic_score",
      `aesthetic_score must be an integer 0–9, got ${score}`,
    );
  }
  const chosen = weight ?? DEFAULT_AESTHETIC_WEIGHT;
  if (Math.abs(chosen) > 100) {
    throw new RequestError(
      "aesthetic_weight",
      `aesthetic_weight must be within ±100, got ${chosen}`,
    );
  }
  return { score, weight: chosen };
}

function scoreFilters(fields: Body): ScoreFilters {
  const filters: ScoreFilters = {};
  const maxPunsafe = numericField(fields, "max_punsafe");
  const maxPwatermark = numericField(fields, "max_pwatermark");
  const maxPtoxic = numericField(fields, "max_ptoxic");
  const minAestheticScore = numericField(fields, "min_aesthetic_score");
  if (maxPunsafe !== undefined) filters.maxPunsafe = maxPunsafe;
  if (maxPwatermark !== undefined) filters.maxPwatermark = maxPwatermark;
  if (maxPtoxic !== undefined) filters.maxPtoxic = maxPtoxic;
  if (minAestheticScore !== undefined) filters.minAestheticScore = minAestheticScore;
  const languages = fields.languages;
  if (languages !== undefined && languages !== null) {
    if (
      !Array.isArray(languages) ||
      languages.length > MAX_LANGUAGES ||
      !languages.every((language) => typeof language === "string" && language.length <= 35)
    ) {
      throw new RequestError(
        "languages",
        `languages must be an array of at most ${MAX_LANGUAGES} language codes ("" for none)`,
      );
    }
    filters.languages = languages as string[];
  }
  return filters;
}

/** A string field; absent or null is undefined. */
export function stringField(fields: Body, name: string, maxLength: number): string | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") {
    throw new RequestError(name, `${name} must be a string, got ${describe(value)}`);
  }
  if (value.length > maxLength) {
    throw new RequestError(
      name,
      `${name} is ${value.length} characters; the limit is ${maxLength}`,
    );
  }
  return value;
}

/** Python truthiness for the values clients send: booleans, 0/1, "true"/"false". */
export function booleanField(fields: Body, name: string): boolean {
  const value = fields[name];
  if (value === undefined || value === null) return false;
  if (typeof value === "boolean") return value;
  if (value === 0 || value === 1) return value === 1;
  if (value === "true" || value === "false") return value === "true";
  throw new RequestError(name, `${name} must be true or false, got ${describe(value)}`);
}

/** An integer field within [min, max]; absent or null is undefined. */
export function integerField(
  fields: Body,
  name: string,
  min: number,
  max: number,
): number | undefined {
  const value = fields[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new RequestError(name, `${name} must be an integer, got ${describe(value)}`);
  }
  if (value < min || value > max) {
    throw new RequestError(name, `${name} must be between ${min} and ${max}, got ${value}`);
  }
  return value;
}

/** A finite number, or a string holding one; absent, null and "" are undefined. */
export function numericField(fields: Body, name: string): number | undefined {
  const value = fields[name];
  if (value === undefined || value === null || value === "") return undefined;
  const number =
    typeof value === "number"
      ? value
      : typeof value === "string" && value.length <= 32 && value.trim() !== ""
        ? Number(value)
        : Number.NaN;
  if (!Number.isFinite(number)) {
    throw new RequestError(name, `${name} must be a number, got ${describe(value)}`);
  }
  return number;
}

/** A short rendering of a bad value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  }
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null) return "null";
  if (typeof value === "object") return "an object";
  return String(value);
}
