/**
 * LAION's language tiers, which decide the CLIP threshold later: `en` (English), `multi` (another
 * language) and `nolang` (no reliable detection).
 */
export type LanguageTier = "en" | "multi" | "nolang";
