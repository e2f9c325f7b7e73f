/**
 * `clipcrawl demo`: the pipeline on the bundled sample, end to end, in a dataset root of its own.
 * Every step is the production stage, resumable: a second run reuses what is done.
 */

import { layout } from "../io/layout.js";
import { LocalStorage } from "../io/local-storage.js";
import { readParquet } from "../io/parquet.js";
import { type StageReporter, silentReporter } from "../runner/reporter.js";
import { type ExtractSummary, extract } from "../stages/extract/extract.js";
import { ensureSampleWatFiles } from "./sample-wat.js";

export interface DemoOptions {
  root: string;
  reporter?: StageReporter;
}

export interface DemoExample {
  url: string;
  text: string;
  language: string;
  tier: string;
}

export interface DemoResult {
  root: string;
  sampleFiles: string[];
  extract: ExtractSummary;
  examples: DemoExample[];
}

export async function demo(options: DemoOptions): Promise<DemoResult> {
  const storage = new LocalStorage(options.root);
  const sampleFiles = await ensureSampleWatFiles(storage);
  const extractSummary = await extract({
    root: storage,
    inputs: sampleFiles,
    reporter: options.reporter ?? silentReporter,
  });
  return {
    root: storage.root,
    sampleFiles,
    extract: extractSummary,
    examples: await examplesPerTier(storage),
  };
}

async function examplesPerTier(storage: LocalStorage): Promise<DemoExample[]> {
  if (!(await storage.exists(layout.candidates("00000")))) return [];
  const rows = await readParquet(storage, layout.candidates("00000"), [
    "url",
    "text",
    "language",
    "language_tier",
  ]);
  const examples: DemoExample[] = [];
  for (const tier of ["en", "multi", "nolang"]) {
    for (const row of rows.filter((candidate) => candidate.language_tier === tier).slice(0, 3)) {
      examples.push({
        url: String(row.url),
        text: String(row.text),
        language: String(row.language),
        tier,
      });
    }
  }
  return examples;
}
