/**
 * Cutting the input rows, in order, into download shards of N samples. Each planned shard
 * carries the digest of everything its output depends on, so a done marker with that digest
 * proves the shard finished.
 *
 * - Candidate shards: each one cut into shards of N rows (its last one shorter), never two in
 *   one, planned from their row counts without reading rows; the digest covers the candidate
 *   shard's extract digest (its done marker's) and the rows it reads, so candidate shards
 *   appended later (a new crawl) only add download shards.
 * - URL lists: streamed once, in order, shard k holding rows [k·N, (k+1)·N); the digest covers
 *   the rows themselves.
 */
import { createHash } from "node:crypto";
import { InputError } from "../../errors.js";
import { layout, shardName } from "../../io/layout.js";
import type { DatasetStorage } from "../../io/storage.js";
import { digestOf, ShardState } from "../../shard/shard-state.js";
import type { DownloadConfig } from "./config.js";
import type { ExtraColumn, InputSample } from "./samples.js";
import {
  countRows,
  listColumns,
  type RowMapping,
  readRowRange,
  readUrlListFile,
  type UrlListFile,
  urlListMapping,
} from "./url-lists.js";

export interface PlannedShard {
  index: number;
  name: string;
  digest: string;
  load(): Promise<InputSample[]>;
}

export interface ShardPlan {
  source: "candidates" | "url lists";
  extraColumns: ExtraColumn[];
  hasCaptions: boolean;
  totalSamples: number;
  totalShards: number;
  shards: AsyncIterable<PlannedShard>;
}

const EXTRACT_STAGE = "extract";
const CANDIDATE_SHARD = /^\d{5}\.parquet$/;

/** The config values that change what a shard holds (not how hard the network is tried). */
export function outputConfig(config: DownloadConfig): Partial<DownloadConfig> {
  const {
    workers: _workers,
    concurrency: _concurrency,
    perHostConcurrency: _perHost,
    timeoutSeconds: _timeout,
    totalTimeoutSeconds: _totalTimeout,
    retries: _retries,
    retryBackoffSeconds: _backoff,
    dnsCacheSeconds: _dns,
    userAgentToken: _token,
    allowPrivateNetwork: _private,
    connectTo: _connectTo,
    caCertificates: _ca,
    ...output
  } = config;
  return output;
}

/** One candidate shard's rows a download shard reads: [from, to) of candidates/SHARD.parquet. */
export interface CandidateSegment {
  shard: string;
  /** The candidate shard's extract digest (its done marker's), or its size when unmarked. */
  digest: string;
  from: number;
  to: number;
}

/**
 * Everything one download shard needs to run alone, without planning the others: its candidate
 * rows and how the columns map. JSON, so a distributed run plans it once and carries it in the
 * shard's job.
 */
export interface CandidateShardPlan {
  index: number;
  name: string;
  segments: CandidateSegment[];
  mapping: RowMapping;
  totalSamples: number;
  totalShards: number;
}

/**
 * Candidate shards are a parquet URL list read with url → url, text → caption, and every other
 * column (language, page_url, source, …) carried through for provenance. Each candidate shard is
 * cut, in order, into download shards of `samplesPerShard` rows (its last one shorter), from the
 * row counts alone (no row is read).
 */
export async function cutCandidateShards(
  storage: DatasetStorage,
  config: Pick<DownloadConfig, "samplesPerShard">,
): Promise<CandidateShardPlan[]> {
  const folder = layout.candidatesFolder();
  const names = (await storage.list(folder)).filter((name) => CANDIDATE_SHARD.test(name));
  if (names.length === 0) {
    throw new InputError(
      "CC_NO_CANDIDATES",
      storage.describe(folder),
      "no candidate shards: run clipcrawl extract first, or give URL lists to download",
    );
  }
  const extractState = new ShardState(storage, EXTRACT_STAGE);
  const files: { shard: string; rows: number; digest: string }[] = [];
  let mapping: RowMapping | undefined;
  for (const name of names) {
    const shard = name.slice(0, -".parquet".length);
    const path = layout.candidates(shard);
    const file: UrlListFile = { path: await storage.localPath(path), format: "parquet" };
    const marker = await extractState.read(shard);
    const info = await storage.stat(path);
    const digest = marker?.inputDigest ?? digestOf({ unmarked: name, bytes: info?.bytes });
    files.push({ shard, rows: await countRows(file), digest });
    if (mapping === undefined) {
      const columns = await listColumns(file);
      mapping = {
        urlCol: "url",
        captionCol: "text",
        extraColumns: columns.filter((column) => column.name !== "url" && column.name !== "text"),
      };
    }
  }
  const totalSamples = files.reduce((sum, file) => sum + file.rows, 0);
  const perShard = config.samplesPerShard;
  // A download shard never spans two candidate shards: candidates added later (a new crawl)
  // only add download shards, and the shards already cut, done and indexed stay as they are.
  const cuts: { file: (typeof files)[number]; from: number; to: number }[] = [];
  for (const file of files) {
    for (let from = 0; from < file.rows; from += perShard) {
      cuts.push({ file, from, to: Math.min(from + perShard, file.rows) });
    }
  }
  const plans: CandidateShardPlan[] = cuts.map(({ file, from, to }, index) => ({
    index,
    name: shardName(index),
    segments: [{ shard: file.shard, digest: file.digest, from, to }],
    mapping: mapping as RowMapping,
    totalSamples,
    totalShards: cuts.length,
  }));
  return plans;
}

/** Download shards from candidate shards: cut them all, or take the one plan a job carries. */
export async function planCandidateShards(
  storage: DatasetStorage,
  config: DownloadConfig,
  blocklistIdentity: unknown,
  cut?: readonly CandidateShardPlan[],
): Promise<ShardPlan> {
  const plans = cut ?? (await cutCandidateShards(storage, config));
  const first = plans[0];
  const mapping = first?.mapping ?? { urlCol: "url", captionCol: "text", extraColumns: [] };
  const settings = { config: outputConfig(config), mapping, blocklist: blocklistIdentity };

  async function* shards(): AsyncGenerator<PlannedShard> {
    for (const plan of plans) {
      yield {
        index: plan.index,
        name: plan.name,
        digest: digestOf({ candidates: plan.segments, ...settings }),
        load: async () => {
          const samples: InputSample[] = [];
          for (const segment of plan.segments) {
            const file: UrlListFile = {
              path: await storage.localPath(layout.candidates(segment.shard)),
              format: "parquet",
            };
            samples.push(...(await readRowRange(file, mapping, segment.from, segment.to)));
          }
          return samples;
        },
      };
    }
  }

  return {
    source: "candidates",
    extraColumns: mapping.extraColumns as ExtraColumn[],
    hasCaptions: true,
    totalSamples: first?.totalSamples ?? 0,
    totalShards: first?.totalShards ?? 0,
    shards: shards(),
  };
}

export async function planUrlListShards(
  files: readonly UrlListFile[],
  config: DownloadConfig,
  blocklistIdentity: unknown,
): Promise<ShardPlan> {
  if (files.length === 0) {
    throw new InputError("CC_INPUT_MISSING", "inputs", "no URL list files found");
  }
  const options = {
    urlCol: config.urlCol,
    captionCol: config.captionCol,
    saveAdditionalColumns: config.saveAdditionalColumns,
  };
  // Every file is checked before the first download, so a typo in a column name fails at once.
  const mappings = await Promise.all(files.map((file) => urlListMapping(file, options)));
  const mapping = mappings[0] as RowMapping;
  let totalSamples = 0;
  for (const file of files) totalSamples += await countRows(file);
  const perShard = config.samplesPerShard;
  const settings = { config: outputConfig(config), mapping, blocklist: blocklistIdentity };

  async function* shards(): AsyncGenerator<PlannedShard> {
    let index = 0;
    let pending: InputSample[] = [];
    const cut = (samples: InputSample[]): PlannedShard => {
      const shard: PlannedShard = {
        index,
        name: shardName(index),
        digest: digestOf({ rows: rowsDigest(samples), ...settings }),
        load: async () => samples,
      };
      index++;
      return shard;
    };
    for (const [fileIndex, file] of files.entries()) {
      for await (const batch of readUrlListFile(file, mappings[fileIndex] as RowMapping)) {
        pending.push(...batch);
        while (pending.length >= perShard) {
          yield cut(pending.slice(0, perShard));
          pending = pending.slice(perShard);
        }
      }
    }
    if (pending.length > 0) yield cut(pending);
  }

  return {
    source: "url lists",
    extraColumns: [...mapping.extraColumns],
    hasCaptions: mapping.captionCol !== "",
    totalSamples,
    totalShards: Math.ceil(totalSamples / perShard),
    shards: shards(),
  };
}

function rowsDigest(samples: readonly InputSample[]): string {
  const hash = createHash("sha256");
  for (const sample of samples) {
    hash.update(
      JSON.stringify(sample, (_, value) =>
        typeof value === "bigint" ? `${value.toString()}n` : value,
      ),
    );
    hash.update("\n");
  }
  return hash.digest("hex");
}
