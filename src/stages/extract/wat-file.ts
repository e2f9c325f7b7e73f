/**
 * Extraction of one WAT file: records → pages → image links → candidate pairs, with exact
 * dedup inside the file and the language of each caption. What happens across files (the
 * Bloom filter dedup, writing the shard) is in extract.ts; this part runs in a worker thread.
 */
import { basename } from "node:path";
import type { ExtractConfig } from "../../config/schema.js";
import { errorMessage, InputError } from "../../errors.js";
import { pairKey } from "./bloom-filter.js";
import { type LinkDropReason, pageBaseUrl, resolveLink } from "./candidate-pairs.js";
import { gzipMembers } from "./gzip-members.js";
import { type DetectedLanguage, detectLanguage, type LanguageTier } from "./language.js";
import { parseWarcRecords, WarcFormatError } from "./warc-records.js";
import type { WatInput } from "./wat-inputs.js";
import { linkPathPatterns, mentionsHtml, readWatPage, WatJsonError } from "./wat-page.js";
import { openWatInput } from "./wat-source.js";

export interface CandidatePair {
  url: string;
  text: string;
  language: string;
  languageScore: number;
  languageTier: LanguageTier;
  pageUrl: string;
  /** The WAT file the pair came from (file name or URL). */
  source: string;
  /** Offset of the WAT record (gzip member) in the compressed WAT file. */
  recordOffset: number;
  /** The original WARC file and offset of the page's HTML response, from the WAT Container. */
  warcFilename: string;
  warcOffset: number | null;
  crawlDate: string;
}

export type DropReason = LinkDropReason | "duplicate";
export type RecordProblem = "invalid_json" | "bad_warc_record" | "corrupt_gzip";

export interface WatFileStats {
  compressedBytes: number;
  records: number;
  htmlPages: number;
  pagesWithImageLinks: number;
  imageLinks: number;
  kept: number;
  dropped: Record<DropReason, number>;
  badRecords: Record<RecordProblem, number>;
  languageTiers: Record<LanguageTier, number>;
  seconds: number;
}

export interface WatFileResult {
  input: string;
  pairs: CandidatePair[];
  stats: WatFileStats;
  /** One line each: bad records (capped), or why the input failed. */
  problems: string[];
  /** Set when the input could not be read to its end: pairs before the failure are kept. */
  failure?: string;
}

const MAX_PROBLEM_LINES = 5;

export function emptyWatFileStats(): WatFileStats {
  return {
    compressedBytes: 0,
    records: 0,
    htmlPages: 0,
    pagesWithImageLinks: 0,
    imageLinks: 0,
    kept: 0,
    dropped: {
      no_alt: 0,
      short_text: 0,
      invalid_url: 0,
      unsupported_scheme: 0,
      url_has_credentials: 0,
      duplicate: 0,
    },
    badRecords: { invalid_json: 0, bad_warc_record: 0, corrupt_gzip: 0 },
    languageTiers: { en: 0, multi: 0, nolang: 0 },
    seconds: 0,
  };
}

export async function extractWatFile(
  input: WatInput,
  config: ExtractConfig,
  signal?: AbortSignal,
): Promise<WatFileResult> {
  const started = performance.now();
  const stats = emptyWatFileStats();
  const pairs: CandidatePair[] = [];
  const problems: string[] = [];
  const source = input.kind === "file" ? basename(input.path) : input.url;
  const wantedPaths = new Set(config.linkPaths);
  const patterns = linkPathPatterns(config.linkPaths);
  const seenPairs = new Set<string>();
  const languageOfText = new Map<string, DetectedLanguage>();
  let failure: string | undefined;

  const noteProblem = (kind: RecordProblem, message: string): void => {
    stats.badRecords[kind]++;
    if (problems.length < MAX_PROBLEM_LINES) problems.push(`${input.name}: ${message}`);
  };

  try {
    const chunks = openWatInput(input, {
      retries: config.retries,
      timeoutSeconds: config.timeoutSeconds,
      ...(signal ? { signal } : {}),
    });
    for await (const event of gzipMembers(countBytes(chunks, stats))) {
      if ("damage" in event) {
        if (event.damage.kind === "corrupt") {
          noteProblem("corrupt_gzip", event.damage.message);
          continue;
        }
        failure = `${input.name}: ${event.damage.message}`;
        break;
      }
      let records: ReturnType<typeof parseWarcRecords>;
      try {
        records = parseWarcRecords(event.member.data, event.member.offset);
      } catch (error) {
        if (!(error instanceof WarcFormatError)) throw error;
        noteProblem("bad_warc_record", error.message);
        continue;
      }
      for (const record of records) {
        stats.records++;
        if (record.type !== "metadata" || !mentionsHtml(record)) continue;
        stats.htmlPages++;
        let page: ReturnType<typeof readWatPage>;
        try {
          page = readWatPage(record, wantedPaths, patterns);
        } catch (error) {
          if (!(error instanceof WatJsonError)) throw error;
          noteProblem("invalid_json", error.message);
          continue;
        }
        if (page === undefined || page.links.length === 0) continue;
        stats.pagesWithImageLinks++;
        const base = pageBaseUrl(page);
        for (const link of page.links) {
          stats.imageLinks++;
          const outcome = resolveLink(link, base, config.minTextLength);
          if ("dropped" in outcome) {
            stats.dropped[outcome.dropped]++;
            continue;
          }
          const { url, text } = outcome.pair;
          const key = pairKey(url, text);
          if (seenPairs.has(key)) {
            stats.dropped.duplicate++;
            continue;
          }
          seenPairs.add(key);
          let language = languageOfText.get(text);
          if (language === undefined) {
            language = detectLanguage(text);
            languageOfText.set(text, language);
          }
          pairs.push({
            url,
            text,
            language: language.language,
            languageScore: language.score,
            languageTier: language.tier,
            pageUrl: page.pageUrl,
            source,
            recordOffset: record.offset,
            warcFilename: page.warcFilename,
            warcOffset: page.warcOffset,
            crawlDate: page.crawlDate,
          });
        }
      }
    }
  } catch (error) {
    failure = error instanceof InputError ? error.message : `${input.name}: ${errorMessage(error)}`;
  }
  for (const pair of pairs) stats.languageTiers[pair.languageTier]++;
  stats.kept = pairs.length;
  stats.seconds = (performance.now() - started) / 1000;
  const hidden = Object.values(stats.badRecords).reduce((a, b) => a + b, 0) - problems.length;
  if (hidden > 0)
    problems.push(`${input.name}: ${hidden} more bad records (counted in the shard stats)`);
  return {
    input: input.name,
    pairs,
    stats,
    problems,
    ...(failure === undefined ? {} : { failure }),
  };
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
