/**
 * `clipcrawl demo`: the pipeline on the bundled sample, end to end, in a dataset root of its own:
 * extract → download → embed → filter → index (the CLI then serves the root). Every step is the
 * production stage, resumable: a second run reuses what is done.
 *
 * The sample's image URLs name hosts that do not exist, so the demo starts its own web on
 * 127.0.0.1 (image-server.ts) and points `download` at it with `connectTo` rules and the
 * server's certificate; the CLIP model is the tiny fixture model and its multilingual text
 * tower, generated into the root.
 */

import { layout } from "../io/layout.js";
import type { LocalStorage } from "../io/local-storage.js";
import { openRoot } from "../io/open-root.js";
import { readParquet } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { type StageReporter, silentReporter } from "../shard/reporter.js";
import { type DownloadSummary, download } from "../stages/download/download.js";
import { type EmbedSummary, embed } from "../stages/embed/embed.js";
import { type ExtractSummary, extract } from "../stages/extract/extract.js";
import { type FilterSummary, filter } from "../stages/filter/filter.js";
import { buildIndex, type IndexSummary } from "../stages/index/build-index.js";
import { startDemoImageServer } from "./image-server.js";
import { ensureSampleWatFiles } from "./sample-wat.js";
import { generateTinyClipModel } from "./tiny-clip/generate.js";
import { generateTinyMultilingualTextModel } from "./tiny-clip/generate-multilingual.js";

export const DEMO_STAGES = ["extract", "download", "embed", "filter", "index"] as const;
export type DemoStage = (typeof DEMO_STAGES)[number];

/** The summary each stage returns. */
export interface DemoSummaries {
  extract: ExtractSummary;
  download: DownloadSummary;
  embed: EmbedSummary;
  filter: FilterSummary;
  index: IndexSummary;
}

/** Hears each stage start and finish, so a terminal can show where the demo is. */
export interface DemoObserver {
  stageStarted?(stage: DemoStage): void;
  stageFinished?<Stage extends DemoStage>(
    stage: Stage,
    summary: DemoSummaries[Stage],
    seconds: number,
  ): void;
}

export interface DemoOptions {
  root: string;
  reporter?: StageReporter;
  observer?: DemoObserver;
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
  download: DownloadSummary;
  embed: EmbedSummary;
  filter: FilterSummary;
  index: IndexSummary;
  /** Wall seconds of each stage in this run. */
  seconds: Record<DemoStage, number>;
  /** Pairs the dataset kept, per language tier, a few of each. */
  kept: DemoExample[];
  examples: DemoExample[];
  ok: boolean;
}

/** Where the demo keeps its models and the certificate of its web, inside the root. */
export const DEMO_MODEL_FOLDER = "demo/tiny-clip";
export const DEMO_MULTILINGUAL_FOLDER = "demo/tiny-multilingual";
const DEMO_CERTIFICATE = "demo/web-ca.pem";
const DEMO_SAMPLES_PER_SHARD = 256;

export async function demo(options: DemoOptions): Promise<DemoResult> {
  const storage = openRoot(options.root);
  const reporter = options.reporter ?? silentReporter;
  const seconds = Object.fromEntries(DEMO_STAGES.map((stage) => [stage, 0])) as Record<
    DemoStage,
    number
  >;
  const step = async <Stage extends DemoStage>(
    stage: Stage,
    run: () => Promise<DemoSummaries[Stage]>,
  ): Promise<DemoSummaries[Stage]> => {
    options.observer?.stageStarted?.(stage);
    const started = performance.now();
    const summary = await run();
    seconds[stage] = (performance.now() - started) / 1000;
    options.observer?.stageFinished?.(stage, summary, seconds[stage]);
    return summary;
  };
  const sampleFiles = await ensureSampleWatFiles(storage);
  const extractSummary = await step("extract", () =>
    extract({ root: storage, inputs: sampleFiles, reporter }),
  );
  const downloadSummary = await step("download", () => downloadFromDemoWeb(storage, reporter));
  const embedSummary = await step("embed", async () =>
    embed({ root: storage, config: await ensureDemoModels(storage), reporter }),
  );
  const filterSummary = await step("filter", () => filter({ root: storage, reporter }));
  const indexSummary = await step("index", () => buildIndex({ root: storage, reporter }));
  return {
    root: storage.root,
    sampleFiles,
    extract: extractSummary,
    download: downloadSummary,
    embed: embedSummary,
    filter: filterSummary,
    index: indexSummary,
    seconds,
    kept: await keptPerTier(storage),
    examples: await examplesPerTier(storage),
    ok: [extractSummary, downloadSummary, embedSummary, filterSummary, indexSummary].every(
      (summary) => summary.ok,
    ),
  };
}

async function downloadFromDemoWeb(
  storage: LocalStorage,
  reporter: StageReporter,
): Promise<DownloadSummary> {
  const web = await startDemoImageServer(await candidateHosts(storage));
  try {
    await storage.writeAtomic(DEMO_CERTIFICATE, web.certificatePem);
    return await download({
      root: storage,
      reporter,
      config: {
        // Shards of a few hundred samples, so that the progress display moves during download
        // and embed (it counts finished shards).
        samplesPerShard: DEMO_SAMPLES_PER_SHARD,
        allowPrivateNetwork: true,
        connectTo: web.connectTo,
        caCertificates: await storage.localPath(DEMO_CERTIFICATE),
      },
    });
  } finally {
    await web.close();
  }
}

async function candidateHosts(storage: DatasetStorage): Promise<Set<string>> {
  const hosts = new Set<string>();
  for (const name of await storage.list(layout.candidatesFolder())) {
    if (!name.endsWith(".parquet")) continue;
    for (const row of await readParquet(storage, `${layout.candidatesFolder()}/${name}`, ["url"])) {
      hosts.add(new URL(String(row.url)).hostname);
    }
  }
  return hosts;
}

async function ensureDemoModels(
  storage: LocalStorage,
): Promise<{ model: string; multilingualModel: string }> {
  const model = await storage.localPath(DEMO_MODEL_FOLDER);
  if (!(await storage.exists(`${DEMO_MODEL_FOLDER}/onnx/vision_model.onnx`))) {
    await generateTinyClipModel(model);
  }
  const multilingualModel = await storage.localPath(DEMO_MULTILINGUAL_FOLDER);
  if (!(await storage.exists(`${DEMO_MULTILINGUAL_FOLDER}/onnx/text_model.onnx`))) {
    await generateTinyMultilingualTextModel(multilingualModel);
  }
  return { model, multilingualModel };
}

async function keptPerTier(storage: LocalStorage): Promise<DemoExample[]> {
  if (!(await storage.exists(layout.datasetShard("00000")))) return [];
  const rows = await readParquet(storage, layout.datasetShard("00000"), [
    "URL",
    "TEXT",
    "LANGUAGE",
    "similarity",
  ]);
  const kept: DemoExample[] = [];
  const perLanguage = new Map<string, number>();
  for (const row of rows) {
    const language = String(row.LANGUAGE);
    const tier = language === "" ? "nolang" : language === "en" ? "en" : "multi";
    const seen = perLanguage.get(tier) ?? 0;
    if (seen >= 3) continue;
    perLanguage.set(tier, seen + 1);
    kept.push({
      url: String(row.URL),
      text: `${String(row.TEXT)}  (similarity ${(row.similarity as number).toFixed(3)})`,
      language,
      tier,
    });
  }
  return kept;
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
