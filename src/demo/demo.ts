/**
 * `clipcrawl demo`: the pipeline on the bundled sample, end to end, in a dataset root of its own
 * (the CLI then serves the root). Every step is the
 * production stage, resumable: a second run reuses what is done.
 *
 * The sample's image URLs name hosts that do not exist, so the demo starts its own web on
 * 127.0.0.1 (image-server.ts) and points `download` at it with `connectTo` rules and the
 * server's certificate; the CLIP model is the tiny fixture model and its multilingual text
 * tower, generated into the root. The stages and their order are the pipeline registry's.
 */

import { layout } from "../io/layout.js";
import type { LocalStorage } from "../io/local-storage.js";
import { localRootOf, openRoot } from "../io/open-root.js";
import { readParquet } from "../io/parquet.js";
import type { DatasetStorage } from "../io/storage.js";
import { PIPELINE, type StageName, type StageSummaries } from "../pipeline/pipeline.js";
import { type StageReporter, silentReporter } from "../shard/reporter.js";
import type { ConfigSections, StageSummary } from "../shard/stage-definition.js";
import { startDemoImageServer } from "./image-server.js";
import { ensureSampleWatFiles } from "./sample-wat.js";
import { generateTinyClipModel } from "./tiny-clip/generate.js";
import { generateTinyMultilingualTextModel } from "./tiny-clip/generate-multilingual.js";

/** Hears each stage start and finish, so a terminal can show where the demo is. */
export interface DemoObserver {
  stageStarted?(stage: StageName): void;
  stageFinished?(stage: StageName, summary: StageSummary, seconds: number): void;
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

/** What the demo did: each stage's summary (`result.download`, …), and what it built. */
export type DemoResult = StageSummaries & {
  root: string;
  sampleFiles: string[];
  /** Wall seconds of each stage in this run. */
  seconds: Record<StageName, number>;
  /** Pairs the dataset kept, per language tier, a few of each. */
  kept: DemoExample[];
  examples: DemoExample[];
  ok: boolean;
};

/** Where the demo keeps its models and the certificate of its web, inside the root. */
export const DEMO_MODEL_FOLDER = "demo/tiny-clip";
export const DEMO_MULTILINGUAL_FOLDER = "demo/tiny-multilingual";
const DEMO_CERTIFICATE = "demo/web-ca.pem";
const DEMO_SAMPLES_PER_SHARD = 256;

/** What a stage needs from the demo: config overrides, and what to stop once the stage is over. */
interface DemoSetup {
  config: ConfigSections;
  close?: () => Promise<void>;
}

/**
 * The stages that need something only the demo has: download its stand-in web (started once
 * extract has named the hosts), embed the tiny models. Every other stage runs as configured.
 */
const DEMO_SETUP: Partial<Record<StageName, (storage: LocalStorage) => Promise<DemoSetup>>> = {
  download: startDemoWeb,
  embed: async (storage) => ({ config: { embed: await ensureDemoModels(storage) } }),
};

export async function demo(options: DemoOptions): Promise<DemoResult> {
  const storage = localRootOf(openRoot(options.root), "clipcrawl demo");
  const reporter = options.reporter ?? silentReporter;
  const sampleFiles = await ensureSampleWatFiles(storage);
  const summaries: Partial<Record<StageName, StageSummary>> = {};
  const seconds = {} as Record<StageName, number>;
  for (const stage of PIPELINE) {
    options.observer?.stageStarted?.(stage.name);
    const started = performance.now();
    const setup = await DEMO_SETUP[stage.name]?.(storage);
    let summary: StageSummary;
    try {
      summary = await stage.run({
        storage,
        inputs: sampleFiles,
        reporter,
        ...(setup === undefined ? {} : { config: setup.config }),
      });
    } finally {
      await setup?.close?.();
    }
    seconds[stage.name] = (performance.now() - started) / 1000;
    summaries[stage.name] = summary;
    options.observer?.stageFinished?.(stage.name, summary, seconds[stage.name]);
  }
  return {
    ...(summaries as StageSummaries),
    root: storage.root,
    sampleFiles,
    seconds,
    kept: await keptPerTier(storage),
    examples: await examplesPerTier(storage),
    ok: Object.values(summaries).every((summary) => summary.ok),
  };
}

async function startDemoWeb(storage: LocalStorage): Promise<DemoSetup> {
  const web = await startDemoImageServer(await candidateHosts(storage));
  await storage.writeAtomic(DEMO_CERTIFICATE, web.certificatePem);
  return {
    config: {
      download: {
        // Shards of a few hundred samples, so that the progress display moves during download
        // and embed (it counts finished shards).
        samplesPerShard: DEMO_SAMPLES_PER_SHARD,
        allowPrivateNetwork: true,
        connectTo: web.connectTo,
        caCertificates: await storage.localPath(DEMO_CERTIFICATE),
      },
    },
    close: () => web.close(),
  };
}

/** The hosts of every candidate URL: the names the stand-in web answers for. */
export async function candidateHosts(storage: DatasetStorage): Promise<Set<string>> {
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
