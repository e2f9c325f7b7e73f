/**
 * What a pipeline stage is, to whoever runs it: the declaration each stage folder exports
 * (`src/stages/<stage>/stage.ts`) and the pipeline registry lists in order
 * (`src/pipeline/pipeline.ts`). Runners, the demo, `status`, the run report and `stats` read a
 * stage only through this: its name, what it reads and writes, how its shards come from the
 * stage before it, the call that runs some of its shards, and what its counts mean.
 */
import type { ClipcrawlConfig } from "../config/schema.js";
import type { BloomFilterReport, BloomSeries } from "../formats/bloom-filter.js";
import type { DatasetStorage } from "../io/storage.js";
import type { StageReporter } from "./reporter.js";
import type { FailedShard } from "./shard-loop.js";

/** The one job of a stage that runs over the whole dataset at once (index, with nothing to add). */
export const WHOLE_DATASET = "all";

/** What every stage function returns; each stage's summary extends it with its own details. */
export interface StageSummary {
  /** True when every shard the call was given is done. */
  ok: boolean;
  /** Shards the call accounted for (the plan, or the shards it was asked for). */
  shards: number;
  shardsWritten: number;
  /** Shards whose done marker matched, so they were not redone. */
  shardsSkipped: number;
  failedShards: FailedShard[];
  /** Samples the written shards processed, and how many of them the stage passed on. */
  samples: number;
  outputs: number;
  seconds: number;
}

/**
 * How a stage's shards come from the stage before it:
 * - `each shard`: its shard N is made from shard N of the stage before, as soon as that is done;
 * - `all shards`: it plans its own shards from what the stage before wrote, once that is over;
 * - `all shards done`: as `all shards`, but only once every shard of the stage before is done.
 */
export type StageLink = "each shard" | "all shards" | "all shards done";

/**
 * A cross-shard dedup filter that other processes share (a distributed runner's, in Redis, one
 * process a shard). It must take shards in input order, as a process's own filter does, so
 * which copy of a duplicate survives is decided the same way. As a run starts it is empty, or
 * restored from a saved filter that holds the pairs of the leading shards; any other finished
 * shard offers its pairs again at its turn (`replay`), as the local filter is rebuilt.
 */
export interface SharedPairFilter {
  /**
   * Adds shard `index`'s pair hashes (HASH_LANES a row) at the shard's turn; returns the rows
   * seen before. The same call again (a retry) returns the same rows.
   */
  duplicates(index: number, lanes: Uint32Array): Promise<Uint32Array>;
  /** A finished shard's pairs, offered again at its turn to rebuild what earlier runs knew. */
  replay(index: number, lanes: Uint32Array): Promise<void>;
  /** Shard `index` adds no pairs this time (already done, or its input failed): its turn passes. */
  pass(index: number): Promise<void>;
  report(): Promise<BloomFilterReport>;
  /**
   * Fills the filter, before any shard takes its turn, with a saved one that holds the pairs of
   * shards 0 … shards − 1: their turns are then past. A filter that cannot take it (split over
   * several Redis instances) stays empty, and `restoredShards` stays 0.
   */
  restore(saved: PairFilterBits, shards: number): Promise<void>;
  /** The leading shards whose pairs came with `restore` (0: none). */
  restoredShards(): Promise<number>;
  /** Shards that offered their pairs again with `replay`. */
  replayedShards(): Promise<number>;
  /**
   * Once no shard takes turns any more: the leading shards whose pairs it holds and nothing else
   * (each took its turn in order, none passed), and its bits; undefined when it holds more.
   */
  held(): Promise<{ shards: number; bits: PairFilterBits } | undefined>;
}

/** A growing Bloom filter's state, read a slice of one of its filters at a time. */
export interface PairFilterBits {
  series: BloomSeries;
  /** `length` bytes of filter `layer`'s bits from `offset` (bit i: bit `i & 7` of byte `i >> 3`). */
  read(layer: number, offset: number, length: number): Promise<Uint8Array>;
}

/**
 * How a shared filter split over several Redis instances takes shards: in input order, as a
 * local run (deterministic), or as they come (parallel; which copy of a duplicate survives
 * depends on timing).
 */
export const DEDUP_MODES = ["deterministic", "parallel"] as const;
export type DedupMode = (typeof DEDUP_MODES)[number];

/** What a shared filter is opened with: extract's config. */
export interface SharedPairFilterSettings {
  capacity: number;
  falsePositiveRate: number;
  /** Redis URLs the filter is split over; none: the queue's Redis. */
  redisUrls: readonly string[];
  mode: DedupMode;
}

/** Values that override the root's clipcrawl.json for one call, section by section. */
export type ConfigSections = {
  [Section in keyof ClipcrawlConfig]?: Partial<ClipcrawlConfig[Section]>;
};

/**
 * A shard a stage planned: its name, and what a call needs to run it alone without planning
 * every other shard (JSON: a distributed run plans once and carries it in the shard's job).
 */
export interface PlanEntry {
  shard: string;
  plan?: unknown;
}

/** One call of a stage over some of its shards, as a runner makes it. */
export interface StageCall {
  storage: DatasetStorage;
  /** The shards to run; unset: every shard the stage plans. */
  shards?: readonly string[];
  /**
   * The `plan` of each shard named, from the stage's own `plan` entries, in the order of
   * `shards`: the stage runs them without planning the rest (a job's cost stays flat however
   * many shards the run has).
   */
  shardPlans?: readonly unknown[];
  reporter: StageReporter;
  /** Once aborted, no further shard starts; the running ones finish. */
  signal?: AbortSignal;
  /** Shards this call may run at once; unset: the stage's configured default. */
  parallel?: number;
  /**
   * Calls of this stage running at once in this process: each takes that share of the stage's
   * own global limits (download's connections).
   */
  share?: number;
  /** Values that override the root's config for this call (the demo's web and models). */
  config?: ConfigSections;
  /** The run's inputs, in shard order (read by the first stage). */
  inputs?: readonly string[];
  /** A cross-shard dedup filter shared with other processes (a distributed run's). */
  sharedPairFilter?: (settings: SharedPairFilterSettings) => SharedPairFilter;
  cwd?: string;
}

/** What a distributed run hands a stage's `aroundSharedRun` hooks. */
export interface SharedStageRun {
  storage: DatasetStorage;
  /** The stage's jobs for the run, as they carry their plans (planJobs', else one a shard). */
  plan: readonly PlanEntry[];
  config?: ConfigSections;
  warn(line: string): void;
  /** Records a failure of the stage that no job reported (the run then ends failed). */
  fail(shard: string, error: string): void;
  /** The run's shared dedup filter, as the stage's jobs open it. */
  sharedPairFilter: NonNullable<StageCall["sharedPairFilter"]>;
}

/** What a user named as a run's inputs: files, globs, URLs, listings, a crawl id. */
export interface InputSpecs {
  inputs?: readonly string[] | undefined;
  crawl?: string | undefined;
  limit?: number | undefined;
  cwd: string;
}

/** Which fields of a stage's per-shard stats files (`*_stats.json`) the run report sums. */
export interface StatsFileTotals {
  /** The folder holding the stats files. */
  folder: string;
  /** The field counting samples in, and the one counting samples passed on. */
  inputs: string;
  outputs: string;
  /** Fields holding drop counts: a number (the field names the reason) or reasons → counts. */
  drops: readonly string[];
  /** Fields holding error messages → counts. */
  errors: readonly string[];
  /** The field with the shard's own seconds (a number, or an object whose `total` is). */
  seconds: string;
}

export interface StageDefinition<
  Name extends string = string,
  Summary extends StageSummary = StageSummary,
> {
  name: Name;
  /** What it reads and writes in the dataset root, for people (status, docs). */
  reads: string;
  writes: string;
  /** How its shards come from the stage before it (the first stage's come from the run's inputs). */
  link: StageLink;
  /**
   * A distributed run only: the jobs its planned shards are queued as, when they are not one job
   * a shard (index: one job an index shard, each entry's `plan` what its job builds; or one job
   * named WHOLE_DATASET). Its `aroundSharedRun` hooks are given these entries.
   */
  planJobs?(
    call: Pick<StageCall, "storage" | "config">,
    shards: readonly PlanEntry[],
  ): Promise<PlanEntry[]>;
  /** Its command takes `--redo SHARD,…` to redo named shards (what `status` suggests for damage). */
  redoOption?: boolean;
  /** Fails fast, before a run starts, when the root's config cannot work for this stage. */
  checkConfig?(config: ClipcrawlConfig): void;
  /** What its summary's `samples` and `outputs` count, e.g. "image links" and "pairs kept". */
  counts: { samples: string; outputs: string };
  /** The section of clipcrawl.json that configures it, if any. */
  configSection?: keyof ClipcrawlConfig;
  /**
   * The first stage only: what the user named, expanded into the run's inputs in shard order,
   * and one line for each that could not be.
   */
  expandInputs?(
    specs: InputSpecs,
    config: ClipcrawlConfig,
  ): Promise<{ inputs: string[]; errors: string[] }>;
  /**
   * The shards it will run, in order, once the stage before it is over: for the first stage and
   * `all shards` links (an `each shard` stage runs the shards of the stage before).
   */
  plan?(call: Pick<StageCall, "storage" | "inputs" | "config" | "cwd">): Promise<PlanEntry[]>;
  /**
   * A distributed run only, for a stage whose shards the run plans (the first of a chain), around
   * its shard jobs (which run in other processes and share state through the run's shared
   * objects): `before` once its plan is made and before any job is queued, `after` once every job
   * is over. What `after` returns goes into the run report as
   * the stage's `details`.
   */
  aroundSharedRun?: {
    before(run: SharedStageRun): Promise<void>;
    after(run: SharedStageRun): Promise<Record<string, unknown>>;
  };
  /** What its summary tells beyond the counts, for the run report's `details` (extract: dedup). */
  reportDetails?(summary: Summary): Record<string, unknown>;
  /** Runs the named shards (all when none are named): the stage's own library function. */
  run(call: StageCall): Promise<Summary>;
  /** Shards a runner may run at once in one call, from the root's config (unset: the stage decides). */
  parallelism?(storage: DatasetStorage): Promise<number>;
  /** Its stats files, for the run report's totals over the root; none for a stage without any. */
  statsFiles?: StatsFileTotals;
}

/** A stage declaration of any summary type, as lists of stages hold them. */
// biome-ignore lint/suspicious/noExplicitAny: a list holds stages of different summary types; each stage's own declaration is fully typed.
export type AnyStageDefinition = StageDefinition<string, any>;
