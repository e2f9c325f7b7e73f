/**
 * `clipcrawl embed`: image shards → CLIP embeddings in clip-retrieval's layout under
 * `<root>/embeddings/` (see embedding-writer.ts), with the image–text cosine similarity of every
 * pair.
 *
 * One process, one model, shards one after another: onnxruntime's intra-op threads use every
 * core on a batch while a few worker threads decode and preprocess the next batch (see
 * image-encoder.ts); more processes would only multiply the model's memory. A shard's outputs are written atomically and its done marker
 * last; a re-run skips shards whose marker matches their digest (inputs, model files, output
 * dtype). The model is a local folder: a missing or broken one stops the stage with one line.
 */
import { cpus } from "node:os";
import { resolve } from "node:path";
import { loadConfig } from "../../config/config-file.js";
import { configBaseDir } from "../../config/config-paths.js";
import { startOrOpenRoot } from "../../config/dataset-root.js";
import type { ClipcrawlConfig } from "../../config/schema.js";
import { ConfigError } from "../../errors.js";
import { outputInfo } from "../../io/file-info.js";
import { layout } from "../../io/layout.js";
import { openRoot } from "../../io/open-root.js";
import type { DatasetStorage } from "../../io/storage.js";
import { ClipModel } from "../../models/clip-model.js";
import { ClipEmbedder, TextEmbedder } from "../../models/embedder.js";
import { ScoreHeads } from "../../models/heads/score-heads.js";
import { assertDeviceAvailable, parseInferenceDevice } from "../../models/inference-device.js";
import {
  type ClipModelFiles,
  locateClipModelFiles,
  locateTextModelFiles,
  type TextModelFiles,
} from "../../models/model-files.js";
import { checkEmbeddingSizesMatch, TextModel } from "../../models/text-model.js";
import { type StageReporter, silentReporter } from "../../shard/reporter.js";
import { type FailedShard, runShardLoop } from "../../shard/shard-loop.js";
import { ShardSelection, unplannedShardError } from "../../shard/shard-selection.js";
import { ShardState } from "../../shard/shard-state.js";
import type { StageSummary } from "../../shard/stage-definition.js";
import { CaptionEncoder } from "./caption-encoder.js";
import type { EmbedConfig } from "./config.js";
import { type EmbeddedShard, embedShard, type ShardEncoders } from "./embed-shard.js";
import { writeEmbeddingShard } from "./embedding-writer.js";
import { PipelinedImageEncoder } from "./image-encoder.js";
import { modelDigest, scoresDigest } from "./model-identity.js";
import { type PlannedEmbedShard, planImageShards, planInputShards } from "./shard-plan.js";

export const EMBED_STAGE = "embed";

export interface EmbedOptions {
  /** The dataset root: a directory path, an s3:// URL, or a storage. */
  root: string | DatasetStorage;
  /** Webdataset tars (or folders of them) or image folders, instead of the root's image shards. */
  inputs?: readonly string[];
  /** Values that override the root's clipcrawl.json for this run. */
  config?: Partial<EmbedConfig>;
  /** Redo every shard even when its done marker matches. */
  overwrite?: boolean;
  /** Only these shards run (names like "00003"); the others are neither run nor counted. */
  shards?: readonly string[];
  /** Redo these shards (names like "00002") even when their done markers match. */
  redo?: readonly string[];
  reporter?: StageReporter;
  /** Relative model paths and inputs are resolved against it (default: the process's). */
  cwd?: string;
}

export interface EmbedCounts {
  /** Samples the shards had to account for (the download's successes). */
  samples: number;
  embedded: number;
  failed_to_embed: number;
  /** Captions longer than the model's context, cut as CLIP cuts them. */
  captions_truncated: number;
  damaged_tar_members: number;
  /** Embedded samples for which at least one score head gave no number (NaN, undecodable). */
  score_errors: number;
}

export interface EmbedShardStats extends EmbedCounts {
  shard: string;
  input: string;
  dimensions: number;
  output_dtype: EmbedConfig["outputDtype"];
  model: { folder: string; precision: EmbedConfig["precision"]; digest: string };
  /** Error message → count over the samples that failed. */
  status_dict: Record<string, number>;
  /** Score error → count over the embedded samples that have one. */
  score_error_dict: Record<string, number>;
  damaged: string[];
  unexpected_tar_samples: number;
  mean_similarity: number | null;
  /** Wall seconds per step; preprocessing overlaps the towers, so the steps sum to more than total. */
  timings: {
    read: number;
    preprocess: number;
    image: number;
    text: number;
    score: number;
    write: number;
    total: number;
  };
  /**
   * Share of the shard's wall time in which a tower runs (vision and text): what is left is
   * reading, writing, and waiting for the preprocessing workers, which should not happen.
   */
  model_busy_share: number;
  images_per_second: number;
  start_time: number;
  end_time: number;
}

export type FailedEmbedShard = FailedShard;

/** `samples` counts the samples read, `outputs` those embedded. */
export interface EmbedSummary extends StageSummary {
  /** True when every shard was written (failed samples are data, not a failure of the run). */
  ok: boolean;
  source: "images" | "inputs";
  model: { folder: string; precision: EmbedConfig["precision"]; dimensions: number | null };
  /** The text-only model for multilingualTiers, when one is configured. */
  multilingualModel: string | null;
  failedShards: FailedEmbedShard[];
  /** Over the shards written in this run. */
  totals: EmbedCounts;
  /** Error messages of failed samples, most frequent first. */
  topErrors: Record<string, number>;
  seconds: number;
  samplesPerSecond: number;
  /** model_busy_share over the shards written in this run; null when none was. */
  modelBusyShare: number | null;
}

const TOP_ERRORS = 30;

export async function embed(options: EmbedOptions): Promise<EmbedSummary> {
  const started = performance.now();
  const reporter = options.reporter ?? silentReporter;
  const storage = openRoot(options.root);
  const cwd = options.cwd ?? process.cwd();
  await startOrOpenRoot(
    storage,
    (options.inputs ?? []).length > 0,
    "give image tars or folders to embed into a new root",
  );
  const fullConfig = await loadConfig(storage, { embed: options.config ?? {} });
  const config = fullConfig.embed;
  if (config.model.trim() === "") {
    throw new ConfigError(
      "embed needs a CLIP model folder: set embed.model in clipcrawl.json (clipcrawl embed takes --model PATH for one run; clipcrawl model fetch downloads one)",
    );
  }
  // A GPU that cannot be used stops the run here, before a model or a shard is opened.
  const device = parseInferenceDevice(config.device);
  assertDeviceAvailable(device, "embed.device");
  const files = await locateClipModelFiles(resolve(cwd, config.model), config.precision);
  const digest = await modelDigest(files);
  const modelInfo = { folder: files.folder, precision: config.precision, digest };
  const multilingualFiles =
    config.multilingualModel.trim() === ""
      ? undefined
      : await locateTextModelFiles(resolve(cwd, config.multilingualModel), config.precision);
  const identity = {
    model: digest,
    multilingual:
      multilingualFiles === undefined
        ? null
        : { model: await modelDigest(multilingualFiles), tiers: config.multilingualTiers },
    outputDtype: config.outputDtype,
    scores: await scoresDigest(fullConfig.scores, configBaseDir(storage, cwd)),
  };

  const inputs = options.inputs ?? [];
  const plan =
    inputs.length === 0
      ? await planImageShards(storage, identity, options.shards)
      : await planInputShards(inputs, cwd, identity);
  const totals = emptyEmbedCounts();
  const errors = new Map<string, number>();
  let dimensions: number | null = null;
  const busy = { towerSeconds: 0, shardSeconds: 0 };
  const state = new ShardState(storage, EMBED_STAGE, { redo: options.redo });
  const loop = await runShardLoop({
    stage: EMBED_STAGE,
    shards: plan,
    planned: plan.length,
    selection: ShardSelection.of(options.shards),
    state,
    overwrite: options.overwrite === true,
    reporter,
    progress: () => ({
      samples: totals.samples,
      counters: { samples: totals.samples, embedded: totals.embedded },
    }),
    describe: (shard) => `${shard.name} (${shard.input})`,
    open: async () => {
      const encoders = await openEncoders(
        files,
        multilingualFiles,
        fullConfig,
        configBaseDir(storage, cwd),
      );
      dimensions = encoders.dimensions;
      return {
        run: async (shard: PlannedEmbedShard) => {
          const stats = await writeEmbedShard(
            storage,
            shard,
            encoders,
            config,
            modelInfo,
            reporter,
          );
          return {
            outputs: await outputInfo(storage, shardOutputs(shard.name)),
            counts: { ...countsOf(stats) },
            samples: stats.samples,
            passedOn: stats.embedded,
            result: stats,
          };
        },
        close: encoders.close,
      };
    },
    written: (stats) => {
      addCounts(totals, stats);
      busy.towerSeconds += stats.timings.image + stats.timings.text;
      busy.shardSeconds += stats.timings.total;
      for (const [message, count] of Object.entries(stats.status_dict)) {
        errors.set(message, (errors.get(message) ?? 0) + count);
      }
    },
  });

  // A --redo name the plan never offered: a typo, or a shard whose input is gone.
  const redoUnplanned = options.overwrite === true ? [] : state.redoNotPlanned();
  const failedShards = [
    ...loop.failedShards,
    ...redoUnplanned.map((shard) => ({
      shard,
      error: unplannedShardError(EMBED_STAGE, plan.length),
    })),
  ];
  const seconds = (performance.now() - started) / 1000;
  return {
    ok: failedShards.length === 0,
    source: inputs.length === 0 ? "images" : "inputs",
    model: { folder: files.folder, precision: config.precision, dimensions },
    multilingualModel: multilingualFiles?.folder ?? null,
    shards: loop.shardsTotal,
    shardsWritten: loop.shardsWritten,
    shardsSkipped: loop.shardsSkipped,
    failedShards,
    samples: totals.samples,
    outputs: totals.embedded,
    totals,
    topErrors: Object.fromEntries(
      [...errors.entries()].sort((a, b) => b[1] - a[1]).slice(0, TOP_ERRORS),
    ),
    seconds,
    samplesPerSecond: totals.samples / Math.max(seconds, 0.001),
    modelBusyShare: busy.shardSeconds > 0 ? busy.towerSeconds / busy.shardSeconds : null,
  };
}

/** The CLIP model, score heads and multilingual text model, and the encoders over them. */
async function openEncoders(
  files: ClipModelFiles,
  multilingualFiles: TextModelFiles | undefined,
  fullConfig: ClipcrawlConfig,
  baseDir: string,
): Promise<ShardEncoders & { close: () => Promise<void> }> {
  const config = fullConfig.embed;
  const model = await ClipModel.load(files.folder, {
    precision: config.precision,
    intraOpThreads: config.threads,
    device: parseInferenceDevice(config.device),
  });
  const scores = await ScoreHeads.load(fullConfig.scores, {
    model,
    baseDir,
    threads: config.threads,
    maxImagePixels: config.maxImagePixels,
  }).catch(async (error: unknown) => {
    await model.release();
    throw error;
  });
  const multilingual =
    multilingualFiles === undefined
      ? undefined
      : await loadMultilingualModel(multilingualFiles, model, config).catch(
          async (error: unknown) => {
            await Promise.all([scores.release(), model.release()]);
            throw error;
          },
        );
  const texts = new CaptionEncoder(
    new ClipEmbedder(model, { batchSize: config.batchSize }),
    multilingual === undefined
      ? undefined
      : {
          encoder: new TextEmbedder(multilingual, { batchSize: config.batchSize }),
          tiers: config.multilingualTiers,
        },
  );
  const images = new PipelinedImageEncoder(
    model,
    preprocessWorkers(config.preprocessWorkers),
    config.decodeConcurrency,
    config.maxImagePixels,
  );
  return {
    batchSize: config.batchSize,
    dimensions: model.embeddingSize,
    images,
    texts,
    scores,
    close: async () => {
      await images.close();
      await scores.release();
      await multilingual?.release();
      await model.release();
    },
  };
}

async function loadMultilingualModel(
  files: TextModelFiles,
  clip: ClipModel,
  config: EmbedConfig,
): Promise<TextModel> {
  const model = await TextModel.load(files.folder, {
    precision: config.precision,
    intraOpThreads: config.threads,
    device: parseInferenceDevice(config.device),
  });
  try {
    checkEmbeddingSizesMatch(model, clip);
  } catch (error) {
    await model.release();
    throw error;
  }
  return model;
}

/** Embeds one shard and writes its files and stats. */
async function writeEmbedShard(
  storage: DatasetStorage,
  shard: PlannedEmbedShard,
  encoders: ShardEncoders,
  config: EmbedConfig,
  model: EmbedShardStats["model"],
  reporter: StageReporter,
): Promise<EmbedShardStats> {
  const startTime = Date.now();
  const started = performance.now();
  const opened = await shard.open();
  try {
    const embedded = await embedShard(opened, encoders);
    for (const damage of embedded.damagedMembers) {
      reporter.warn(`embed shard ${shard.name}: ${shard.input}: ${damage}`);
    }
    const writeStarted = performance.now();
    await writeEmbeddingShard(
      storage,
      shard.name,
      embedded,
      await opened.source(),
      config.outputDtype,
      encoders.scores?.names,
    );
    const written = performance.now();
    const stats = shardStats(shard, embedded, config, model, {
      read: embedded.timings.readSeconds,
      preprocess: embedded.timings.preprocessSeconds,
      image: embedded.timings.imageSeconds,
      text: embedded.timings.textSeconds,
      score: embedded.timings.scoreSeconds,
      write: (written - writeStarted) / 1000,
      total: (written - started) / 1000,
    });
    stats.start_time = startTime / 1000;
    stats.end_time = Date.now() / 1000;
    await storage.writeAtomic(
      layout.embeddingStats(shard.name),
      `${JSON.stringify(stats, null, 2)}\n`,
    );
    return stats;
  } finally {
    await opened.close();
  }
}

function shardStats(
  shard: PlannedEmbedShard,
  embedded: EmbeddedShard,
  config: EmbedConfig,
  model: EmbedShardStats["model"],
  timings: EmbedShardStats["timings"],
): EmbedShardStats {
  const statusDict: Record<string, number> = {};
  let similaritySum = 0;
  let embeddedCount = 0;
  let truncated = 0;
  let scoreErrors = 0;
  const scoreErrorDict: Record<string, number> = {};
  for (const outcome of embedded.outcomes) {
    if (outcome.status === "embedded") {
      embeddedCount++;
      if (outcome.scoreError !== null) {
        scoreErrors++;
        scoreErrorDict[outcome.scoreError] = (scoreErrorDict[outcome.scoreError] ?? 0) + 1;
      }
      similaritySum += outcome.similarity ?? 0;
      if (outcome.captionTruncated === true) truncated++;
    } else {
      const label = outcome.errorMessage ?? outcome.status;
      statusDict[label] = (statusDict[label] ?? 0) + 1;
    }
  }
  return {
    shard: shard.name,
    input: shard.input,
    samples: embedded.outcomes.length,
    embedded: embeddedCount,
    failed_to_embed: embedded.outcomes.length - embeddedCount,
    captions_truncated: truncated,
    damaged_tar_members: embedded.damagedMembers.length,
    score_errors: scoreErrors,
    score_error_dict: scoreErrorDict,
    dimensions: embedded.dimensions,
    output_dtype: config.outputDtype,
    model,
    status_dict: statusDict,
    damaged: embedded.damagedMembers,
    unexpected_tar_samples: embedded.unexpectedSamples,
    mean_similarity: embeddedCount === 0 ? null : similaritySum / embeddedCount,
    timings,
    model_busy_share: (timings.image + timings.text) / Math.max(timings.total, 0.001),
    images_per_second: embeddedCount / Math.max(timings.total, 0.001),
    start_time: 0,
    end_time: 0,
  };
}

function shardOutputs(shard: string): string[] {
  return [
    layout.imageEmbeddings(shard),
    layout.textEmbeddings(shard),
    layout.embeddingMetadata(shard),
    layout.embeddingFailures(shard),
    layout.embeddingStats(shard),
  ];
}

/** 0 means a quarter of the cores (at least one): onnxruntime's threads want the rest. */
function preprocessWorkers(configured: number): number {
  return configured > 0 ? configured : Math.max(1, Math.floor(cpus().length / 4));
}

function emptyEmbedCounts(): EmbedCounts {
  return {
    samples: 0,
    embedded: 0,
    failed_to_embed: 0,
    captions_truncated: 0,
    damaged_tar_members: 0,
    score_errors: 0,
  };
}

function countsOf(stats: EmbedCounts): EmbedCounts {
  return {
    samples: stats.samples,
    embedded: stats.embedded,
    failed_to_embed: stats.failed_to_embed,
    captions_truncated: stats.captions_truncated,
    damaged_tar_members: stats.damaged_tar_members,
    score_errors: stats.score_errors,
  };
}

function addCounts(total: EmbedCounts, add: EmbedCounts): void {
  for (const key of Object.keys(total) as (keyof EmbedCounts)[]) total[key] += add[key];
}
