/**
 * The fuzz sweep's kit (test/stage-inputs-fuzz.test.ts): a seeded random source, byte-level
 * mutations that say which bytes of the original they touched, the check that a stage's message
 * is one clear line, peak-memory readings, and the ledger of outcomes per input kind.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { seededUniform } from "../../src/demo/sample/wat-generator.js";

/** Cases per kind are multiplied by FUZZ_SCALE (default 1) for a longer exploratory sweep. */
export function fuzzCases(count: number): number {
  const scale = Number(process.env.FUZZ_SCALE ?? 1);
  return Math.max(1, Math.round(count * (Number.isFinite(scale) && scale > 0 ? scale : 1)));
}

/** The sweep's fixed seed; FUZZ_SEED=N replays another. */
export function fuzzSeed(): number {
  const given = process.env.FUZZ_SEED;
  return given === undefined || given === "" ? 20_261_206 : Number(given) >>> 0;
}

export class FuzzRandom {
  private readonly next: () => number;

  constructor(seed: number) {
    this.next = seededUniform(seed);
  }

  /** An integer in [0, below). */
  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  chance(probability: number): boolean {
    return this.next() < probability;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)] as T;
  }

  bytes(length: number): Buffer {
    return Buffer.from(Array.from({ length }, () => this.int(256)));
  }
}

/** Mutated bytes, and where in the original's coordinates the damage lies. */
export interface Mutation {
  name: string;
  bytes: Buffer;
  /** [start, end) ranges of the original whose bytes changed, vanished or had bytes put between. */
  touched: [number, number][];
  /** From this offset of the original on, nothing is left. */
  cutAt?: number;
}

export const BYTE_MUTATIONS = [
  "bit flips",
  "truncation",
  "byte insertion",
  "byte deletion",
  "splice",
  "burst of 0x00/0xff",
] as const;

/** One of the byte-level mutations, at random places. */
export function mutateBytes(original: Buffer, random: FuzzRandom): Mutation {
  const name = random.pick(BYTE_MUTATIONS);
  const at = random.int(original.length);
  switch (name) {
    case "bit flips": {
      const bytes = Buffer.from(original);
      const touched: [number, number][] = [];
      for (let flip = 0; flip <= random.int(8); flip++) {
        const position = random.int(bytes.length);
        bytes[position] = (bytes[position] as number) ^ (1 << random.int(8));
        touched.push([position, position + 1]);
      }
      return { name, bytes, touched };
    }
    case "truncation":
      return { name, bytes: original.subarray(0, at), touched: [], cutAt: at };
    case "byte insertion":
      return {
        name,
        bytes: Buffer.concat([
          original.subarray(0, at),
          random.bytes(1 + random.int(64)),
          original.subarray(at),
        ]),
        touched: [[Math.max(0, at - 1), at + 1]],
      };
    case "byte deletion": {
      const end = Math.min(original.length, at + 1 + random.int(600));
      return {
        name,
        bytes: Buffer.concat([original.subarray(0, at), original.subarray(end)]),
        touched: [[at, end]],
      };
    }
    case "splice": {
      const from = random.int(original.length);
      const piece = original.subarray(from, Math.min(original.length, from + 1 + random.int(2000)));
      return {
        name,
        bytes: Buffer.concat([original.subarray(0, at), piece, original.subarray(at)]),
        touched: [[Math.max(0, at - 1), at + 1]],
      };
    }
    default: {
      const end = Math.min(original.length, at + 1 + random.int(64));
      const bytes = Buffer.from(original);
      bytes.fill(random.chance(0.5) ? 0 : 0xff, at, end);
      return { name, bytes, touched: [[at, end]] };
    }
  }
}

/** The indices of the spans (one per record, sample, …) that the mutation reached. */
export function touchedSpans(spans: readonly [number, number][], mutation: Mutation): Set<number> {
  const touched = new Set<number>();
  spans.forEach(([start, end], index) => {
    if (mutation.cutAt !== undefined && end > mutation.cutAt) touched.add(index);
    for (const [from, to] of mutation.touched) if (from < end && to > start) touched.add(index);
  });
  return touched;
}

/** The first offset of the original the mutation reached (its length when none). */
export function firstDamage(mutation: Mutation, length: number): number {
  return Math.min(length, mutation.cutAt ?? length, ...mutation.touched.map(([start]) => start));
}

/** What a programming error looks like from outside: a stage must never show one as a reason. */
const INTERNAL_ERROR =
  /\b(TypeError|RangeError|ReferenceError|AssertionError)\b|INTERNAL Error|Cannot read propert|is not a function|is not iterable|Maximum call stack|\[object Object\]|\bundefined\b|^\s+at \S/m;

/** Why a stage's message is not one clear line naming what it is about, or undefined. */
export function unclearMessage(
  message: string,
  mustName: readonly string[] = [],
): string | undefined {
  if (message.trim() === "") return "an empty message";
  if (message.includes("\n")) return `more than one line: ${JSON.stringify(message.slice(0, 300))}`;
  if (INTERNAL_ERROR.test(message)) return `an internal error: ${message.slice(0, 300)}`;
  if (mustName.length > 0 && !mustName.some((name) => message.includes(name)))
    return `names none of ${mustName.join(", ")}: ${message.slice(0, 300)}`;
  return undefined;
}

/** Forgets this process's resident-set high-water mark, where Linux allows it. */
export function resetPeakRss(): void {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
  } catch {
    // Not Linux: the peak then runs from the start of the process.
  }
}

/** This process's peak resident set in bytes (worker threads included) since the last reset. */
export function peakRssBytes(): number {
  try {
    const kilobytes = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    if (kilobytes !== undefined) return Number(kilobytes) * 1024;
  } catch {
    // Not Linux.
  }
  return process.resourceUsage().maxRSS * 1024;
}

export type CaseOutcome = "accepted" | "rejected" | "crash";

export interface KindCounts {
  kind: string;
  cases: number;
  /** The stage read the input and made rows of it. */
  accepted: number;
  /** The stage refused it, or part of it, with one clear line saying what and where. */
  rejected: number;
  crashes: number;
  unaccountedRows: number;
  peakRssBytes: number;
}

/** Outcomes per input kind, and one line per crash or unaccounted row for the assertion. */
export class FuzzLedger {
  readonly kinds = new Map<string, KindCounts>();
  readonly findings: string[] = [];

  private counts(kind: string): KindCounts {
    let counts = this.kinds.get(kind);
    if (counts === undefined) {
      counts = {
        kind,
        cases: 0,
        accepted: 0,
        rejected: 0,
        crashes: 0,
        unaccountedRows: 0,
        peakRssBytes: 0,
      };
      this.kinds.set(kind, counts);
    }
    return counts;
  }

  outcome(kind: string, outcome: CaseOutcome, what: string): void {
    if (process.env.FUZZ_VERBOSE === "1") console.log(`${kind}: ${outcome}: ${what}`);
    const counts = this.counts(kind);
    counts.cases++;
    if (outcome === "crash") {
      counts.crashes++;
      this.findings.push(`${kind}: crash: ${what}`);
    } else counts[outcome]++;
  }

  unaccounted(kind: string, rows: number, what: string): void {
    if (rows === 0) return;
    this.counts(kind).unaccountedRows += rows;
    this.findings.push(`${kind}: ${rows} rows unaccounted for: ${what}`);
  }

  peak(kind: string, bytes: number): void {
    const counts = this.counts(kind);
    counts.peakRssBytes = Math.max(counts.peakRssBytes, bytes);
  }

  table(): string {
    const header = [
      "input kind",
      "cases",
      "accepted",
      "rejected (clear error)",
      "crashes",
      "unaccounted rows",
      "peak RSS MiB",
    ];
    const rows = [...this.kinds.values()].map((counts) => [
      counts.kind,
      String(counts.cases),
      String(counts.accepted),
      String(counts.rejected),
      String(counts.crashes),
      String(counts.unaccountedRows),
      String(Math.round(counts.peakRssBytes / 2 ** 20)),
    ]);
    const total = [...this.kinds.values()];
    const sum = (pick: (counts: KindCounts) => number) =>
      String(total.reduce((all, counts) => all + pick(counts), 0));
    rows.push([
      "total",
      sum((counts) => counts.cases),
      sum((counts) => counts.accepted),
      sum((counts) => counts.rejected),
      sum((counts) => counts.crashes),
      sum((counts) => counts.unaccountedRows),
      String(Math.round(Math.max(0, ...total.map((counts) => counts.peakRssBytes)) / 2 ** 20)),
    ]);
    const lines = [header, ...rows].map((cells) => `| ${cells.join(" | ")} |`);
    lines.splice(1, 0, `|${header.map(() => "---").join("|")}|`);
    return lines.join("\n");
  }
}
