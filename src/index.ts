/** The clipcrawl library: every CLI command is one of these typed functions. */
export {
  type ConfigOverrides,
  defaultConfig,
  loadConfig,
  parseConfig,
} from "./config/config-file.js";
export { type InitResult, initRoot } from "./config/init-root.js";
export type {
  ClipcrawlConfig,
  DownloadConfig,
  EmbedConfig,
  ExtractConfig,
  FilterConfig,
} from "./config/schema.js";
export { ClipcrawlError, ConfigError, InputError } from "./errors.js";
export { LocalStorage } from "./io/local-storage.js";
export { decodeNpy, encodeNpy, type NpyArray, NpyFormatError } from "./io/npy.js";
export type { DatasetStorage } from "./io/storage.js";
export type { StageProgress, StageReporter } from "./runner/reporter.js";
export {
  type DownloadOptions,
  type DownloadSummary,
  download,
  type FailedShard,
} from "./stages/download/download.js";
export type { SampleRecord, SampleStatus } from "./stages/download/samples.js";
export type { ImageShardStats, StatusCounts } from "./stages/download/shard-stats.js";
export {
  type EmbedCounts,
  type EmbedOptions,
  type EmbedShardStats,
  type EmbedSummary,
  embed,
  type FailedEmbedShard,
} from "./stages/embed/embed.js";
export {
  type CandidateShardStats,
  type ExtractOptions,
  type ExtractSummary,
  extract,
} from "./stages/extract/extract.js";
export type { WatFileStats } from "./stages/extract/wat-file-stats.js";
export type { DropReason } from "./stages/filter/drop-rules.js";
export {
  type FailedFilterShard,
  type FilterCounts,
  type FilterOptions,
  type FilterShardStats,
  type FilterSummary,
  filter,
} from "./stages/filter/filter.js";
export { VERSION } from "./version.js";

import { initRoot } from "./config/init-root.js";
import { LocalStorage } from "./io/local-storage.js";

/** `clipcrawl init <root>` as a function. */
export function init(root: string) {
  return initRoot(new LocalStorage(root));
}
