/**
 * `images/NNNNN_stats.json`: img2dataset's per-shard stats (count, successes, failures by kind,
 * duration, start and end time, status_dict: error message → count, the config), plus
 * `opted_out`.
 */
import type { DownloadConfig } from "./config.js";
import type { SampleRecord, SampleStatus } from "./samples.js";

/** As img2dataset's CappedCounter: past this many distinct messages, new ones are not listed. */
const STATUS_DICT_CAP = 1000;

export interface StatusCounts {
  count: number;
  successes: number;
  failed_to_download: number;
  failed_to_resize: number;
  opted_out: number;
}

export interface ImageShardStats extends StatusCounts {
  shard: string;
  duration: number;
  start_time: number;
  end_time: number;
  bytes_downloaded: number;
  status_dict: Record<string, number>;
  config: DownloadConfig;
}

export function countStatuses(records: readonly SampleRecord[]): StatusCounts {
  const counts: StatusCounts = {
    count: records.length,
    successes: 0,
    failed_to_download: 0,
    failed_to_resize: 0,
    opted_out: 0,
  };
  const field: Record<SampleStatus, keyof StatusCounts> = {
    success: "successes",
    failed_to_download: "failed_to_download",
    failed_to_resize: "failed_to_resize",
    opted_out: "opted_out",
  };
  for (const record of records) counts[field[record.status]]++;
  return counts;
}

/** "success" and every error message, with how many samples had it. */
export function statusHistogram(records: readonly SampleRecord[]): Record<string, number> {
  const histogram: Record<string, number> = {};
  let distinct = 0;
  for (const record of records) {
    const label = record.status === "success" ? "success" : (record.errorMessage ?? record.status);
    if (histogram[label] === undefined) {
      if (distinct >= STATUS_DICT_CAP) continue;
      distinct++;
      histogram[label] = 0;
    }
    histogram[label]++;
  }
  return histogram;
}

export function addStatusCounts(total: StatusCounts, add: StatusCounts): void {
  for (const key of Object.keys(total) as (keyof StatusCounts)[]) total[key] += add[key];
}

export function emptyStatusCounts(): StatusCounts {
  return { count: 0, successes: 0, failed_to_download: 0, failed_to_resize: 0, opted_out: 0 };
}
