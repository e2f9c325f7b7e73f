/**
 * Language identification: accuracy on the generated multilingual captions
 * (src/demo/sample/sample-captions.ts, written and labelled by hand) and on no-language alt texts
 * (file names, product codes), plus throughput. Compares clipcrawl's detector (ELD's scoring over
 * a compact table, src/stages/extract/language.ts) with CLD3 — the model LAION used (gcld3) —
 * through cld3-asm, on the same texts; the eld package itself is printed too, as the reference
 * whose answers clipcrawl's must equal.
 */
import { loadModule } from "cld3-asm";
import { eld } from "eld/medium";
import { allLabelledCaptions, NO_LANGUAGE_ALTS } from "../src/demo/sample/sample-captions.js";
import { detectLanguage } from "../src/stages/extract/language.js";
import type { BenchRow } from "./support.js";

interface Detector {
  name: string;
  detect(text: string): { language: string; reliable: boolean };
}

export async function main(): Promise<BenchRow[]> {
  const cld3 = await loadModule();
  const cld3Identifier = cld3.create(0, 1000);
  const detectors: Detector[] = [
    {
      name: "clipcrawl (ELD medium, typed arrays)",
      detect: (text) => {
        const result = detectLanguage(text);
        return { language: result.language, reliable: result.tier !== "nolang" };
      },
    },
    {
      name: "eld package (medium), reference",
      detect: (text) => {
        // As clipcrawl called it before: no language unless the answer is reliable.
        const result = eld.detect(text.length > 300 ? text.slice(0, 300) : text);
        const reliable = result.language !== "" && result.isReliable();
        return { language: reliable ? result.language : "", reliable };
      },
    },
    {
      name: "cld3 (cld3-asm), LAION's",
      detect: (text) => {
        const result = cld3Identifier.findLanguage(text);
        // CLD3 still uses the withdrawn code "iw" for Hebrew.
        const language =
          result.language.split("-")[0] === "iw" ? "he" : result.language.split("-")[0];
        return { language: language ?? "", reliable: result.is_reliable };
      },
    },
  ];
  const captions = allLabelledCaptions().flatMap((caption) =>
    caption.language === null ? [] : [{ text: caption.text, language: caption.language as string }],
  );
  const languages = [...new Set(captions.map((caption) => caption.language))];
  console.log(
    `${captions.length} captions in ${languages.length} languages, ${NO_LANGUAGE_ALTS.length} no-language alts`,
  );
  const header = [
    "detector",
    "accuracy",
    "reliable+right",
    "nolang right",
    "texts/s",
    "worst languages",
  ];
  console.log(header.join(" | "));
  const measured: { accuracy: number; perSecond: number }[] = [];
  for (const detector of detectors) {
    let right = 0;
    let reliableRight = 0;
    const perLanguage = new Map<string, { right: number; total: number }>();
    for (const caption of captions) {
      const result = detector.detect(caption.text);
      const entry = perLanguage.get(caption.language) ?? { right: 0, total: 0 };
      entry.total++;
      if (result.language === caption.language) {
        right++;
        entry.right++;
        if (result.reliable) reliableRight++;
      }
      perLanguage.set(caption.language, entry);
    }
    const nolangRight = NO_LANGUAGE_ALTS.filter((text) => !detector.detect(text).reliable).length;
    const texts = captions.map((caption) => caption.text);
    const started = performance.now();
    let calls = 0;
    while (performance.now() - started < 1000) {
      for (const text of texts) detector.detect(`${text} ${calls}`);
      calls += texts.length;
    }
    const perSecond = calls / ((performance.now() - started) / 1000);
    const worst = [...perLanguage.entries()]
      .map(([language, entry]) => [language, entry.right / entry.total] as const)
      .sort((a, b) => a[1] - b[1])
      .slice(0, 4)
      .map(([language, accuracy]) => `${language} ${(accuracy * 100).toFixed(0)}%`)
      .join(", ");
    console.log(
      [
        detector.name,
        percent(right / captions.length),
        percent(reliableRight / captions.length),
        percent(nolangRight / NO_LANGUAGE_ALTS.length),
        Math.round(perSecond).toLocaleString("en"),
        worst,
      ].join(" | "),
    );
    measured.push({ accuracy: (100 * right) / captions.length, perSecond });
  }
  cld3Identifier.dispose();
  const [clipcrawl, , cld3Figures] = measured as [
    (typeof measured)[0],
    (typeof measured)[0],
    (typeof measured)[0],
  ];
  return [
    {
      stage: "language id accuracy (generated captions)",
      unit: "%",
      clipcrawl: clipcrawl.accuracy,
      peer: { name: "CLD3", value: cld3Figures.accuracy },
      ratio: clipcrawl.accuracy / cld3Figures.accuracy,
      target: "≥ CLD3's",
      met: clipcrawl.accuracy >= cld3Figures.accuracy,
    },
    {
      stage: "language id speed",
      unit: "texts/s",
      clipcrawl: clipcrawl.perSecond,
      peer: { name: "CLD3", value: cld3Figures.perSecond },
      ratio: clipcrawl.perSecond / cld3Figures.perSecond,
      target: "none",
    },
  ];
}

function percent(value: number): string {
  return `${(value * 100).toFixed(1)}%`;
}
