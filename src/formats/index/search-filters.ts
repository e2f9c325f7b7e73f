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

/** What the filters read: score columns with their sorted values, languages as small codes. */
export class FilterColumns {
  private readonly scores = new Map<string, ScoreColumn>();
  private readonly languageCodes: Uint16Array;
  private readonly languageIds = new Map<string, number>();
  private readonly languageCounts: number[] = [];
  /** The ids of each language code, ascending. */
  private readonly languageRows: Uint32Array[] = [];
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
      if (values === undefined) continue;
      this.scores.set(column, scoreColumn(values));
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
    const filled = new Uint32Array(this.languageCounts.length);
    for (const count of this.languageCounts) this.languageRows.push(new Uint32Array(count));
    for (let id = 0; id < rows; id++) {
      const code = this.languageCodes[id] as number;
      (this.languageRows[code] as Uint32Array)[filled[code] as number] = id;
      filled[code] = (filled[code] as number) + 1;
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
      const { values, sorted, order, nulls } = score;
      const [from, to] =
        bound === "max"
          ? [0, upperBound(sorted, threshold)]
          : [lowerBound(sorted, threshold), sorted.length];
      checks.push(
        bound === "max"
          ? (id) => !((values[id] as number) > threshold)
          : (id) => !((values[id] as number) < threshold),
      );
      const count = to - from + nulls.length;
      sources.push({ count, ids: () => concat([order.subarray(from, to), nulls]) });
      selectivity *= count / Math.max(1, rows);
    }
    if (filters?.languages !== undefined && filters.languages !== null) {
      const wanted = new Uint8Array(this.languageCounts.length);
      const lists: Uint32Array[] = [];
      let count = 0;
      for (const language of filters.languages) {
        const code = this.languageIds.get(language);
        if (code !== undefined && wanted[code] === 0) {
          wanted[code] = 1;
          count += this.languageCounts[code] as number;
          lists.push(this.languageRows[code] as Uint32Array);
        }
      }
      const codes = this.languageCodes;
      checks.push((id) => wanted[codes[id] as number] === 1);
      sources.push({ count, ids: () => concat(lists) });
      selectivity *= count / Math.max(1, rows);
    }
    const removed = this.removed;
    if (removed !== undefined && this.removedCount > 0) {
      const live = rows - this.removedCount;
      checks.push((id) => removed[id] === 0);
      sources.push({
        count: live,
        ids: () => {
          const ids = new Uint32Array(live);
          let next = 0;
          for (let id = 0; id < rows; id++) if (removed[id] === 0) ids[next++] = id;
          return ids;
        },
      });
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

interface ScoreColumn {
  values: Float64Array;
  /** The non-NULL values, ascending. */
  sorted: Float64Array;
  /** The ids of `sorted`'s values, in the same order. */
  order: Uint32Array;
  /** The ids whose value is NULL: they pass every threshold. */
  nulls: Uint32Array;
}

function scoreColumn(values: Float64Array): ScoreColumn {
  const present: number[] = [];
  const nulls: number[] = [];
  for (let id = 0; id < values.length; id++) {
    if (Number.isNaN(values[id] as number)) nulls.push(id);
    else present.push(id);
  }
  const order = Uint32Array.from(present).sort(
    (a, b) => (values[a] as number) - (values[b] as number) || a - b,
  );
  const sorted = Float64Array.from(order, (id) => values[id] as number);
  return { values, sorted, order, nulls: Uint32Array.from(nulls) };
}

/** One new array holding the lists one after another (the caller may reuse it). */
function concat(lists: readonly Uint32Array[]): Uint32Array {
  const out = new Uint32Array(lists.reduce((sum, list) => sum + list.length, 0));
  let offset = 0;
  for (const list of lists) {
    out.set(list, offset);
    offset += list.length;
  }
  return out;
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
