/**
 * extract's cross-file (url, text) dedup shared by every worker of a distributed run: a Bloom
 * filter in Redis bitmaps, changed only by Lua scripts, so each batch is applied atomically.
 *
 * Same filter, same answers: its size and number of hashes come from the same capacity and
 * false-positive rate as the local filter (bloom-filter.ts), and the bit positions from the pair's
 * 128-bit hash by the same double hashing — a test runs both on the same pairs and compares every
 * answer. So the false-positive guarantee is the local one.
 *
 * Same order, same output: shards take turns in input order (a cursor in Redis), as the local
 * runner commits them, so which copy of a duplicate survives does not depend on which worker was
 * faster, and a distributed extract writes the same shards as a local one. A shard's pairs go in
 * as batches; each batch's answer is stored, so a retry after a crash (the worker died after its
 * turn) gets the same answer back and writes the same shard. A shard whose input cannot be read
 * gives up its turn (`pass`); if it is read on a later try, it is filtered against everything
 * added so far, out of turn — as a local re-run would do.
 */
import type { Redis } from "ioredis";
import type { BloomFilterReport } from "../../formats/bloom-filter.js";
import { HASH_LANES } from "../../formats/pair-hash.js";
import type { SharedPairFilter } from "../../shard/stage-definition.js";
import type { RunKeys } from "./queue-names.js";

/** Bits per Redis string (a string holds at most 2^32 bits; half keeps each key at 256 MB). */
const SEGMENT_BITS = 2 ** 31;
const DEFAULT_BATCH_PAIRS = 2048;

// KEYS: cursor, results (hash: batch → dropped rows), passed (set), items, bloom segments…
// ARGV: shard index, batch, last ("1"/"0"), hashes, segment bits, first row, then every pair's
// bit positions (hashes a pair).
// Answers {1, rows} replayed, {2, rows} applied now, {0, cursor} not this shard's turn.
const ADD_BATCH = `
local index = tonumber(ARGV[1])
local stored = redis.call('HGET', KEYS[2], ARGV[2])
if stored then return {1, stored} end
local cursor = tonumber(redis.call('GET', KEYS[1]) or '0')
local late = cursor > index and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1
if cursor ~= index and not late then return {0, tostring(cursor)} end
local hashes = tonumber(ARGV[4])
local segmentBits = tonumber(ARGV[5])
local firstRow = tonumber(ARGV[6])
local count = (#ARGV - 6) / hashes
local dropped = {}
local added = 0
local single = #KEYS == 5
-- Pairs per BITFIELD call: its SETs run in order, so a pair sees the bits of those before it.
local chunk = math.floor(1000 / hashes)
for first = 0, count - 1, chunk do
  local last = math.min(count - 1, first + chunk - 1)
  local old
  if single then
    local fields = {}
    for a = 7 + first * hashes, 6 + (last + 1) * hashes do
      fields[#fields + 1] = 'SET'
      fields[#fields + 1] = 'u1'
      fields[#fields + 1] = ARGV[a]
      fields[#fields + 1] = 1
    end
    old = redis.call('BITFIELD', KEYS[5], unpack(fields))
  else
    old = {}
    for a = 7 + first * hashes, 6 + (last + 1) * hashes do
      local position = tonumber(ARGV[a])
      local segment = math.floor(position / segmentBits)
      old[#old + 1] = redis.call('SETBIT', KEYS[5 + segment], position - segment * segmentBits, 1)
    end
  end
  for j = first, last do
    local new = false
    for i = 1, hashes do
      if old[(j - first) * hashes + i] == 0 then new = true end
    end
    if new then added = added + 1 else dropped[#dropped + 1] = firstRow + j end
  end
end
local rows = table.concat(dropped, ',')
redis.call('HSET', KEYS[2], ARGV[2], rows)
redis.call('INCRBY', KEYS[4], added)
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
}

export class RedisPairFilter implements SharedPairFilter {
  readonly bits: number;
  readonly hashes: number;
  private readonly batchPairs: number;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RunKeys,
    private readonly options: RedisPairFilterOptions,
  ) {
    // bloom-filter.ts's sizing, so both filters have the same bits and hashes.
    this.bits = Math.ceil(
      (-options.capacity * Math.log(options.falsePositiveRate)) / Math.LN2 ** 2,
    );
    this.hashes = Math.max(1, Math.round((this.bits / options.capacity) * Math.LN2));
    this.batchPairs = options.batchPairs ?? DEFAULT_BATCH_PAIRS;
  }

  async duplicates(index: number, lanes: Uint32Array): Promise<Uint32Array> {
    const rows = lanes.length / HASH_LANES;
    const batches = Math.max(1, Math.ceil(rows / this.batchPairs));
    const dropped: number[] = [];
    const segments = Math.ceil(this.bits / SEGMENT_BITS);
    const keys = [
      this.keys.extractCursor(),
      this.keys.extractResults(index),
      this.keys.extractPassed(),
      this.keys.bloomItems(),
      ...Array.from({ length: segments }, (_, segment) => this.keys.bloomSegment(segment)),
    ];
    for (let batch = 0; batch < batches; batch++) {
      const first = batch * this.batchPairs;
      const end = Math.min(rows, first + this.batchPairs);
      const args: (string | number)[] = [
        index,
        batch,
        batch === batches - 1 ? "1" : "0",
        this.hashes,
        SEGMENT_BITS,
        first,
      ];
      for (let row = first; row < end; row++) {
        const at = row * HASH_LANES;
        let position = firstPosition(lanes, at, this.bits);
        const step = stepOf(lanes, at, this.bits);
        for (let i = 0; i < this.hashes; i++) {
          args.push(position);
          position = (position + step) % this.bits;
        }
      }
      const answer = await this.untilTurn(
        () =>
          this.redis.eval(ADD_BATCH, keys.length, ...keys, ...args) as Promise<[number, string]>,
      );
      if (answer !== "") for (const row of answer.split(",")) dropped.push(Number(row));
    }
    return Uint32Array.from(dropped);
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
    const items = Number((await this.redis.get(this.keys.bloomItems())) ?? 0);
    return {
      capacity: this.options.capacity,
      targetFalsePositiveRate: this.options.falsePositiveRate,
      bits: this.bits,
      hashes: this.hashes,
      bytes: Math.ceil(this.bits / 8),
      items,
      estimatedFalsePositiveRate: (1 - Math.exp((-this.hashes * items) / this.bits)) ** this.hashes,
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

// bloom-filter.ts's double hashing (Kirsch–Mitzenmacher), from the same 53-bit parts of the lanes.
function firstPosition(lanes: Uint32Array, at: number, bits: number): number {
  return ((lanes[at] ?? 0) * 2 ** 21 + ((lanes[at + 1] ?? 0) >>> 11)) % bits;
}

function stepOf(lanes: Uint32Array, at: number, bits: number): number {
  return ((lanes[at + 2] ?? 0) * 2 ** 21 + ((lanes[at + 3] ?? 0) >>> 11)) % bits || 1;
}
