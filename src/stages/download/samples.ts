/**
 * The sample types every part of the download stage shares: an input row (one image to fetch),
 * the statuses a sample can end in, the output row, and the deterministic sample key.
 */

import { SHARD_DIGITS } from "../../io/layout.js";
import type { CellValue, ColumnType } from "../../io/parquet.js";

/** One row of the input: the image URL, its caption, and the columns carried to the output. */
export interface InputSample {
  url: string;
  caption: string | null;
  extra: Record<string, CellValue>;
}

/** A column of the input copied to the output as it is. */
export interface ExtraColumn {
  name: string;
  type: ColumnType;
}

export const SAMPLE_STATUSES = [
  "success",
  "failed_to_download",
  "failed_to_resize",
  "opted_out",
] as const;
export type SampleStatus = (typeof SAMPLE_STATUSES)[number];

/** One row of `images/NNNNN.parquet`: every input sample gets one, whatever became of it. */
export interface SampleRecord {
  key: string;
  url: string;
  caption: string | null;
  status: SampleStatus;
  /** A stable, code-like reason (`HTTP 404`, `ECONNREFUSED`, `response headers too large (UND_ERR_HEADERS_OVERFLOW)`, `image too small`). */
  errorMessage: string | null;
  width: number | null;
  height: number | null;
  originalWidth: number | null;
  originalHeight: number | null;
  /** The original image's EXIF as JSON text (`{"Image Make": "Canon", …}`), as img2dataset. */
  exif: string | null;
  /** Hashes of the bytes as downloaded, so takedown hash lists can be matched. */
  sha256: string | null;
  md5: string | null;
  sha1: string | null;
  /** File extension of the stored image (`jpg`, `png`, `webp`; the original's without re-encoding). */
  extension: string | null;
  extra: Record<string, CellValue>;
}

/**
 * As img2dataset: the shard id (5 digits) followed by the index inside the shard, padded to the
 * digits of samplesPerShard − 1. Shard 1, sample 5 of 10,000 → `000010005`.
 */
export function sampleKey(
  shardIndex: number,
  indexInShard: number,
  samplesPerShard: number,
): string {
  const indexDigits = String(Math.max(0, samplesPerShard - 1)).length;
  return (
    String(shardIndex).padStart(SHARD_DIGITS, "0") + String(indexInShard).padStart(indexDigits, "0")
  );
}

/** A sample that ended before anything was stored. */
export function unfinishedRecord(
  key: string,
  sample: InputSample,
  status: Exclude<SampleStatus, "success">,
  errorMessage: string,
): SampleRecord {
  return {
    key,
    url: sample.url,
    caption: sample.caption,
    status,
    errorMessage,
    width: null,
    height: null,
    originalWidth: null,
    originalHeight: null,
    exif: null,
    sha256: null,
    md5: null,
    sha1: null,
    extension: null,
    extra: sample.extra,
  };
}
