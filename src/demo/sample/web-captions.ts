/**
 * Alt texts as varied as the web's, for bench inputs that do not flatter (the WAT generator's
 * `captions: "web"`). The sample's captions are a few hundred hand-written sentences, so a large
 * file repeats each one thousands of times, and anything done once per distinct text (language
 * detection) barely shows. On the web nearly every alt text is distinct. Here:
 *
 * - 12 % are boilerplate that repeats everywhere ("logo", "image", "Read more") or a camera or
 *   CMS file name (`IMG_4821.JPG`);
 * - the rest are new sentences in the page's language, made of that language's words (taken from
 *   the sample's captions, so a language detector sees real text of that language), with a long
 *   tail of lengths (log-normal: a median of about 6 words, a few of 30 and more), and now and
 *   then a number, a size or a year, as product and news images have.
 *
 * Scripts written without spaces (Chinese, Japanese, Thai) are built from runs of 1–3 characters
 * of the sample's captions instead of words.
 */
import { CAPTIONS_BY_LANGUAGE, type CaptionLanguage } from "./sample-captions.js";

/** The random source the WAT generator passes (its seeded generator). */
export interface CaptionRandom {
  next(): number;
  int(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
}

const BOILERPLATE_SHARE = 0.12;
const BOILERPLATE = [
  "logo",
  "Logo",
  "image",
  "Image",
  "icon",
  "banner",
  "photo",
  "thumbnail",
  "avatar",
  "placeholder",
  "Read more",
  "Click here",
  "spacer",
  "loading",
] as const;

const UNSPACED: ReadonlySet<CaptionLanguage> = new Set(["zh", "ja", "th"]);

const vocabularies = new Map<CaptionLanguage, readonly string[]>();

export function webCaption(random: CaptionRandom, language: CaptionLanguage): string {
  if (random.chance(BOILERPLATE_SHARE)) return boilerplate(random);
  const units = vocabularyOf(language);
  const words = lengthInWords(random);
  const unspaced = UNSPACED.has(language);
  const parts: string[] = [];
  for (let i = 0; i < (unspaced ? Math.ceil(words * 1.5) : words); i++)
    parts.push(random.pick(units));
  if (random.chance(0.25)) {
    const at = random.int(0, parts.length);
    parts.splice(at, 0, quantity(random));
  }
  let text = parts.join(unspaced ? "" : " ");
  if (!unspaced && random.chance(0.7)) text = text.charAt(0).toUpperCase() + text.slice(1);
  return text;
}

function boilerplate(random: CaptionRandom): string {
  switch (random.int(0, 3)) {
    case 0:
      return `IMG_${random.int(1000, 9999)}.JPG`;
    case 1:
      return `${random.pick(["image", "img", "photo", "banner"])}-${random.int(1, 500)}.${random.pick(["jpg", "png", "webp"])}`;
    default:
      return random.pick(BOILERPLATE);
  }
}

/** Log-normal with a median of about 6 words; 1 to 60. */
function lengthInWords(random: CaptionRandom): number {
  // Box–Muller: a standard normal from two uniforms.
  const normal =
    Math.sqrt(-2 * Math.log(1 - random.next())) * Math.cos(2 * Math.PI * random.next());
  return Math.min(60, Math.max(1, Math.round(Math.exp(1.8 + 0.65 * normal))));
}

function quantity(random: CaptionRandom): string {
  switch (random.int(0, 3)) {
    case 0:
      return String(random.int(1990, 2026));
    case 1:
      return `${random.int(1, 300)}${random.pick(["cm", "mm", "ml", "g", "kg", "%", "x"])}`;
    case 2:
      return `${random.pick(["A", "B", "K", "X", "Z"])}${random.int(10, 9999)}`;
    default:
      return String(random.int(1, 99));
  }
}

function vocabularyOf(language: CaptionLanguage): readonly string[] {
  let units = vocabularies.get(language);
  if (units === undefined) {
    const found = new Set<string>();
    for (const caption of CAPTIONS_BY_LANGUAGE[language]) {
      if (UNSPACED.has(language)) {
        const characters = [...caption.replace(/\s+/g, "")];
        for (let at = 0; at < characters.length; ) {
          const length = 1 + (at % 3);
          found.add(characters.slice(at, at + length).join(""));
          at += length;
        }
      } else {
        for (const word of caption.split(/\s+/)) {
          const bare = word.replace(/^[\p{P}\p{S}]+|[\p{P}\p{S}]+$/gu, "");
          if (bare !== "") found.add(bare.toLowerCase());
        }
      }
    }
    units = [...found];
    vocabularies.set(language, units);
  }
  return units;
}
