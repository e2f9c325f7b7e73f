/** The clipcrawl library: every CLI command is one of these typed functions. */

export {
  ClipClient,
  ClipClientError,
  type ClipClientOptions,
  type ClipModality,
  type ClipQuery,
  type ClipResult,
  type KnnServiceRequest,
} from "./client/clip-client.js";
export {
  type ConfigOverrides,
  defaultConfig,
  loadConfig,
  parseConfig,
} from "./config/config-file.js";
export { type InitResult, initRoot } from "./config/init-root.js";
export type { ClipcrawlConfig } from "./config/schema.js";
export { ClipcrawlError, ConfigError, InputError } from "./errors.js";
export {
  ClipIndex,
  type MetadataValue,
  type OpenIndexOptions,
  openIndex,
  type SearchFilters,
  type SearchQuery,
  type SearchReport,
  type SearchResult,
} from "./formats/index/clip-index.js";
export type { IndexManifest, IndexParams, Modality } from "./formats/index/index-manifest.js";
export { REMOVAL_KINDS, type RemovalKind } from "./formats/removal-lists.js";
export {
  readTombstones,
  type Tombstones,
} from "./formats/tombstones.js";
export type { AuditEntry, AuditFileChange } from "./governance/audit-log.js";
export type { CompactOptions, CompactSummary } from "./governance/compact.js";
export type {
  CompletedRemoval,
  IndexAction,
  RemoveOptions,
  RemoveSummary,
} from "./governance/remove.js";
export type {
  SampleHistory,
  SampleRemoval,
  ShowOptions,
  StageRow,
} from "./governance/sample-history.js";
export { LocalStorage } from "./io/local-storage.js";
export { decodeNpy, encodeNpy, type NpyArray, NpyFormatError } from "./io/npy.js";
export type { DatasetStorage } from "./io/storage.js";
export { compact, remove, showSample } from "./pipeline/governance-commands.js";
export { PIPELINE, STAGE_NAMES, type StageName } from "./pipeline/pipeline.js";
export {
  type DistributedRunOptions,
  type DistributedRunSummary,
  runDistributed,
} from "./runner/distributed/coordinator.js";
export { type DashboardOptions, startDashboard } from "./runner/distributed/dashboard.js";
export type { QueueOptions } from "./runner/distributed/queue-names.js";
export { type QueueStatus, queueStatus } from "./runner/distributed/queue-status.js";
export {
  type RunningWorker,
  startShardWorker,
  type WorkerOptions,
} from "./runner/distributed/shard-worker.js";
export { type RunOptions, type RunSummary, runPipeline } from "./runner/local-runner.js";
export type { PipelineObserver, StageSnapshot } from "./runner/pipeline-progress.js";
export { type RunStatusReport, runStatus } from "./runner/run-status.js";
export type { ServeConfig } from "./server/config.js";
export {
  type IndexSource,
  type RunningServer,
  type ServeOptions,
  serve,
} from "./server/serve.js";
export type { ShardEvent, StageProgress, StageReporter } from "./shard/reporter.js";
export type {
  AnyStageDefinition,
  StageCall,
  StageDefinition,
  StageSummary,
} from "./shard/stage-definition.js";
export type { DownloadConfig } from "./stages/download/config.js";
export {
  type DownloadOptions,
  type DownloadSummary,
  download,
  type FailedShard,
} from "./stages/download/download.js";
export type { SampleRecord, SampleStatus } from "./stages/download/samples.js";
export type { ImageShardStats, StatusCounts } from "./stages/download/shard-stats.js";
export type { EmbedConfig } from "./stages/embed/config.js";
export {
  type EmbedCounts,
  type EmbedOptions,
  type EmbedShardStats,
  type EmbedSummary,
  embed,
  type FailedEmbedShard,
} from "./stages/embed/embed.js";
export type { ExtractConfig } from "./stages/extract/config.js";
export {
  type CandidateShardStats,
  type ExtractOptions,
  type ExtractSummary,
  extract,
} from "./stages/extract/extract.js";
export type { WatFileStats } from "./stages/extract/wat-file-stats.js";
export type { FilterConfig } from "./stages/filter/config.js";
export type { DropReason } from "./stages/filter/drop-rules.js";
export {
  type FailedFilterShard,
  type FilterCounts,
  type FilterOptions,
  type FilterShardStats,
  type FilterSummary,
  filter,
} from "./stages/filter/filter.js";
export {
  buildIndex,
  type FailedIndexShard,
  type IndexOptions,
  type IndexSummary,
} from "./stages/index/build-index.js";
export type { IndexConfig } from "./stages/index/config.js";
export {
  SUBSET_FORMATS,
  type SubsetFormat,
  type SubsetOptions,
  type SubsetSummary,
  subset,
} from "./stages/subset/subset.js";
export type { ColumnRange } from "./stages/subset/subset-summary.js";
export type { WebdatasetCopy } from "./stages/subset/webdataset-copy.js";
export { VERSION } from "./version.js";

import { initRoot } from "./config/init-root.js";
import { openRoot } from "./io/open-root.js";

/** `clipcrawl init <root>` as a function. */
export function init(root: string) {
  return initRoot(openRoot(root));
}
