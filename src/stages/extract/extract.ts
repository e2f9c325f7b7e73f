/**
 * `clipcrawl extract`: WAT files → `candidates/NNNNN.parquet`, one shard per input file.
 *
 * The root keeps its inputs in order (`_state/inputs.json`): inputs a run names that the root
 * does not have yet are appended, so a root grows crawl by crawl, shard NNNNN is always input
 * NNNNN, and pairs a new crawl shares with an earlier one are dropped as duplicates.
 *
 * Files are parsed in parallel on worker threads, but shards are committed strictly in input
 * order through one Bloom filter, so which copy of a duplicate pair survives never depends on
 * timing: the same inputs and config always give the same shards. A shard's done marker digests
 * its input, the config, and every earlier shard's digest (a chain), because its output depends
 * on what came before it through the dedup filter. On a re-run the filter is rebuilt from the
 * finished shards' pairs, and only unfinished shards are parsed again.
 */
import { stat } from "node:fs/promises";
import { basename } from "node:path";
import { MessageChannel, type MessagePort } from "node:worker_threads";
import { loadConfig } from "../../config/config-file.js";
import { initRoot } from "../../config/init-root.js";
import { errorMessage } from "../../errors.js";
import { type BloomFilterReport, GrowingBloomFilter } from "../../formats/bloom-filter.js";
import { HASH_LANES } from "../../formats/pair-hash.js";
import { localFileIdentity, outputInfo } from "../../io/file-info.js";
import { layout, shardName } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import { readParquet } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import type { FailedShard } from "../../shard/shard-loop.js";
import { ShardSelection } from "../../shard/shard-selection.js";
import { digestOf, ShardState } from "../../shard/shard-state.js";
import type { StageCall, StageSummary } from "../../shard/stage-definition.js";
import { defaultParallelism, siblingModule, WorkerPool } from "../../shard/worker-pool.js";
import type { ExtractConfig } from "./config.js";
import type { ExtractTask } from "./extract-task.js";
import {
  type DedupState,
  FilterCover,
  restorePairFilter,
  savePairFilter,
  shardPairLanes,
} from "./pair-filter-state.js";
import { emptyWatFileStats, type WatFileResult, type WatFileStats } from "./wat-file-stats.js";
import { resolveWatInputs, rootInputs, type WatInput } from "./wat-inputs.js";

export const EXTRACT_STAGE = "extract";

export interface ExtractOptions {
  /** The dataset root: a directory path or a storage. */
  root: string | DatasetStorage;
  /**
   * Files, globs, http(s) URLs, or `*.paths.gz` listings, appended to the root's inputs (those it
   * has already keep their shards); none: the root's inputs as they are.
   */
  inputs: readonly string[];
  /** A Common Crawl id (CC-MAIN-2024-10): reads its wat.paths.gz from the base URL. */
  crawl?: string | undefined;
  /** Only the first N inputs after expansion. */
  limit?: number | undefined;
  /** Values that override the root's clipcrawl.json for this run. */
  config?: Partial<ExtractConfig>;
  /**
   * Only these shards run (names like "00003", one per input in input order); the others are
   * neither run nor counted. Their digests still chain through every earlier input.
   */
  shards?: readonly string[];
  /**
   * The plans of the shards to run, made by `planExtractShards` once for a whole run (a job
   * carries its shard's): `inputs` are then not expanded, nor every digest chained again.
   */
  shardPlans?: readonly ExtractShardPlan[];
  /** Opens the cross-file dedup filter, when it is shared with other processes. */
  sharedPairFilter?: StageCall["sharedPairFilter"];
  reporter?: StageReporter;
  cwd?: string;
}

/** An input that could not be read: its shard (none when it could not even be expanded). */
export interface FailedInput extends FailedShard {
  input: string;
}

/** `samples` counts image links read, `outputs` the pairs kept. */
export interface ExtractSummary extends StageSummary {
  /** True when every input was read to its end. */
  ok: boolean;
  failedShards: FailedInput[];
  /** Totals over the shards written in this run. */
  totals: WatFileStats;
  bloomFilter: BloomFilterReport;
  dedupState: DedupState;
  seconds: number;
}

export interface CandidateShardStats extends WatFileStats {
  shard: string;
  input: string;
  failure: string | null;
  problems: string[];
}

interface RunningShard {
  port: MessagePort;
  result: Promise<WatFileResult>;
}

/** What one extract shard needs to run alone: its input, its place in the order, its digest. */
export interface ExtractShardPlan {
  index: number;
  name: string;
  input: WatInput;
  digest: string;
}

interface PlannedShard {
  index: number;
  name: string;
  input: WatInput;
  digest: string;
  done: boolean;
}

export async function extract(options: ExtractOptions): Promise<ExtractSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  await initRoot(storage);
  const extractConfig = (await loadConfig(storage, { extract: options.config ?? {} })).extract;

  const failedShards: FailedInput[] = [];
  let plans = options.shardPlans;
  if (plans === undefined) {
    const resolved = await resolveWatInputs(options.inputs, {
      crawl: options.crawl,
      baseUrl: extractConfig.baseUrl,
      allowPrivateNetwork: extractConfig.allowPrivateNetwork,
      retries: extractConfig.retries,
      limit: options.limit,
      ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
    });
    for (const error of resolved.errors) {
      failedShards.push({ shard: "", input: error.input, error: error.message });
      reporter.warn(error.message);
    }
    plans = await planExtractShards(await rootInputs(storage, resolved.inputs), extractConfig);
  }

  const state = new ShardState(storage, EXTRACT_STAGE);
  const selection = ShardSelection.of(options.shards);
  const shards: PlannedShard[] = [];
  for (const plan of plans) {
    if (!selection.includes(plan.name)) continue;
    shards.push({ ...plan, done: (await state.findDone(plan.name, plan.digest)) !== undefined });
  }
  const shared = options.sharedPairFilter?.({
    capacity: extractConfig.bloomCapacity,
    falsePositiveRate: extractConfig.bloomFalsePositiveRate,
    redisUrls: extractConfig.dedupRedis,
    mode: extractConfig.dedupMode,
  });
  const restored =
    shared === undefined ? await restorePairFilter(storage, shards, reporter) : undefined;
  // With a shared filter this one stays empty: the smallest allowed.
  const bloom =
    restored?.filter ??
    GrowingBloomFilter.forCapacity(
      shared === undefined ? extractConfig.bloomCapacity : 1000,
      extractConfig.bloomFalsePositiveRate,
    );
  const dedupState: DedupState = {
    restoredShards: restored?.shards ?? 0,
    replayedShards: 0,
    savedShards: 0,
  };
  const cover = new FilterCover(dedupState.restoredShards);
  // With a shared filter: the leading shards whose pairs it was restored with (read once asked).
  let restoredShared: number | undefined;
  const totals = emptyWatFileStats();
  const summary = { shardsWritten: 0, shardsSkipped: 0 };
  const lastPending = shards.findLastIndex((shard) => !shard.done);

  const pending = shards.filter((s) => !s.done);
  // The parser's modules load on this thread only when it reads the file itself.
  const inline = (await readsInline(pending))
    ? (await import("./extract-task.js")).runExtractTask
    : undefined;
  const pool =
    inline === undefined
      ? new WorkerPool<ExtractTask, WatFileResult>(
          siblingModule(import.meta.url, "extract-worker"),
          Math.max(1, Math.min(defaultParallelism(extractConfig.workers), pending.length)),
        )
      : undefined;
  const runTask = (task: ExtractTask) =>
    pool === undefined
      ? (inline as (task: ExtractTask) => Promise<WatFileResult>)(task)
      : pool.run(task, [task.port]);
  const root = storage.root;
  // Files are read ahead of the commit point by this many shards, to keep every worker busy.
  const window = (pool?.size ?? 1) * 2;
  const running = new Map<number, RunningShard>();
  let nextToDispatch = 0;
  const dispatch = (upTo: number) => {
    for (; nextToDispatch < Math.min(upTo, shards.length); nextToDispatch++) {
      const shard = shards[nextToDispatch] as PlannedShard;
      if (shard.done) continue;
      const channel = new MessageChannel();
      const task: ExtractTask = {
        input: shard.input,
        config: extractConfig,
        root,
        parquetPath: layout.candidates(shard.name),
        port: channel.port2,
      };
      const result = runTask(task).catch((error: unknown) => crashedResult(shard.input, error));
      running.set(shard.index, { port: channel.port1, result });
    }
  };

  const reportProgress = (shardsDone: number) =>
    reporter.progress({
      stage: EXTRACT_STAGE,
      shardsDone,
      shardsTotal: shards.length,
      samples: totals.imageLinks,
      counters: { records: totals.records, pairs: totals.kept, bytes: totals.compressedBytes },
    });
  reportProgress(0);
  try {
    for (const [position, shard] of shards.entries()) {
      if (shard.done) {
        summary.shardsSkipped++;
        reporter.shardFinished?.({ stage: EXTRACT_STAGE, shard: shard.name, outcome: "skipped" });
        if (shared !== undefined) {
          restoredShared ??= await shared.restoredShards();
          if (shard.index < restoredShared) dedupState.restoredShards++;
          else {
            await shared.replay(shard.index, await shardPairLanes(storage, shard.name));
            dedupState.replayedShards++;
          }
        } else if (position < dedupState.restoredShards) {
          cover.holds(shard, position);
        }
        // Later shards were deduplicated against this one's pairs: put them back in the filter.
        else if (position < lastPending) {
          await addShardPairsToFilter(storage, shard.name, bloom);
          dedupState.replayedShards++;
          cover.holds(shard, position);
        } else cover.lacks();
      } else {
        dispatch(position + window);
        const { port, result: pending } = running.get(shard.index) as RunningShard;
        running.delete(shard.index);
        const lanes = await Promise.race([
          nextMessage<Uint32Array>(port),
          pending.then(() => undefined),
        ]);
        if (lanes !== undefined) {
          cover.added();
          const dropped =
            shared === undefined
              ? crossFileDuplicates(bloom, lanes)
              : await shared.duplicates(shard.index, lanes);
          port.postMessage(dropped, [dropped.buffer as ArrayBuffer]);
        } else if (shared !== undefined) {
          await shared.pass(shard.index);
        }
        const result = await pending;
        port.close();
        await commitShard(storage, state, shard, result);
        addStats(totals, result.stats);
        for (const line of result.problems) reporter.warn(line);
        if (result.failure === undefined && result.written) cover.holds(shard, position);
        else cover.lacks();
        if (result.failure !== undefined) {
          reporter.warn(result.failure);
          failedShards.push({ shard: shard.name, input: shard.input.name, error: result.failure });
          reporter.shardFinished?.({
            stage: EXTRACT_STAGE,
            shard: shard.name,
            outcome: "failed",
            error: result.failure,
          });
        } else {
          reporter.shardFinished?.({
            stage: EXTRACT_STAGE,
            shard: shard.name,
            outcome: "written",
            samples: result.stats.imageLinks,
            outputs: result.stats.kept,
          });
        }
        if (result.written) summary.shardsWritten++;
      }
      reportProgress(position + 1);
    }
    if (shared === undefined) dedupState.savedShards = await savePairFilter(storage, bloom, cover);
  } finally {
    // Only reached early on an error: shards still running are abandoned (their outputs are
    // atomic, and they have no marker, so the next run redoes them).
    for (const { port } of running.values()) port.close();
    await pool?.close();
  }

  return {
    ok: failedShards.length === 0,
    shards: shards.length,
    ...summary,
    failedShards,
    samples: totals.imageLinks,
    outputs: totals.kept,
    totals,
    bloomFilter: shared === undefined ? bloom.report() : await shared.report(),
    dedupState,
    seconds: (performance.now() - started) / 1000,
  };
}

/** A local file under this size, alone to read, is read on this thread (extract-task.ts). */
const INLINE_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Whether the one shard to run is better read on this thread than on a worker: a worker thread
 * loads the parser, DuckDB and their modules again, a fixed cost of a good part of a second that
 * a small file does not repay (a few MB a second is read either way).
 */
async function readsInline(pending: readonly PlannedShard[]): Promise<boolean> {
  const [only] = pending;
  if (pending.length !== 1 || only === undefined || only.input.kind !== "file") return false;
  const bytes = (await stat(only.input.path).catch(() => undefined))?.size;
  return bytes !== undefined && bytes <= INLINE_MAX_BYTES;
}

/**
 * One shard per input, in order, each with the digest of what its output depends on: its input,
 * the config that shapes it, and, through the dedup filter, every shard before it (the digests
 * chain). Made once for a whole run; a job carries its shard's (`ExtractOptions.shardPlans`).
 */
export async function planExtractShards(
  inputs: readonly WatInput[],
  config: ExtractConfig,
): Promise<ExtractShardPlan[]> {
  const outputConfig = {
    minTextLength: config.minTextLength,
    linkPaths: config.linkPaths,
    bloomCapacity: config.bloomCapacity,
    bloomFalsePositiveRate: config.bloomFalsePositiveRate,
    maxRecordBytes: config.maxRecordBytes,
  };
  const shards: ExtractShardPlan[] = [];
  let previous = "";
  for (const [index, input] of inputs.entries()) {
    const name = shardName(index);
    const digest = digestOf({ previous, input: await inputIdentity(input), config: outputConfig });
    shards.push({ index, name, input, digest });
    previous = digest;
  }
  return shards;
}

async function inputIdentity(input: WatInput): Promise<unknown> {
  if (input.kind === "url") return { url: input.url };
  return { file: basename(input.path), ...(await localFileIdentity(input.path)) };
}

async function commitShard(
  storage: DatasetStorage,
  state: ShardState,
  shard: PlannedShard,
  result: WatFileResult,
): Promise<void> {
  // An input that could not even be opened leaves no shard; one cut off keeps what was read.
  if (!result.written) return;
  const parquetPath = layout.candidates(shard.name);
  const shardStats: CandidateShardStats = {
    shard: shard.name,
    input: shard.input.name,
    ...result.stats,
    failure: result.failure ?? null,
    problems: result.problems,
  };
  await storage.writeAtomic(
    layout.candidateStats(shard.name),
    `${JSON.stringify(shardStats, null, 2)}\n`,
  );
  // A failed input gets no marker: the next run reads it again and reports it again.
  if (result.failure !== undefined) return;
  await state.markDone({
    shard: shard.name,
    inputDigest: shard.digest,
    outputs: await outputInfo(storage, [parquetPath]),
    counts: {
      records: result.stats.records,
      imageLinks: result.stats.imageLinks,
      kept: result.stats.kept,
    },
  });
}

/** Runs a file's pair hashes through the filter, in row order; returns the rows seen before. */
function crossFileDuplicates(bloom: GrowingBloomFilter, lanes: Uint32Array): Uint32Array {
  const dropped: number[] = [];
  for (let row = 0; row * HASH_LANES < lanes.length; row++) {
    if (!bloom.addHash(lanes, row * HASH_LANES)) dropped.push(row);
  }
  return Uint32Array.from(dropped);
}

function nextMessage<T>(port: MessagePort): Promise<T> {
  return new Promise((resolve) => port.once("message", resolve));
}

async function addShardPairsToFilter(
  storage: DatasetStorage,
  shard: string,
  bloom: GrowingBloomFilter,
): Promise<void> {
  const rows = await readParquet(storage, layout.candidates(shard), ["url", "text"]);
  for (const row of rows) bloom.addPair(String(row.url), String(row.text));
}

/** A worker that died (out of memory, a native crash) fails its input, not the run. */
function crashedResult(input: WatInput, error: unknown): WatFileResult {
  return {
    input: input.name,
    stats: emptyWatFileStats(),
    problems: [],
    written: false,
    failure: `${input.name}: the worker reading it failed: ${errorMessage(error)}`,
  };
}

function addStats(total: WatFileStats, add: WatFileStats): void {
  for (const key of [
    "compressedBytes",
    "records",
    "htmlPages",
    "pagesWithImageLinks",
    "imageLinks",
    "kept",
    "seconds",
  ] as const) {
    total[key] += add[key];
  }
  for (const group of ["dropped", "badRecords", "languageTiers"] as const) {
    const target = total[group] as Record<string, number>;
    for (const [key, value] of Object.entries(add[group])) target[key] = (target[key] ?? 0) + value;
  }
}
