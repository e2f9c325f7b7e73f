/**
 * The filters a query can ask the index to apply inside the search, so that a filtered query
 * still returns k rows: score thresholds, a language set, and one row per near-duplicate group.
 * A row whose score is NULL (no head scored it) passes that score's threshold: the index makes
 * no claim it has no number for.
 *
 * Each filter also has a selectivity, read from per-column sorted values and counts kept in
 * memory, so the query planner (clip-index.ts) can choose between the graph with over-fetch and
 * exact search over the rows that pass.
 */
import type { MetadataColumns } from "./metadata-columns.js";

export interface SearchFilters {
  /** Keep rows whose punsafe (NSFW probability) is at most this. */
  maxPunsafe?: number;
  /** Keep rows whose pwatermark is at most this. */
  maxPwatermark?: number;
  /** Keep rows whose ptoxic is at most this. */
  maxPtoxic?: number;
  /** Keep rows whose AESTHETIC_SCORE is at least this. */
  minAestheticScore?: number;
  /** Keep rows whose LANGUAGE is one of these ("" for no detected language). */
  languages?: readonly string[];
  /** Keep only the best row of each near-duplicate group (clip-back's `deduplicate`). */
  deduplicate?: boolean;
}

export interface CompiledFilter {
  /** No row-level condition (deduplication aside). */
  readonly trivial: boolean;
  readonly deduplicate: boolean;
  /** Fraction of rows expected to pass, deduplication included (independent conditions). */
  readonly selectivity: number;
  /** How many rows `candidates` gives: the rows passing the most selective single condition. */
  readonly candidateCount: number;
  accepts(id: number): boolean;
  /** The rows that pass every condition, ascending: what exact search scores. */
  passing(): Uint32Array;
}

type ScoreBound = { column: string; bound: "max" | "min" };

const SCORE_FILTERS: Record<
  "maxPunsafe" | "maxPwatermark" | "maxPtoxic" | "minAestheticScore",
  ScoreBound
> = {
  maxPunsafe: { column: "punsafe", bound: "max" },
  maxPwatermark: { column: "pwatermark", bound: "max" },
  maxPtoxic: { column: "ptoxic", bound: "max" },
  minAestheticScore: { column: "AESTHETIC_SCORE", bound: "min" },
};

export const FILTER_COLUMNS = ["punsafe", "pwatermark", "ptoxic", "AESTHETIC_SCORE", "LANGUAGE"];

/**
 * What the filters read: each score column as its sorted values and each row's rank among them
 * (12 bytes a row; a column no row has a value for is left out), languages as small codes.
 * The rows that pass a condition are found by a scan of the ranks or codes when exact search
 * needs them, rather than kept listed.
 */
export class FilterColumns {
  private readonly scores = new Map<string, ScoreColumn>();
  private readonly languageCodes: Uint16Array;
  private readonly languageIds = new Map<string, number>();
  private readonly languageCounts: number[] = [];
  /** 1 for a row a tombstone removed (src/formats/tombstones.ts): no search returns it. */
  private removed: Uint8Array | undefined;
  private removedCount = 0;

  constructor(
    readonly rows: number,
    columns: MetadataColumns,
    private readonly groups: Uint32Array,
    readonly groupCount: number,
  ) {
    for (const { column } of Object.values(SCORE_FILTERS)) {
      const values = columns.numbers(column);
      const score = values === undefined ? undefined : scoreColumn(values);
      if (score !== undefined) this.scores.set(column, score);
    }
    this.languageCodes = new Uint16Array(rows);
    for (let id = 0; id < rows; id++) {
      const language = columns.text("LANGUAGE", id);
      let code = this.languageIds.get(language);
      if (code === undefined) {
        code = this.languageCounts.length;
        this.languageIds.set(language, code);
        this.languageCounts.push(0);
      }
      this.languageCodes[id] = code;
      this.languageCounts[code] = (this.languageCounts[code] as number) + 1;
    }
  }

  group(id: number): number {
    return this.groups[id] as number;
  }

  /** Sets the removed rows (one byte a row, 1: removed); undefined: none. */
  setRemoved(removed: Uint8Array | undefined): void {
    this.removed = removed;
    this.removedCount = removed === undefined ? 0 : removed.reduce((sum, flag) => sum + flag, 0);
  }

  isRemoved(id: number): boolean {
    return this.removed?.[id] === 1;
  }

  get removedRows(): number {
    return this.removedCount;
  }

  compile(filters: SearchFilters | undefined): CompiledFilter {
    const rows = this.rows;
    const checks: ((id: number) => boolean)[] = [];
    // Each condition's passing rows, as a lazy list, to drive exact search from the smallest.
    const sources: { count: number; ids: () => Uint32Array }[] = [];
    let selectivity = 1;
    for (const [name, { column, bound }] of Object.entries(SCORE_FILTERS)) {
      const threshold = filters?.[name as keyof typeof SCORE_FILTERS];
      if (threshold === undefined || threshold === null) continue;
      if (typeof threshold !== "number" || Number.isNaN(threshold)) {
        throw new RangeError(`filter ${name} must be a number, got ${String(threshold)}`);
      }
      const score = this.scores.get(column);
      if (score === undefined) continue;
      const { sorted, ranks, nulls } = score;
      const [from, to] =
        bound === "max"
          ? [0, upperBound(sorted, threshold)]
          : [lowerBound(sorted, threshold), sorted.length];
      // A NULL score (rank NULL_RANK) passes: above every `to`, so `max` tests it apart.
      const check =
        bound === "max"
          ? (id: number) => {
              const rank = ranks[id] as number;
              return rank < to || rank === NULL_RANK;
            }
          : (id: number) => (ranks[id] as number) >= from;
      checks.push(check);
      const count = to - from + nulls;
      sources.push({ count, ids: () => idsWhere(rows, count, check) });
      selectivity *= count / Math.max(1, rows);
    }
    if (filters?.languages !== undefined && filters.languages !== null) {
      const wanted = new Uint8Array(this.languageCounts.length);
      let count = 0;
      for (const language of filters.languages) {
        const code = this.languageIds.get(language);
        if (code !== undefined && wanted[code] === 0) {
          wanted[code] = 1;
          count += this.languageCounts[code] as number;
        }
      }
      const codes = this.languageCodes;
      const check = (id: number) => wanted[codes[id] as number] === 1;
      checks.push(check);
      sources.push({ count, ids: () => idsWhere(rows, count, check) });
      selectivity *= count / Math.max(1, rows);
    }
    const removed = this.removed;
    if (removed !== undefined && this.removedCount > 0) {
      const live = rows - this.removedCount;
      checks.push((id) => removed[id] === 0);
      sources.push({ count: live, ids: () => idsWhere(rows, live, (id) => removed[id] === 0) });
      selectivity *= live / Math.max(1, rows);
    }
    const deduplicate = filters?.deduplicate === true;
    if (deduplicate) selectivity *= this.groupCount / Math.max(1, rows);
    const accepts =
      checks.length === 0
        ? () => true
        : checks.length === 1
          ? (checks[0] as (id: number) => boolean)
          : (id: number) => {
              for (const check of checks) if (!check(id)) return false;
              return true;
            };
    const driver = sources.reduce<(typeof sources)[number] | undefined>(
      (best, source) => (best === undefined || source.count < best.count ? source : best),
      undefined,
    );
    const passing = () => {
      if (driver === undefined) return Uint32Array.from({ length: rows }, (_, id) => id);
      const candidates = driver.ids();
      let kept = 0;
      for (const id of candidates) if (accepts(id)) candidates[kept++] = id;
      return candidates.subarray(0, kept).sort();
    };
    return {
      trivial: checks.length === 0,
      deduplicate,
      selectivity,
      candidateCount: driver?.count ?? rows,
      accepts,
      passing,
    };
  }
}

/** The rank of a row whose score is NULL. */
const NULL_RANK = 0xffff_ffff;

interface ScoreColumn {
  /** The non-NULL values, ascending. */
  sorted: Float64Array;
  /** Each row's position in `sorted` (ties in id order), NULL_RANK for NULL. */
  ranks: Uint32Array;
  /** How many rows are NULL: they pass every threshold. */
  nulls: number;
}

/** The column's sorted values and ranks; undefined when every row is NULL (nothing to filter). */
function scoreColumn(values: Float64Array): ScoreColumn | undefined {
  let present = 0;
  for (const value of values) if (!Number.isNaN(value)) present++;
  if (present === 0) return undefined;
  const order = new Uint32Array(present);
  let next = 0;
  for (let id = 0; id < values.length; id++) {
    if (!Number.isNaN(values[id] as number)) order[next++] = id;
  }
  order.sort((a, b) => (values[a] as number) - (values[b] as number) || a - b);
  const sorted = Float64Array.from(order, (id) => values[id] as number);
  const ranks = new Uint32Array(values.length).fill(NULL_RANK);
  order.forEach((id, rank) => {
    ranks[id] = rank;
  });
  return { sorted, ranks, nulls: values.length - present };
}

/** The ids below `rows` that `passes`, ascending (`count` of them, as the caller counted). */
function idsWhere(rows: number, count: number, passes: (id: number) => boolean): Uint32Array {
  const ids = new Uint32Array(count);
  let next = 0;
  for (let id = 0; id < rows; id++) if (passes(id)) ids[next++] = id;
  return next === count ? ids : ids.subarray(0, next);
}

/** Number of values ≤ target in an ascending array. */
function upperBound(sorted: Float64Array, target: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((sorted[middle] as number) <= target) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Number of values < target in an ascending array. */
function lowerBound(sorted: Float64Array, target: number): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if ((sorted[middle] as number) < target) low = middle + 1;
    else high = middle;
  }
  return low;
}
