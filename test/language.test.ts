/**
 * Caption language detection (src/stages/extract/language.ts) answers exactly as the eld package
 * does, from the compact n-gram table that scripts/language-ngrams.ts writes, and loads fast.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { eld } from "eld/medium";
import { buildLanguageNgrams, LANGUAGE_NGRAMS_FILE } from "../scripts/language-ngrams.js";
import { allLabelledCaptions, CAPTION_LANGUAGES } from "../src/demo/sample/sample-captions.js";
import { SeededRandom } from "../src/demo/sample/wat-generator.js";
import { webCaption } from "../src/demo/sample/web-captions.js";
import {
  type DetectedLanguage,
  detectLanguage,
  letterTables,
} from "../src/stages/extract/language.js";
import { LanguageNgrams } from "../src/stages/extract/language-ngrams.js";

/** What language.ts returned when it called the eld package itself (before the rewrite). */
function eldPackageDetection(text: string): DetectedLanguage {
  const result = eld.detect(text.length > 300 ? text.slice(0, 300) : text);
  const scores = result.getScores();
  const score =
    Math.round((result.language === "" ? 0 : (scores[result.language] ?? 0)) * 1e4) / 1e4;
  if (result.language === "" || !result.isReliable())
    return { language: "", score, tier: "nolang" };
  return { language: result.language, score, tier: result.language === "en" ? "en" : "multi" };
}

/** Texts on the edges of ELD's text processing: apostrophes, case, scripts, cuts, surrogates. */
const EDGE_CASES = [
  "",
  "   ",
  "x",
  "ab",
  "abc",
  "abcd",
  "abcde",
  "abcdefg",
  "don't stop believin'",
  "a ' b '' c ’d `e",
  "'quoted' words, 'and' more'",
  "' leading apostrophe",
  "trailing apostrophe '",
  "trailing run ,'",
  "''' only ''' apostrophes '''",
  "..'..x.. ` ..",
  "l'été à l’école d'Orsay",
  "ΟΔΌΣ ΣΟΦΟΣ ΚΑΙ ΣΟΦΊΑ",
  "İSTANBUL İzmir ığdır",
  "ﬁnance ﬂow ǅemal",
  "Ünïcödé wörds ÄÖÜ straße",
  "😀 emoji 😀😀 test 𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
  "\ud800 lone \udc00 surrogates\ud800",
  "中文字符".repeat(40),
  "日本語のテキストです".repeat(20),
  "한국어 텍스트 ".repeat(30),
  "a".repeat(500),
  "supercalifragilisticexpialidocious".repeat(3),
  "ab cd ef gh ".repeat(60),
  "IMG_4821.JPG",
  "SKU 4471-B 120x80cm",
];

test("the committed n-gram table is what scripts/language-ngrams.ts writes from the installed eld", async () => {
  const committed = await readFile(LANGUAGE_NGRAMS_FILE);
  const built = await buildLanguageNgrams();
  assert.ok(
    committed.equals(built),
    "run `npx tsx scripts/language-ngrams.ts` and commit the file",
  );
  const table = LanguageNgrams.load();
  assert.match(table.source, /^eld@2\.1\.0 M60$/);
  assert.equal(table.languages.length, 60);
});

test("detection gives eld's language, score and tier on every labelled caption and edge case", () => {
  const texts = [...allLabelledCaptions().map((caption) => caption.text), ...EDGE_CASES];
  for (const text of texts) {
    assert.deepEqual(detectLanguage(text), eldPackageDetection(text), JSON.stringify(text));
  }
});

test("detection gives eld's answers on 20,000 web-like captions of twenty languages", () => {
  const random = new SeededRandom(17);
  const tiers = { en: 0, multi: 0, nolang: 0 };
  for (let index = 0; index < 20_000; index++) {
    const text = webCaption(random, random.pick(CAPTION_LANGUAGES));
    const detected = detectLanguage(text);
    assert.deepEqual(detected, eldPackageDetection(text), JSON.stringify(text));
    tiers[detected.tier]++;
  }
  // Every tier occurs, so the comparison above covered each path.
  assert.ok(tiers.en > 500 && tiers.multi > 5000 && tiers.nolang > 500, JSON.stringify(tiers));
});

test("the n-gram table loads in well under the time eld's own module takes", () => {
  const started = performance.now();
  const table = LanguageNgrams.load();
  const seconds = (performance.now() - started) / 1000;
  assert.equal(table.ngramCount, 105_548);
  assert.ok(seconds < 0.25, `loading the n-gram table took ${seconds.toFixed(3)} s`);
});

test("letters lower-cased a range at a time map as lower-casing each alone does", () => {
  const ranges = LanguageNgrams.load().letterRanges;
  // İ grows to two units and Σ depends on its neighbours; a range over the surrogates goes alone.
  const extra = Uint16Array.from([0x130, 0x131, 0x391, 0x3a9, 0xd7f0, 0xe010]);
  const all = Uint16Array.from([...ranges, ...extra]);
  const { letterKind, lowerCase } = letterTables(all);
  const expectedKind = new Uint8Array(0x10000);
  const expectedLower = new Uint16Array(0x10000);
  for (const apostrophe of [0x27, 0x60, 0x2019]) expectedKind[apostrophe] = 2;
  for (let at = 0; at < all.length; at += 2) {
    for (let code = all[at] as number; code <= (all[at + 1] as number); code++) {
      const lower = String.fromCharCode(code).toLowerCase();
      expectedKind[code] = lower.length === 1 && code !== 0x3a3 ? 1 : 3;
      expectedLower[code] = lower.charCodeAt(0);
    }
  }
  assert.ok(ranges.length > 100);
  assert.equal(letterKind[0x130], 3);
  assert.equal(letterKind[0x3a3], 3);
  assert.deepEqual(Buffer.from(letterKind), Buffer.from(expectedKind));
  assert.deepEqual(Buffer.from(lowerCase.buffer), Buffer.from(expectedLower.buffer));
});

test("a damaged n-gram table is refused with one line naming the file and what is wrong", async () => {
  const good = await readFile(LANGUAGE_NGRAMS_FILE);
  const cases: [string, Buffer, RegExp][] = [
    ["empty", Buffer.alloc(0), /no ELDN signature/],
    ["another file", Buffer.from("PK\u0003\u0004 not a table at all"), /no ELDN signature/],
    ["truncated", good.subarray(0, good.length - 100), /bytes of tables where the header says/],
    ["lengthened", Buffer.concat([good, Buffer.alloc(4)]), /bytes of tables where the header says/],
    [
      "newer version",
      Buffer.concat([good.subarray(0, 4), Buffer.from([2, 0, 0, 0]), good.subarray(8)]),
      /version 2, expected 1/,
    ],
    ["header cut", good.subarray(0, 40), /header is not JSON/],
  ];
  for (const [what, bytes, why] of cases) {
    assert.throws(
      () => new LanguageNgrams(bytes, "/x/language-ngrams.bin"),
      (error: Error) => {
        assert.match(error.message, /^\/x\/language-ngrams\.bin: not ELD's n-gram table \(/);
        assert.match(error.message, why);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      },
      what,
    );
  }
});
