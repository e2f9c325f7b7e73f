/**
 * extract's cross-file (url, text) dedup shared by every worker of a distributed run: a growing
 * Bloom filter in Redis bitmaps, changed only by Lua scripts, so each batch is applied atomically.
 *
 * Same filter, same answers: the series of filters, their sizes and numbers of hashes come from
 * the same capacity and false-positive rate as the local filter (bloom-filter.ts's
 * GrowingBloomFilter), and the bit positions from the pair's 128-bit hash by the same double
 * hashing — a test runs both on the same pairs and compares every answer. So the false-positive
 * guarantee is the local one, however many pairs the run holds.
 *
 * Same order, same output: shards take turns in input order (a cursor in Redis), as the local
 * runner commits them, so which copy of a duplicate survives does not depend on which worker was
 * faster, and a distributed extract writes the same shards as a local one. A shard's pairs go in
 * as batches; each batch's answer is stored, so a retry after a crash (the worker died after its
 * turn) gets the same answer back and writes the same shard. A shard whose input cannot be read
 * gives up its turn (`pass`); if it is read on a later try, it is filtered against everything
 * added so far, out of turn — as a local re-run would do.
 *
 * Same bits: a filter's bit i is stored where the local filter keeps it (bit `i & 7` of byte
 * `i >> 3`, counted from the low end, where Redis's SETBIT counts from the high end), so a saved
 * local filter's bytes go into Redis as they are (`restore`), and come back out as they are
 * (`held`), a slice at a time.
 */
import type { Redis } from "ioredis";
import {
  type BloomFilterReport,
  type BloomSeries,
  bloomLayer,
  bloomSizing,
  positionBase,
} from "../../formats/bloom-filter.js";
import { HASH_LANES } from "../../formats/pair-hash.js";
import type { PairFilterBits, SharedPairFilter } from "../../shard/stage-definition.js";
import type { RunKeys } from "./queue-names.js";

/** Bits per Redis string (a string holds at most 2^32 bits; half keeps each key at 256 MB). */
const SEGMENT_BITS = 2 ** 31;
const SEGMENT_BYTES = SEGMENT_BITS / 8;
/** Bytes a GETRANGE or SETRANGE moves when a filter is restored or read out. */
const TRANSFER_BYTES = 1024 * 1024;
const DEFAULT_BATCH_PAIRS = 2048;
/** ARGV entries per filter of the series: bits, hashes, capacity, first key, segments. */
const LAYER_ARGS = 5;

// The growing filter of bloom-filter.ts (GrowingBloomFilter), pair by pair in the same order:
// a pair is a duplicate when an older filter has it or the newest one had all its bits set; when
// the newest is full, the next one starts. Bit positions come from each pair's h1, h2 (positionBase)
// by the same double hashing; fmod is exact on integers below 2^53, as JavaScript's % is.
//
// KEYS: cursor, results (hash: batch → dropped rows), passed (set), layers (hash), then each
// filter's segments. ARGV: shard index, batch, last ("1"/"0"; "free": no turns, the cursor is
// neither read nor moved), filters known to the caller,
// segment bits, first row, then LAYER_ARGS per filter (those known and the next one), then h1, h2
// of every pair as little-endian doubles in one string (nothing to format or parse per number).
// Answers {1, rows} replayed, {2, rows} applied now, {0, cursor} not this shard's turn,
// {3, filters} the caller's count of filters is stale.
const ADD_BATCH = `
local index = tonumber(ARGV[1])
local stored = redis.call('HGET', KEYS[2], ARGV[2])
if stored then return {1, stored} end
local late = false
if ARGV[3] ~= 'free' then
  local cursor = tonumber(redis.call('GET', KEYS[1]) or '0')
  late = cursor > index and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1
  if cursor ~= index and not late then return {0, tostring(cursor)} end
end
local known = tonumber(ARGV[4])
local layerCount = tonumber(redis.call('HGET', KEYS[4], 'layers') or '1')
if layerCount ~= known then return {3, tostring(layerCount)} end
local segmentBits = tonumber(ARGV[5])
local firstRow = tonumber(ARGV[6])
local layers = {}
local at = 7
for l = 0, known do
  layers[l] = {
    bits = tonumber(ARGV[at]), hashes = tonumber(ARGV[at + 1]), capacity = tonumber(ARGV[at + 2]),
    key = tonumber(ARGV[at + 3]), segments = tonumber(ARGV[at + 4]),
  }
  at = at + ${LAYER_ARGS}
end
-- The local filter's bit i is bit i & 7 of its byte counted from the low end; SETBIT counts
-- from the high end.
local function redisBit(position)
  local bit = math.fmod(position, 8)
  return position - bit + 7 - bit
end
local function keyOf(layer, position)
  local segment = math.floor(position / segmentBits)
  return KEYS[layer.key + segment], redisBit(position - segment * segmentBits)
end
local function has(layer, h1, h2)
  local position = math.fmod(h1, layer.bits)
  local step = math.fmod(h2, layer.bits)
  if step == 0 then step = 1 end
  for i = 1, layer.hashes do
    local key, offset = keyOf(layer, position)
    if redis.call('GETBIT', key, offset) == 0 then return false end
    position = math.fmod(position + step, layer.bits)
  end
  return true
end
local function add(layer, h1, h2)
  local position = math.fmod(h1, layer.bits)
  local step = math.fmod(h2, layer.bits)
  if step == 0 then step = 1 end
  local new = false
  if layer.segments == 1 then
    local fields = {}
    for i = 1, layer.hashes do
      fields[#fields + 1] = 'SET'
      fields[#fields + 1] = 'u1'
      fields[#fields + 1] = redisBit(position)
      fields[#fields + 1] = 1
      position = math.fmod(position + step, layer.bits)
    end
    for _, old in ipairs(redis.call('BITFIELD', KEYS[layer.key], unpack(fields))) do
      if old == 0 then new = true end
    end
  else
    for i = 1, layer.hashes do
      local key, offset = keyOf(layer, position)
      if redis.call('SETBIT', key, offset, 1) == 0 then new = true end
      position = math.fmod(position + step, layer.bits)
    end
  end
  return new
end
local newest = known - 1
local items = tonumber(redis.call('HGET', KEYS[4], 'items:' .. newest) or '0')
local dropped = {}
local packed = ARGV[at]
for j = 0, #packed / 16 - 1 do
  local h1, h2 = struct.unpack('<dd', packed, 16 * j + 1)
  local seen = false
  for l = 0, newest - 1 do
    if has(layers[l], h1, h2) then seen = true break end
  end
  if not seen then seen = not add(layers[newest], h1, h2) end
  if seen then
    dropped[#dropped + 1] = firstRow + j
  else
    items = items + 1
    if items >= layers[newest].capacity then
      if newest == known then return redis.error_reply('the dedup filter grew twice in one batch') end
      redis.call('HSET', KEYS[4], 'items:' .. newest, items)
      newest = newest + 1
      items = 0
      redis.call('HSET', KEYS[4], 'layers', newest + 1)
    end
  end
end
local rows = table.concat(dropped, ',')
redis.call('HSET', KEYS[4], 'items:' .. newest, items)
redis.call('HSET', KEYS[2], ARGV[2], rows)
if ARGV[3] == '1' and not late then redis.call('SET', KEYS[1], index + 1) end
return {2, rows}
`;

// KEYS: cursor, passed. ARGV: shard index. Answers 1 when the turn is past the shard, else 0.
const PASS_TURN = `
local index = tonumber(ARGV[1])
local cursor = tonumber(redis.call('GET', KEYS[1]) or '0')
if cursor == index then
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('SET', KEYS[1], index + 1)
  return 1
end
if cursor > index then return 1 end
return 0
`;

/** Thrown by `whileWaiting` to give up waiting (a worker frees its slot; the job runs again later). */
export class TurnNotComing extends Error {}

export interface RedisPairFilterOptions {
  capacity: number;
  falsePositiveRate: number;
  /** Pairs per script call (Redis runs nothing else during one). */
  batchPairs?: number;
  /**
   * Called while shard `waitingFor` (the cursor) has the turn, about every 200 ms: it may pass the
   * turn of a shard whose job is gone for good, or throw TurnNotComing.
   */
  whileWaiting?: (waitingFor: number) => Promise<void>;
  /**
   * false: no turns, each batch is applied as it comes (sharded-pair-filter.ts holds the turns
   * itself, or has none). Default true.
   */
  turns?: boolean;
}

export class RedisPairFilter implements SharedPairFilter {
  private readonly batchPairs: number;
  /** Filters in the series as last seen; a script call with a stale count is told the new one. */
  private knownLayers = 1;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RunKeys,
    private readonly options: RedisPairFilterOptions,
  ) {
    // At most one new filter a batch: none holds fewer pairs than a batch.
    this.batchPairs = Math.min(options.batchPairs ?? DEFAULT_BATCH_PAIRS, options.capacity);
  }

  /** Filter `layer` of the series: bloom-filter.ts's sizing, so both have the same bits. */
  private layer(layer: number): { bits: number; hashes: number; capacity: number } {
    const { capacity, falsePositiveRate } = bloomLayer(
      this.options.capacity,
      this.options.falsePositiveRate,
      layer,
    );
    return { ...bloomSizing(capacity, falsePositiveRate), capacity };
  }

  async duplicates(index: number, lanes: Uint32Array): Promise<Uint32Array> {
    const rows = lanes.length / HASH_LANES;
    const batches = Math.max(1, Math.ceil(rows / this.batchPairs));
    const dropped: number[] = [];
    const bases = Buffer.alloc(rows * 16);
    for (let row = 0; row < rows; row++) {
      const [h1, h2] = positionBase(lanes, row * HASH_LANES);
      bases.writeDoubleLE(h1, row * 16);
      bases.writeDoubleLE(h2, row * 16 + 8);
    }
    for (let batch = 0; batch < batches; batch++) {
      const first = batch * this.batchPairs;
      const end = Math.min(rows, first + this.batchPairs);
      const answer = await this.untilTurn(async () => {
        for (;;) {
          const known = this.knownLayers;
          const keys = [
            this.keys.extractCursor(),
            this.keys.extractResults(index),
            this.keys.extractPassed(),
            this.keys.bloomLayers(),
          ];
          const layerArgs: number[] = [];
          for (let layer = 0; layer <= known; layer++) {
            const { bits, hashes, capacity } = this.layer(layer);
            const segments = Math.ceil(bits / SEGMENT_BITS);
            layerArgs.push(bits, hashes, capacity, keys.length + 1, segments);
            for (let segment = 0; segment < segments; segment++) {
              keys.push(this.keys.bloomSegment(layer, segment));
            }
          }
          const args = [
            index,
            batch,
            this.options.turns === false ? "free" : batch === batches - 1 ? "1" : "0",
            known,
            SEGMENT_BITS,
            first,
            ...layerArgs,
            bases.subarray(first * 16, end * 16),
          ];
          const reply = (await this.redis.eval(ADD_BATCH, keys.length, ...keys, ...args)) as [
            number,
            string,
          ];
          // Another shard added a filter since this one last looked: again with the new count.
          if (reply[0] !== 3) return reply;
          this.knownLayers = Number(reply[1]);
        }
      });
      if (answer !== "") for (const row of answer.split(",")) dropped.push(Number(row));
    }
    return Uint32Array.from(dropped);
  }

  async replay(index: number, lanes: Uint32Array): Promise<void> {
    await this.duplicates(index, lanes);
    await this.redis.sadd(this.keys.extractReplayed(), index);
  }

  async replayedShards(): Promise<number> {
    return this.redis.scard(this.keys.extractReplayed());
  }

  async restoredShards(): Promise<number> {
    return Number((await this.redis.get(this.keys.extractRestored())) ?? 0);
  }

  async restore(saved: PairFilterBits, shards: number): Promise<void> {
    const { series } = saved;
    if (
      series.capacity !== this.options.capacity ||
      series.falsePositiveRate !== this.options.falsePositiveRate
    ) {
      throw new Error(
        `the saved filter is sized for ${series.capacity} pairs at ${series.falsePositiveRate}, this run's for ${this.options.capacity} at ${this.options.falsePositiveRate}`,
      );
    }
    const [cursor, layers] = await Promise.all([
      this.redis.get(this.keys.extractCursor()),
      this.redis.exists(this.keys.bloomLayers()),
    ]);
    if (cursor !== null || layers > 0) throw new Error("the run's dedup filter is in use already");
    try {
      await this.writeBits(saved);
    } catch (error) {
      // Half a filter would answer wrongly: the run starts from an empty one instead.
      const segments = series.items.flatMap((_, layer) =>
        Array.from({ length: Math.ceil(this.layer(layer).bits / SEGMENT_BITS) }, (_, segment) =>
          this.keys.bloomSegment(layer, segment),
        ),
      );
      await this.redis.unlink(...segments);
      throw error;
    }
    const counts: Record<string, number> = { layers: series.items.length };
    for (const [layer, items] of series.items.entries()) counts[`items:${layer}`] = items;
    await this.redis
      .multi()
      .hset(this.keys.bloomLayers(), counts)
      .set(this.keys.extractRestored(), shards)
      .set(this.keys.extractCursor(), shards)
      .exec();
  }

  private async writeBits(saved: PairFilterBits): Promise<void> {
    for (const layer of saved.series.items.keys()) {
      const bytes = Math.ceil(this.layer(layer).bits / 8);
      for (let at = 0; at < bytes; ) {
        const segment = Math.floor(at / SEGMENT_BYTES);
        const within = at - segment * SEGMENT_BYTES;
        const length = Math.min(TRANSFER_BYTES, bytes - at, SEGMENT_BYTES - within);
        const slice = await saved.read(layer, at, length);
        if (slice.byteLength !== length) {
          throw new Error(`the saved filter ${layer} ends at byte ${at + slice.byteLength}`);
        }
        // A segment's missing tail reads as zeros: all-zero slices need not be sent.
        if (slice.some((byte) => byte !== 0)) {
          await this.redis.setrange(
            this.keys.bloomSegment(layer, segment),
            within,
            Buffer.from(slice.buffer, slice.byteOffset, slice.byteLength),
          );
        }
        at += length;
      }
    }
  }

  async held(): Promise<{ shards: number; bits: PairFilterBits } | undefined> {
    const [cursor, passed, stored] = await Promise.all([
      this.redis.get(this.keys.extractCursor()),
      this.redis.scard(this.keys.extractPassed()),
      this.redis.hgetall(this.keys.bloomLayers()),
    ]);
    if (passed > 0) return undefined;
    const series: BloomSeries = {
      capacity: this.options.capacity,
      falsePositiveRate: this.options.falsePositiveRate,
      items: Array.from({ length: Number(stored.layers ?? 1) }, (_, layer) =>
        Number(stored[`items:${layer}`] ?? 0),
      ),
    };
    return {
      shards: Number(cursor ?? 0),
      bits: { series, read: (layer, offset, length) => this.readBits(layer, offset, length) },
    };
  }

  /** `length` bytes of filter `layer` from `offset`, across its segments; zeros past their ends. */
  private async readBits(layer: number, offset: number, length: number): Promise<Uint8Array> {
    const bytes = Buffer.alloc(length);
    for (let at = 0; at < length; ) {
      const segment = Math.floor((offset + at) / SEGMENT_BYTES);
      const within = offset + at - segment * SEGMENT_BYTES;
      const take = Math.min(length - at, SEGMENT_BYTES - within);
      const stored = await this.redis.getrangeBuffer(
        this.keys.bloomSegment(layer, segment),
        within,
        within + take - 1,
      );
      stored.copy(bytes, at);
      at += take;
    }
    return bytes;
  }

  /** Shard `index` adds nothing: its turn passes, once it has come. */
  async pass(index: number): Promise<void> {
    await this.untilTurn(async () => [(await this.passTurn(index)) ? 1 : 0, ""]);
  }

  /** Passes the turn of shard `index` if it has it now; true when the turn is past it. */
  async passTurn(index: number): Promise<boolean> {
    const answer = await this.redis.eval(
      PASS_TURN,
      2,
      this.keys.extractCursor(),
      this.keys.extractPassed(),
      index,
    );
    return answer === 1;
  }

  async report(): Promise<BloomFilterReport> {
    const stored = await this.redis.hgetall(this.keys.bloomLayers());
    const layers = Number(stored.layers ?? 1);
    let bits = 0;
    let bytes = 0;
    let items = 0;
    let passes = 1;
    for (let layer = 0; layer < layers; layer++) {
      const sizing = this.layer(layer);
      const held = Number(stored[`items:${layer}`] ?? 0);
      bits += sizing.bits;
      bytes += Math.ceil(sizing.bits / 8);
      items += held;
      passes *= 1 - (1 - Math.exp((-sizing.hashes * held) / sizing.bits)) ** sizing.hashes;
    }
    return {
      capacity: this.options.capacity,
      targetFalsePositiveRate: this.options.falsePositiveRate,
      bits,
      hashes: this.layer(0).hashes,
      bytes,
      items,
      estimatedFalsePositiveRate: 1 - passes,
      layers,
    };
  }

  /** Calls `attempt` until it is the shard's turn; returns the answer's rows. */
  private async untilTurn(attempt: () => Promise<[number, string]>): Promise<string> {
    let pause = 10;
    let sinceCheck = 0;
    for (;;) {
      const [status, payload] = await attempt();
      if (status !== 0) return payload;
      await new Promise((resolve) => setTimeout(resolve, pause));
      sinceCheck += pause;
      pause = Math.min(200, pause * 2);
      if (sinceCheck >= 200 && this.options.whileWaiting !== undefined) {
        sinceCheck = 0;
        await this.options.whileWaiting(Number(payload));
      }
    }
  }
}
