/**
 * One download shard end to end, knowing nothing of where it runs: every sample is fetched,
 * hashed, checked and resized under the concurrency limits, the stored images are parked (in
 * memory, then a spill file), then the shard's outputs are written in key order and its stats last.
 * Sample-level problems are rows; only a failure to write the outputs throws.
 */
import { DownloadBlocklist } from "../../formats/download-blocklist.js";
import { type HostLimits, hostOfUrl, runWithHostLimits } from "../../io/fetch/host-limits.js";
import { ImageFetcher } from "../../io/fetch/image-fetcher.js";
import { outputInfo } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import type { DatasetStorage, FileInfo } from "../../io/storage.js";
import type { DownloadConfig } from "./config.js";
import { ImageSpill, type SpilledImage } from "./image-spill.js";
import { ImageResizer } from "./resizer.js";
import {
  type ExtraColumn,
  type InputSample,
  type SampleRecord,
  sampleKey,
  unfinishedRecord,
} from "./samples.js";
import {
  countStatuses,
  type ImageShardStats,
  type StatusCounts,
  statusHistogram,
} from "./shard-stats.js";
import { shardWriterFor } from "./shard-writers.js";

export interface DownloadShardTask {
  shardIndex: number;
  shard: string;
  samples: InputSample[];
  extraColumns: ExtraColumn[];
  hasCaptions: boolean;
  config: DownloadConfig;
}

export interface DownloadShardResult {
  shard: string;
  counts: StatusCounts;
  statusDict: Record<string, number>;
  /** The files written, with their sizes, for the done marker. */
  outputs: FileInfo[];
  bytesDownloaded: number;
  seconds: number;
}

/** What a runner keeps between shards: connections, the DNS cache, the blocklist. */
export interface DownloadContext {
  fetcher: ImageFetcher;
  resizer: ImageResizer;
  blocklist: DownloadBlocklist | undefined;
  limits: HostLimits;
  close(): Promise<void>;
}

/**
 * `limits` is this runner's share of the configured concurrency; `blocklistPath` is absolute
 * (or empty for none).
 */
export async function createDownloadContext(
  config: DownloadConfig,
  limits: HostLimits,
  blocklistPath: string,
): Promise<DownloadContext> {
  const fetcher = new ImageFetcher({ ...config, connectionsPerHost: limits.perHost });
  return {
    fetcher,
    resizer: new ImageResizer(config),
    blocklist: blocklistPath === "" ? undefined : await DownloadBlocklist.load(blocklistPath),
    limits,
    close: () => fetcher.close(),
  };
}

export async function downloadShard(
  task: DownloadShardTask,
  storage: DatasetStorage,
  context: DownloadContext,
): Promise<DownloadShardResult> {
  const started = Date.now();
  const { config } = task;
  const records: SampleRecord[] = new Array(task.samples.length);
  const spilled: (SpilledImage | undefined)[] = new Array(task.samples.length);
  let bytesDownloaded = 0;
  const spill = new ImageSpill();
  try {
    const indexed = task.samples.map((sample, index) => ({ sample, index }));
    await runWithHostLimits(
      indexed,
      (item) => hostOfUrl(item.sample.url),
      context.limits,
      async ({ sample, index }, releaseHost) => {
        const key = sampleKey(task.shardIndex, index, config.samplesPerShard);
        const blocked = blocklistReason(context.blocklist, sample.url);
        if (blocked !== undefined) {
          records[index] = unfinishedRecord(key, sample, "opted_out", blocked);
          return;
        }
        const fetched = await context.fetcher.fetch(sample.url);
        releaseHost();
        if (fetched.status === "failed") {
          records[index] = unfinishedRecord(key, sample, "failed_to_download", fetched.error);
          return;
        }
        if (fetched.status === "opted_out") {
          records[index] = unfinishedRecord(key, sample, "opted_out", fetched.reason);
          return;
        }
        bytesDownloaded += fetched.bytes.length;
        const hashes = fetched.hashes;
        // A takedown list's image under another URL: nothing of it is kept.
        const blockedBytes = context.blocklist?.matchDigests(hashes);
        if (blockedBytes !== undefined) {
          records[index] = unfinishedRecord(key, sample, "opted_out", blockedBytes);
          return;
        }
        const resized = await context.resizer.resize(fetched.bytes);
        if (!resized.ok) {
          records[index] = {
            ...unfinishedRecord(key, sample, "failed_to_resize", resized.error),
            ...hashes,
          };
          return;
        }
        spilled[index] = spill.append(resized.image);
        records[index] = {
          key,
          url: sample.url,
          caption: sample.caption,
          status: "success",
          errorMessage: null,
          width: resized.width,
          height: resized.height,
          originalWidth: resized.originalWidth,
          originalHeight: resized.originalHeight,
          exif: resized.exif,
          ...hashes,
          extension: resized.extension,
          extra: sample.extra,
        };
      },
    );

    const writer = shardWriterFor(config.outputFormat, storage, config.encodeFormat);
    const written = await writer.write({
      name: task.shard,
      records,
      extraColumns: task.extraColumns,
      hasCaptions: task.hasCaptions,
      image: (index) => spill.read(spilled[index] as SpilledImage),
    });
    const ended = Date.now();
    const counts = countStatuses(records);
    const statusDict = statusHistogram(records);
    const stats: ImageShardStats = {
      shard: task.shard,
      ...counts,
      duration: (ended - started) / 1000,
      start_time: started / 1000,
      end_time: ended / 1000,
      bytes_downloaded: bytesDownloaded,
      status_dict: statusDict,
      config,
    };
    const statsPath = layout.imageStats(task.shard);
    await storage.writeAtomic(statsPath, `${JSON.stringify(stats, null, 2)}\n`);
    const outputs = await outputInfo(storage, [...written, statsPath]);
    return {
      shard: task.shard,
      counts,
      statusDict,
      outputs,
      bytesDownloaded,
      seconds: (ended - started) / 1000,
    };
  } finally {
    await spill.dispose();
  }
}

function blocklistReason(
  blocklist: DownloadBlocklist | undefined,
  url: string,
): string | undefined {
  if (blocklist === undefined || !URL.canParse(url)) return undefined;
  return blocklist.match(new URL(url));
}
