/**
 * Language of a caption, with ELD (Efficient Language Detector, n-gram based, pure JS). The tier
 * decides which CLIP threshold later applies: LAION's `en` (English), `multi` (another language)
 * and `nolang` (no reliable detection: product codes, file names, very short text).
 * Chosen by measuring accuracy on the generated multilingual captions: `npm run bench -- language`.
 */
import { eld } from "eld/medium";

import type { LanguageTier } from "../../formats/language-tier.js";

export type { LanguageTier };

export interface DetectedLanguage {
  /** ISO 639-1 code, or "" when nothing reliable was detected. */
  language: string;
  score: number;
  tier: LanguageTier;
}

/** A caption's language shows in its first words; the detector's cost grows with the length. */
const DETECTION_PREFIX = 300;

export function detectLanguage(text: string): DetectedLanguage {
  const result = eld.detect(
    text.length > DETECTION_PREFIX ? text.slice(0, DETECTION_PREFIX) : text,
  );
  const scores = result.getScores();
  const score = result.language === "" ? 0 : (scores[result.language] ?? 0);
  if (result.language === "" || !result.isReliable()) {
    return { language: "", score: round(score), tier: "nolang" };
  }
  return {
    language: result.language,
    score: round(score),
    tier: result.language === "en" ? "en" : "multi",
  };
}

function round(value: number): number {
  return Math.round(value * 10_000) / 10_000;
}
