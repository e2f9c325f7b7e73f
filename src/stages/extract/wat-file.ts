/**
 * Extraction of one WAT file, inside a worker thread: records → pages → image links → candidate
 * pairs, deduplicated within the file, with the language of each caption, written to the shard's
 * Parquet file. Duplicates across files are decided elsewhere (extract.ts), in input order: the
 * pairs' hashes go out through `decideDuplicates`, and the rows it names are left out.
 */
import { basename } from "node:path";
import { errorMessage, InputError } from "../../errors.js";
import type { LanguageTier } from "../../formats/language-tier.js";
import { HASH_LANES, PairHashes, PairHashSet } from "../../formats/pair-hash.js";
import type { DatasetStorage } from "../../io/storage.js";
import { pageBaseUrl, resolveLink } from "./candidate-pairs.js";
import { CandidateShardWriter } from "./candidate-shard-writer.js";
import type { ExtractConfig } from "./config.js";
import { type DetectedLanguage, detectLanguage, preloadLanguageDetector } from "./language.js";
import { readWarcStream } from "./warc-stream.js";
import {
  emptyWatFileStats,
  type RecordProblem,
  type WatFileResult,
  type WatFileStats,
} from "./wat-file-stats.js";
import type { WatInput } from "./wat-inputs.js";
import {
  linkPathPatterns,
  mentionsHtml,
  readWatPage,
  WatJsonError,
  type WatPage,
} from "./wat-page.js";
import { openWatInput } from "./wat-source.js";

export interface ShardTarget {
  storage: DatasetStorage;
  parquetPath: string;
}

/** Given the hash lanes of the file's pairs, in row order, resolves to the rows to leave out. */
export type DecideDuplicates = (lanes: Uint32Array) => Promise<Uint32Array>;

const MAX_PROBLEM_LINES = 5;
const TIERS: readonly LanguageTier[] = ["en", "multi", "nolang"];

/** The name a pair's `source` column gives its WAT file: the file name, or the URL. */
export function sourceName(input: WatInput): string {
  return input.kind === "file" ? basename(input.path) : input.url;
}

export async function extractWatFile(
  input: WatInput,
  config: ExtractConfig,
  target: ShardTarget,
  decideDuplicates: DecideDuplicates,
): Promise<WatFileResult> {
  const started = performance.now();
  const stats = emptyWatFileStats();
  const problems: string[] = [];
  // DuckDB's database opens on a libuv thread while this one loads the language tables.
  const opening = CandidateShardWriter.open();
  preloadLanguageDetector();
  const writer = await opening;
  try {
    const pairs = new FilePairs(writer);
    let failure: string | undefined;
    let firstProblem: string | undefined;
    const noteProblem = (kind: RecordProblem, message: string): void => {
      stats.badRecords[kind]++;
      firstProblem ??= message;
      if (problems.length < MAX_PROBLEM_LINES) problems.push(`${input.name}: ${message}`);
    };
    let stopped: string | undefined;
    try {
      stopped = await readPairs(input, config, stats, pairs, noteProblem);
    } catch (error) {
      failure =
        error instanceof InputError ? error.message : `${input.name}: ${errorMessage(error)}`;
    }
    if (stopped !== undefined) {
      failure = `${input.name}: ${stopped}`;
    } else if (failure === undefined && stats.records === 0 && stats.compressedBytes > 0) {
      // Bytes, but not one record: whatever this is, it is not a WAT file that was read.
      const why = firstProblem === undefined ? "" : ` (${firstProblem})`;
      failure = `${input.name}: no WARC record could be read from its ${stats.compressedBytes} bytes${why}`;
    }
    const dropped = await decideDuplicates(pairs.hashes.view().slice());
    stats.dropped.duplicate += dropped.length;
    stats.kept = writer.rows - dropped.length;
    stats.languageTiers = pairs.countTiers(dropped);
    const written = failure === undefined || stats.records > 0;
    if (written) await writer.write(target.storage, target.parquetPath, sourceName(input), dropped);
    const hidden =
      Object.values(stats.badRecords).reduce((sum, count) => sum + count, 0) - problems.length;
    if (hidden > 0)
      problems.push(`${input.name}: ${hidden} more bad records (counted in the shard stats)`);
    stats.seconds = (performance.now() - started) / 1000;
    return {
      input: input.name,
      stats,
      problems,
      written,
      ...(failure === undefined ? {} : { failure }),
    };
  } finally {
    await writer.close();
  }
}

/** The pairs of one file: in-file dedup, language per distinct text, rows in the writer. */
class FilePairs {
  readonly hashes = new PairHashes();
  private readonly seen = new PairHashSet();
  /** Each distinct text's id and tier index, as `id * TIERS.length + tier`: no object per text. */
  private readonly textIds = new Map<string, number>();
  private tiers = new Uint8Array(1024);

  constructor(private readonly writer: CandidateShardWriter) {}

  addPage(page: WatPage, recordOffset: number): number {
    return this.writer.addPage({
      pageUrl: page.pageUrl,
      recordOffset,
      warcFilename: page.warcFilename,
      warcOffset: page.warcOffset,
      crawlDate: page.crawlDate,
    });
  }

  /** Adds the pair unless the file had it already; false for a repeat. */
  add(url: string, text: string, pageId: number): boolean {
    const row = this.hashes.add(url, text);
    if (!this.seen.add(this.hashes.view(), row * HASH_LANES)) {
      this.hashes.count--;
      return false;
    }
    let known = this.textIds.get(text);
    if (known === undefined) {
      const language: DetectedLanguage = detectLanguage(text);
      known = this.writer.addText(text, language) * TIERS.length + TIERS.indexOf(language.tier);
      this.textIds.set(text, known);
    }
    const tier = known % TIERS.length;
    this.writer.addPair(url, (known - tier) / TIERS.length, pageId);
    if (row >= this.tiers.length) {
      const bigger = new Uint8Array(this.tiers.length * 2);
      bigger.set(this.tiers);
      this.tiers = bigger;
    }
    this.tiers[row] = tier;
    return true;
  }

  countTiers(dropped: Uint32Array): Record<LanguageTier, number> {
    const counts = { en: 0, multi: 0, nolang: 0 };
    for (let row = 0; row < this.hashes.count; row++)
      counts[TIERS[this.tiers[row] ?? 0] ?? "nolang"]++;
    for (const row of dropped) counts[TIERS[this.tiers[row] ?? 0] ?? "nolang"]--;
    return counts;
  }
}

/** Reads the input to its end, or to what stops the reading: returns why, if anything did. */
async function readPairs(
  input: WatInput,
  config: ExtractConfig,
  stats: WatFileStats,
  pairs: FilePairs,
  noteProblem: (kind: RecordProblem, message: string) => void,
): Promise<string | undefined> {
  const patterns = linkPathPatterns(config.linkPaths);
  const chunks = openWatInput(input, {
    retries: config.retries,
    timeoutSeconds: config.timeoutSeconds,
    allowPrivateNetwork: config.allowPrivateNetwork,
  });
  const events = readWarcStream(countBytes(chunks, stats), {
    maxRecordBytes: config.maxRecordBytes,
  });
  for await (const event of events) {
    if ("failure" in event) return event.failure;
    if ("problem" in event) {
      noteProblem(event.problem.kind, event.problem.message);
      continue;
    }
    const record = event.record;
    stats.records++;
    if (record.type !== "metadata" || !mentionsHtml(record)) continue;
    stats.htmlPages++;
    let page: ReturnType<typeof readWatPage>;
    try {
      page = readWatPage(record, patterns);
    } catch (error) {
      if (!(error instanceof WatJsonError)) throw error;
      noteProblem("invalid_json", error.message);
      continue;
    }
    if (page === undefined || page.links.length === 0) continue;
    stats.pagesWithImageLinks++;
    const base = pageBaseUrl(page);
    let pageId = -1;
    for (const link of page.links) {
      stats.imageLinks++;
      const outcome = resolveLink(link, base, config.minTextLength);
      if ("dropped" in outcome) {
        stats.dropped[outcome.dropped]++;
        continue;
      }
      if (pageId < 0) pageId = pairs.addPage(page, record.offset);
      if (!pairs.add(outcome.pair.url, outcome.pair.text, pageId)) stats.dropped.duplicate++;
    }
  }
  return undefined;
}

async function* countBytes(
  chunks: AsyncIterable<Buffer>,
  stats: WatFileStats,
): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    stats.compressedBytes += chunk.length;
    yield chunk;
  }
}
