/**
 * Writes src/stages/extract/language-ngrams.bin, ELD's "medium" n-gram database (eld@2.1.0,
 * Apache-2.0, github.com/nitotm/efficient-language-detector-js) in the compact binary form that
 * src/stages/extract/language.ts scores with typed arrays. Loading ELD's own 2 MB JavaScript
 * object literal takes 0.5–8 s; this file loads in milliseconds. Everything the scoring needs to
 * answer exactly as ELD does is taken from the package: the n-grams and their scores, the
 * languages, their average scores, the byte-to-character dictionary and the letter ranges of its
 * word-separator pattern. test/language.test.ts fails when the committed file differs from what
 * this script writes from the installed eld.
 *
 *   npx tsx scripts/language-ngrams.ts          (writes the file)
 *
 * Layout (little-endian; the reader is src/stages/extract/language-ngrams.ts):
 *   "ELDN", u32 version, u32 header length, header JSON (padded to 4 bytes), then
 *   u32 keyLow[ngrams], u16 letterRanges[2 × ranges], u16 keyHigh[ngrams], u8 entryCount[ngrams],
 *   u8 entryLanguage[entries], u8 entryScore[entries], u8 byteCharacter[256].
 * An n-gram key is at most 6 characters, each one byte of UTF-8 spelled as ELD's dictionary
 * spells it (a code below 256): characters 0–3 pack into keyLow, 4–5 into keyHigh.
 */
import { writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export const LANGUAGE_NGRAMS_FILE = fileURLToPath(
  new URL("../src/stages/extract/language-ngrams.bin", import.meta.url),
);
export const FORMAT_VERSION = 1;

interface EldNgramsData {
  type: string;
  languages: Record<string, string>;
  ngrams: Record<string, Record<string, number>>;
}

/** The binary form of the installed eld's medium database. */
export async function buildLanguageNgrams(): Promise<Buffer> {
  const entry = import.meta.resolve("eld/medium");
  const eldFile = (path: string) => new URL(path, entry).href;
  const version = (createRequire(entry)("../../package.json") as { version: string }).version;
  const { ngramsData } = (await import(eldFile("../ngrams/medium.js"))) as {
    ngramsData: EldNgramsData;
  };
  const { avgScore } = (await import(eldFile("../avgScore.js"))) as {
    avgScore: Record<string, number>;
  };
  const { dictionary } = (await import(eldFile("../dictionary.js"))) as { dictionary: string[] };
  const { separators } = (await import(eldFile("../regexPatterns.js"))) as { separators: RegExp };

  const languages = Object.keys(ngramsData.languages)
    .map(Number)
    .sort((a, b) => a - b)
    .map((index) => ngramsData.languages[index] as string);
  const keys = Object.keys(ngramsData.ngrams).sort();
  const keyLow = new Uint32Array(keys.length);
  const keyHigh = new Uint16Array(keys.length);
  const entryCount = new Uint8Array(keys.length);
  const entryLanguage: number[] = [];
  const entryScore: number[] = [];
  keys.forEach((key, index) => {
    if (key.length > 6) throw new Error(`eld n-gram ${JSON.stringify(key)} is over 6 bytes`);
    const codes = [...key].map((character) => character.charCodeAt(0));
    if (codes.some((code) => code === 0 || code > 255))
      throw new Error(`eld n-gram ${JSON.stringify(key)} has a character outside 1–255`);
    keyLow[index] =
      ((codes[0] ?? 0) |
        ((codes[1] ?? 0) << 8) |
        ((codes[2] ?? 0) << 16) |
        ((codes[3] ?? 0) << 24)) >>>
      0;
    keyHigh[index] = (codes[4] ?? 0) | ((codes[5] ?? 0) << 8);
    const scores = Object.entries(ngramsData.ngrams[key] as Record<string, number>);
    entryCount[index] = scores.length;
    for (const [language, score] of scores) {
      if (score < 0 || score > 255) throw new Error(`eld score ${score} does not fit a byte`);
      entryLanguage.push(Number(language));
      entryScore.push(score);
    }
  });
  const byteCharacter = Uint8Array.from(dictionary, (character) => character.charCodeAt(0));
  const letterRanges = separatorLetterRanges(separators);

  const header = Buffer.from(
    JSON.stringify({
      source: `eld@${version} ${ngramsData.type}`,
      languages,
      averageScores: languages.map((language) => avgScore[language] ?? null),
      ngrams: keys.length,
      entries: entryLanguage.length,
      letterRanges: letterRanges.length / 2,
    }),
  );
  const preamble = Buffer.alloc(12);
  preamble.write("ELDN", 0, "latin1");
  preamble.writeUInt32LE(FORMAT_VERSION, 4);
  preamble.writeUInt32LE(header.length, 8);
  const padding = Buffer.alloc((4 - ((preamble.length + header.length) % 4)) % 4, 0x20);
  return Buffer.concat([
    preamble,
    header,
    padding,
    bytesOf(keyLow),
    bytesOf(Uint16Array.from(letterRanges)),
    bytesOf(keyHigh),
    bytesOf(entryCount),
    Uint8Array.from(entryLanguage),
    Uint8Array.from(entryScore),
    byteCharacter,
  ]);
}

/**
 * The letter ranges of ELD's separator pattern (`[^LETTERS]+(?<!['`’])`, flags gu), read back from
 * the pattern's source and checked against the pattern itself on every UTF-16 code unit.
 */
function separatorLetterRanges(separators: RegExp): number[] {
  const match = /^\[\^(.*)\]\+\(\?<!\[\\x27\\x60\\u2019\]\)$/s.exec(separators.source);
  if (match === null || separators.flags !== "gu")
    throw new Error(
      `eld's separator pattern changed shape: /${separators.source}/${separators.flags}`,
    );
  const letters = [...(match[1] as string)];
  const ranges: number[] = [];
  for (let at = 0; at < letters.length; at++) {
    const first = (letters[at] as string).codePointAt(0) as number;
    if (letters[at + 1] === "-" && at + 2 < letters.length) {
      ranges.push(first, (letters[at + 2] as string).codePointAt(0) as number);
      at += 2;
    } else {
      ranges.push(first, first);
    }
  }
  const letter = new RegExp(`^[${match[1]}]$`, "u");
  for (let code = 0; code < 0x10000; code++) {
    if (code >= 0xd800 && code < 0xe000) continue;
    let inRanges = false;
    for (let at = 0; at < ranges.length && !inRanges; at += 2)
      inRanges = code >= (ranges[at] as number) && code <= (ranges[at + 1] as number);
    if (inRanges !== letter.test(String.fromCharCode(code)))
      throw new Error(`letter ranges disagree with eld's pattern at U+${code.toString(16)}`);
  }
  return ranges;
}

function bytesOf(array: Uint32Array | Uint16Array | Uint8Array): Buffer {
  return Buffer.from(array.buffer, array.byteOffset, array.byteLength);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const bytes = await buildLanguageNgrams();
  await writeFile(LANGUAGE_NGRAMS_FILE, bytes);
  console.log(`wrote ${LANGUAGE_NGRAMS_FILE} (${bytes.length} bytes)`);
}
