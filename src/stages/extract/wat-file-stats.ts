/**
 * What extracting one WAT file reports: counts, drops by reason, bad records. Kept apart from
 * wat-file.ts so the main thread can total results without loading the parser and the language
 * detector (whose tables take a second to load) — those belong to the worker threads.
 */

import type { LanguageTier } from "../../formats/language-tier.js";
import type { LinkDropReason } from "./candidate-pairs.js";

export type DropReason = LinkDropReason | "duplicate";
export type RecordProblem =
  | "invalid_json"
  | "bad_warc_record"
  | "oversized_record"
  | "corrupt_gzip";

export interface WatFileStats {
  compressedBytes: number;
  records: number;
  htmlPages: number;
  pagesWithImageLinks: number;
  imageLinks: number;
  kept: number;
  dropped: Record<DropReason, number>;
  badRecords: Record<RecordProblem, number>;
  languageTiers: Record<LanguageTier, number>;
  seconds: number;
}

export interface WatFileResult {
  input: string;
  stats: WatFileStats;
  /** One line each: bad records (capped), or why the input failed. */
  problems: string[];
  /** Set when the input could not be read to its end: pairs before the failure are kept. */
  failure?: string;
  /** Whether the shard's Parquet file was written (not when the input could not be read at all). */
  written: boolean;
}

export function emptyWatFileStats(): WatFileStats {
  return {
    compressedBytes: 0,
    records: 0,
    htmlPages: 0,
    pagesWithImageLinks: 0,
    imageLinks: 0,
    kept: 0,
    dropped: {
      no_alt: 0,
      short_text: 0,
      invalid_url: 0,
      unsupported_scheme: 0,
      url_has_credentials: 0,
      duplicate: 0,
    },
    badRecords: { invalid_json: 0, bad_warc_record: 0, oversized_record: 0, corrupt_gzip: 0 },
    languageTiers: { en: 0, multi: 0, nolang: 0 },
    seconds: 0,
  };
}
