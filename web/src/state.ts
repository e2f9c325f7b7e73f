/**
 * The whole UI state, and its one-to-one mapping onto the page URL's parameters, so a search can
 * be shared, reloaded and walked with back/forward. Only values that differ from the defaults are
 * written, to keep shared URLs short. `index`, `query`, `imageUrl` and `back` are clip-front's
 * own parameter names, so its links open here.
 */
import type { KnnQuery, Modality } from "./api.js";

export type View = "explore" | "stats" | "atlas";
export type SafeMode = "hide" | "blur" | "off";

/** What is searched for. An uploaded image lives in session storage under `ref`. */
export type Query =
  | { kind: "text"; text: string }
  | { kind: "imageUrl"; url: string }
  | { kind: "upload"; ref: string }
  | { kind: "like"; id: number }
  /** Rows chosen on the Atlas map, by index row id. */
  | { kind: "rows"; ids: number[] };

export interface UiState {
  view: View;
  /** API base URL; "" for the server that serves the page. */
  back: string;
  /** Index name; "" for the first one the server lists. */
  index: string;
  query: Query | null;
  modality: Modality;
  safe: SafeMode;
  hideWatermarked: boolean;
  minAesthetic: number | null;
  languages: string[];
  hideDuplicates: boolean;
  multilingual: boolean;
  count: number;
  page: number;
}

/** punsafe above this is unsafe: clip-back's safety-model cut. */
export const UNSAFE_THRESHOLD = 0.5;
/** pwatermark above this is watermarked: the cut LAION-5B's subsets use. */
export const WATERMARK_THRESHOLD = 0.8;
export const RESULT_COUNTS = [20, 40, 100, 200] as const;

export const DEFAULT_STATE: UiState = {
  view: "explore",
  back: "",
  index: "",
  query: null,
  modality: "image",
  safe: "hide",
  hideWatermarked: false,
  minAesthetic: null,
  languages: [],
  hideDuplicates: true,
  multilingual: false,
  count: 40,
  page: 1,
};

export function stateFromUrl(search: string): UiState {
  const params = new URLSearchParams(search);
  const state: UiState = { ...DEFAULT_STATE, languages: [] };
  const view = params.get("view");
  if (view === "stats" || view === "atlas") state.view = view;
  state.back = params.get("back") ?? "";
  state.index = params.get("index") ?? "";
  state.query = queryFromParams(params);
  if (params.get("modality") === "text") state.modality = "text";
  const safe = params.get("safe");
  if (safe === "blur" || safe === "off") state.safe = safe;
  state.hideWatermarked = params.get("watermarked") === "hide";
  const aesthetic = Number.parseFloat(params.get("minAesthetic") ?? "");
  state.minAesthetic = Number.isFinite(aesthetic) ? aesthetic : null;
  state.languages = parseLanguages(params.get("languages") ?? "");
  state.hideDuplicates = params.get("duplicates") !== "show";
  state.multilingual = params.get("useMclip") === "true";
  const count = Number.parseInt(params.get("count") ?? "", 10);
  if (Number.isInteger(count) && count > 0) state.count = Math.min(count, 1000);
  const page = Number.parseInt(params.get("page") ?? "", 10);
  if (Number.isInteger(page) && page > 1) state.page = page;
  return state;
}

export function stateToUrl(state: UiState): string {
  const params = new URLSearchParams();
  if (state.view !== "explore") params.set("view", state.view);
  if (state.back !== "") params.set("back", state.back);
  if (state.index !== "") params.set("index", state.index);
  const query = state.query;
  if (query?.kind === "text") params.set("query", query.text);
  else if (query?.kind === "imageUrl") params.set("imageUrl", query.url);
  else if (query?.kind === "upload") params.set("upload", query.ref);
  else if (query?.kind === "like") params.set("like", String(query.id));
  else if (query?.kind === "rows") params.set("rows", query.ids.join(","));
  if (state.modality !== DEFAULT_STATE.modality) params.set("modality", state.modality);
  if (state.safe !== DEFAULT_STATE.safe) params.set("safe", state.safe);
  if (state.hideWatermarked) params.set("watermarked", "hide");
  if (state.minAesthetic !== null) params.set("minAesthetic", String(state.minAesthetic));
  if (state.languages.length > 0) params.set("languages", state.languages.join(","));
  if (!state.hideDuplicates) params.set("duplicates", "show");
  if (state.multilingual) params.set("useMclip", "true");
  if (state.count !== DEFAULT_STATE.count) params.set("count", String(state.count));
  if (state.page !== 1) params.set("page", String(state.page));
  const search = params.toString();
  return search === "" ? "?" : `?${search}`;
}

function queryFromParams(params: URLSearchParams): Query | null {
  const text = params.get("query");
  if (text !== null && text.trim() !== "") return { kind: "text", text };
  const imageUrl = params.get("imageUrl");
  if (imageUrl !== null && imageUrl.trim() !== "") return { kind: "imageUrl", url: imageUrl };
  const upload = params.get("upload");
  if (upload !== null && upload !== "") return { kind: "upload", ref: upload };
  const like = Number.parseInt(params.get("like") ?? "", 10);
  if (Number.isInteger(like) && like >= 0) return { kind: "like", id: like };
  const rows = (params.get("rows") ?? "")
    .split(",")
    .filter((part) => /^\d+$/.test(part))
    .map(Number);
  if (rows.length > 0) return { kind: "rows", ids: [...new Set(rows)] };
  return null;
}

/** "en, de ,," → ["en", "de"]; "none" stands for rows with no detected language (""). */
export function parseLanguages(text: string): string[] {
  const languages = text
    .split(",")
    .map((part) => part.trim().toLowerCase())
    .filter((part) => part !== "")
    .map((part) => (part === "none" ? "" : part));
  return [...new Set(languages)];
}

export function formatLanguages(languages: readonly string[]): string {
  return languages.map((language) => (language === "" ? "none" : language)).join(", ");
}

/** The parts of the state that change what the server answers, as one comparable string. */
export function searchKey(state: UiState, index: string): string {
  return JSON.stringify([
    state.back,
    index,
    state.query,
    state.modality,
    state.safe === "hide",
    state.hideWatermarked,
    state.minAesthetic,
    state.languages,
    state.hideDuplicates,
    state.multilingual,
    state.count,
    state.page,
  ]);
}

/**
 * The `/knn-service` body for the state, less the query itself (text, image or image_url), which
 * may need fetching first. Safe mode "hide" and the watermark and aesthetic filters are applied
 * inside the index search, so a page is full even when many rows are filtered out.
 */
export function knnFilters(state: UiState, index: string): KnnQuery {
  const body: KnnQuery = {
    modality: state.modality,
    indice_name: index,
    num_images: state.count,
    deduplicate: state.hideDuplicates,
    use_mclip: state.multilingual,
  };
  if (state.safe === "hide") body.max_punsafe = UNSAFE_THRESHOLD;
  if (state.hideWatermarked) body.max_pwatermark = WATERMARK_THRESHOLD;
  if (state.minAesthetic !== null) body.min_aesthetic_score = state.minAesthetic;
  if (state.languages.length > 0) body.languages = state.languages;
  if (state.page > 1) body.offset = (state.page - 1) * state.count;
  return body;
}

/** The query as one line, for headings and the document title. */
export function describeQuery(query: Query | null): string {
  if (query === null) return "";
  switch (query.kind) {
    case "text":
      return `“${query.text}”`;
    case "imageUrl":
      return `image at ${query.url}`;
    case "upload":
      return "uploaded image";
    case "like":
      return `images like result #${query.id}`;
    case "rows":
      return `${query.ids.length} images chosen on the atlas`;
  }
}
