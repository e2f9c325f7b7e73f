/**
 * extract's cross-file (url, text) dedup split over several Redis instances (`--dedup-redis`), so
 * one Redis's single core stops bounding a large run's dedup.
 *
 * A pair belongs to one instance, chosen by hash bits that the bit positions do not use
 * (instanceOf), and each instance holds a growing Bloom filter of its own pairs
 * (redis-pair-filter.ts without its turns: a batch is one Lua script, checked and set at once, its
 * answer stored so a retry gets it back). Each instance's filter is sized for its share of the
 * capacity at the run's false-positive rate, and a pair meets only its own instance's filter, so
 * the false-positive guarantee is the local one.
 *
 * Two modes (`--dedup-mode`):
 * - deterministic: shards take turns in input order, as with one Redis (the cursor on the queue's
 *   Redis); at its turn a shard's pairs go to every instance at once. Every pair is decided as
 *   the local filter decides it, but for false positives, so the output is a local run's.
 * - parallel: no turns. Each instance checks and sets each pair atomically, so two workers never
 *   both keep a pair, but which copy survives depends on which shard got there first.
 */
import { Redis, type RedisOptions } from "ioredis";
import { ClipcrawlError, ConfigError, errorMessage } from "../../errors.js";
import type { BloomFilterReport } from "../../formats/bloom-filter.js";
import { HASH_LANES } from "../../formats/pair-hash.js";
import type {
  DedupMode,
  PairFilterBits,
  SharedPairFilter,
  SharedPairFilterSettings,
} from "../../shard/stage-definition.js";
import { type RunKeys, redactedUrl, redisOptions } from "./queue-names.js";
import { RedisPairFilter, type RedisPairFilterOptions } from "./redis-pair-filter.js";

/** Longest pause between looks at the turn cursor. */
const TURN_POLL_MS = 20;
/** The smallest filter bloom-filter.ts sizes. */
const MIN_PART_CAPACITY = 1000;

export interface ShardedPairFilterOptions extends RedisPairFilterOptions {
  mode: DedupMode;
}

export class ShardedPairFilter implements SharedPairFilter {
  private readonly parts: RedisPairFilter[];
  /** Holds the turns (the cursor and the passed shards) in the deterministic mode. */
  private readonly turns: RedisPairFilter;

  /**
   * `instances`: the Redis of each part, in `--dedup-redis` order (every worker must list them in
   * the same order); `queue`: the queue's Redis, which keeps the turns.
   */
  constructor(
    instances: readonly Redis[],
    private readonly queue: Redis,
    private readonly keys: RunKeys,
    private readonly options: ShardedPairFilterOptions,
  ) {
    if (instances.length === 0) throw new Error("a sharded dedup filter needs a Redis instance");
    const capacity = Math.max(MIN_PART_CAPACITY, Math.ceil(options.capacity / instances.length));
    this.parts = instances.map(
      (redis) => new RedisPairFilter(redis, keys, { ...options, capacity, turns: false }),
    );
    this.turns = new RedisPairFilter(queue, keys, options);
  }

  async duplicates(index: number, lanes: Uint32Array): Promise<Uint32Array> {
    if (this.options.mode === "deterministic") await this.untilTurn(index);
    const split = splitByInstance(lanes, this.parts.length);
    const answers = await Promise.all(
      this.parts.map((part, at) => part.duplicates(index, (split[at] as InstancePairs).lanes)),
    );
    const dropped: number[] = [];
    answers.forEach((rows, at) => {
      const original = (split[at] as InstancePairs).rows;
      for (const row of rows) dropped.push(original[row] as number);
    });
    // Moves the cursor on if this shard still has the turn (not when it went late, or again).
    if (this.options.mode === "deterministic") await this.turns.passTurn(index);
    return Uint32Array.from(dropped).sort();
  }

  async replay(index: number, lanes: Uint32Array): Promise<void> {
    await this.duplicates(index, lanes);
    await this.queue.sadd(this.keys.extractReplayed(), index);
  }

  replayedShards(): Promise<number> {
    return this.turns.replayedShards();
  }

  /**
   * Nothing: the saved filter (`_state/pair-filter.bin`) is one filter of the whole capacity,
   * while here each pair lives in its own instance's smaller filter, at other bits. A split
   * filter starts empty and the finished shards replay their pairs.
   */
  async restore(_saved: PairFilterBits, _shards: number): Promise<void> {}

  async restoredShards(): Promise<number> {
    return 0;
  }

  /** Never a saved filter's bits (see restore): the root keeps the filter it had. */
  async held(): Promise<undefined> {
    return undefined;
  }

  /** Passes the turn of shard `index` if it has it now; true when the turn is past it. */
  passTurn(index: number): Promise<boolean> {
    return this.turns.passTurn(index);
  }

  async pass(index: number): Promise<void> {
    if (this.options.mode === "deterministic") await this.turns.pass(index);
  }

  async report(): Promise<BloomFilterReport> {
    const reports = await Promise.all(this.parts.map((part) => part.report()));
    const sum = (field: "bits" | "bytes" | "items") =>
      reports.reduce((total, report) => total + report[field], 0);
    // A new pair meets one instance's filter, each as likely.
    const falsePositive =
      reports.reduce((total, report) => total + report.estimatedFalsePositiveRate, 0) /
      reports.length;
    return {
      capacity: this.options.capacity,
      targetFalsePositiveRate: this.options.falsePositiveRate,
      bits: sum("bits"),
      hashes: (reports[0] as BloomFilterReport).hashes,
      bytes: sum("bytes"),
      items: sum("items"),
      estimatedFalsePositiveRate: falsePositive,
      layers: Math.max(...reports.map((report) => report.layers)),
    };
  }

  /**
   * Waits until the cursor reaches shard `index`. Past it is as good: the shard was done (its
   * stored answers come back) or passed while its input could not be read (it goes in late).
   */
  private async untilTurn(index: number): Promise<void> {
    let pause = 1;
    let sinceCheck = 0;
    for (;;) {
      const cursor = Number((await this.queue.get(this.keys.extractCursor())) ?? 0);
      if (cursor >= index) return;
      await new Promise((resolve) => setTimeout(resolve, pause));
      sinceCheck += pause;
      // A turn takes tens of ms of Redis time: polling often (a GET) loses less of it.
      pause = Math.min(TURN_POLL_MS, pause * 2);
      if (sinceCheck >= 200 && this.options.whileWaiting !== undefined) {
        sinceCheck = 0;
        await this.options.whileWaiting(cursor);
      }
    }
  }
}

/**
 * The run's shared dedup filter as its settings ask: one filter in the queue's Redis with turns
 * (the default), else split over the `--dedup-redis` instances (`instance` opens or reuses a
 * connection to one) or without turns. Workers and the coordinator open it alike.
 */
export function openSharedPairFilter(
  queue: Redis,
  keys: RunKeys,
  { redisUrls, mode, ...settings }: SharedPairFilterSettings,
  instance: (url: string) => Redis,
  options: Pick<RedisPairFilterOptions, "whileWaiting"> = {},
): RedisPairFilter | ShardedPairFilter {
  if (redisUrls.length === 0 && mode === "deterministic") {
    return new RedisPairFilter(queue, keys, { ...settings, ...options });
  }
  return new ShardedPairFilter(
    redisUrls.length === 0 ? [queue] : redisUrls.map(instance),
    queue,
    keys,
    { ...settings, ...options, mode },
  );
}

interface InstancePairs {
  lanes: Uint32Array;
  /** Each pair's row in the shard. */
  rows: Uint32Array;
}

/**
 * The instance of the pair at `at`: from the 11 low bits of lanes 1 and 3, which positionBase
 * drops, so an instance's pairs are spread evenly over its filter's bits.
 */
export function instanceOf(lanes: Uint32Array, at: number, instances: number): number {
  return (((lanes[at + 1] ?? 0) & 0x7ff) * 0x800 + ((lanes[at + 3] ?? 0) & 0x7ff)) % instances;
}

/** A shard's pair hashes, by instance, in shard order within each. */
export function splitByInstance(lanes: Uint32Array, instances: number): InstancePairs[] {
  const rows = lanes.length / HASH_LANES;
  const owner = new Uint32Array(rows);
  const counts = new Uint32Array(instances);
  for (let row = 0; row < rows; row++) {
    const instance = instanceOf(lanes, row * HASH_LANES, instances);
    owner[row] = instance;
    counts[instance] = (counts[instance] ?? 0) + 1;
  }
  const split = [...counts].map((count) => ({
    lanes: new Uint32Array(count * HASH_LANES),
    rows: new Uint32Array(count),
  }));
  const filled = new Uint32Array(instances);
  for (let row = 0; row < rows; row++) {
    const instance = owner[row] as number;
    const part = split[instance] as InstancePairs;
    const at = filled[instance] as number;
    part.lanes.set(lanes.subarray(row * HASH_LANES, (row + 1) * HASH_LANES), at * HASH_LANES);
    part.rows[at] = row;
    filled[instance] = at + 1;
  }
  return split;
}

/**
 * Connects to each `--dedup-redis` URL and checks that it answers, before a run queues any work:
 * a malformed or unreachable one is one line naming it.
 */
export async function checkDedupRedis(urls: readonly string[]): Promise<void> {
  const seen = new Set<string>();
  for (const url of urls) {
    let options: RedisOptions;
    try {
      options = redisOptions(url, "--dedup-redis");
    } catch (error) {
      throw new ConfigError(errorMessage(error));
    }
    const where = `${options.host}:${options.port}/${options.db ?? 0}`;
    if (seen.has(where)) {
      throw new ConfigError(`--dedup-redis: ${redactedUrl(url)} is listed twice`);
    }
    seen.add(where);
    const redis = new Redis({
      ...options,
      lazyConnect: true,
      connectTimeout: 3000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    redis.on("error", () => {});
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      throw new ClipcrawlError(
        "CC_DEDUP_REDIS",
        `--dedup-redis: cannot reach ${redactedUrl(url)} (${errorMessage(error)}); start that Redis or fix the URL`,
      );
    } finally {
      redis.disconnect();
    }
  }
}
