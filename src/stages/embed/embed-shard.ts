/**
 * One image shard → CLIP embeddings: `embedShard(input, encoders)`.
 *
 * The shard's tar is streamed sample by sample and embedded in batches (images, then the
 * captions of the images that decoded); the next batch is decoded while the previous one is in
 * the towers, so memory holds two batches of images plus the finished embeddings. Every expected row ends in an outcome: `embedded`, or `failed_to_embed` with the
 * reason (the image does not decode, or it is not in the tar, e.g. behind a damaged member).
 * A model that fails to run is a shard-level exception.
 */
import type { TarEntry, WebdatasetSample } from "../../io/tar-reader.js";
import type { EmbeddingMatrix } from "../../models/clip-model.js";
import { cosineSimilarity, embeddingRow } from "../../models/embedder.js";
import type { ScoredBatch } from "../../models/heads/score-heads.js";
import type { CaptionEncoder, TextTowerName } from "./caption-encoder.js";
import type { EncodedImages, PreparedImages } from "./image-encoder.js";

/** Extensions webdataset writers use for the image of a sample, in order of preference. */
export const IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "avif", "bmp"];

/** A sample the shard must account for (a `success` row of the download parquet). */
export interface ExpectedSample {
  key: string;
  caption: string | null;
  /** extract's language tier, which picks the text tower; null when the shard has none. */
  languageTier?: string | null;
}

export type EmbedSampleStatus = "embedded" | "failed_to_embed";

export interface SampleOutcome {
  key: string;
  /** The caption that was embedded (the parquet's, else the tar's KEY.txt; "" when none). */
  caption: string;
  status: EmbedSampleStatus;
  errorMessage: string | null;
  similarity: number | null;
  captionTruncated: boolean | null;
  /** Which text tower embedded the caption. */
  textTower: TextTowerName | null;
  /** L2-normalised rows, for embedded samples. */
  image: Float32Array | null;
  text: Float32Array | null;
  /** One value per score head (null where the head gave no number), for embedded samples. */
  scores: Record<string, number | null>;
  /** Why a score is missing, e.g. `punsafe head returned NaN`; null when every head answered. */
  scoreError: string | null;
}

export interface EmbedShardInput {
  /**
   * The samples to account for, in output order. Undefined when the tar is the only source
   * (a plain webdataset folder): then every sample in the tar is one, in tar order.
   */
  expected?: readonly ExpectedSample[];
  samples: AsyncIterable<WebdatasetSample | Extract<TarEntry, { kind: "damaged" }>>;
}

export interface EmbedShardTimings {
  /** Reading the tar (time spent waiting for samples). */
  readSeconds: number;
  /** Decoding and preprocessing on the worker threads (overlaps the towers' runs). */
  preprocessSeconds: number;
  /** The vision tower's runs (session.run alone: the batch's assembly is not in it). */
  imageSeconds: number;
  /** Tokenising and the text tower. */
  textSeconds: number;
  /** The score heads. */
  scoreSeconds: number;
}

export interface EmbeddedShard {
  /** One per expected sample (or per tar sample), in output order. */
  outcomes: SampleOutcome[];
  dimensions: number;
  damagedMembers: string[];
  /** Tar samples with no expected row (left out: the parquet says they are not successes). */
  unexpectedSamples: number;
  timings: EmbedShardTimings;
}

export const MISSING_FROM_TAR = "image missing from tar";
export const DECODE_FAILED = "image does not decode";
/** The header check refused it before decoding: not a raster format, or a decompression bomb. */
export const IMAGE_REFUSED = "image refused";

interface Pending {
  position: number;
  caption: string;
  tier: string | null;
  image: Buffer;
}

/** What a shard needs from the model: images in two overlapping steps, captions in one. */
export interface ShardEncoders {
  batchSize: number;
  dimensions: number;
  images: {
    prepare(images: readonly Uint8Array[]): Promise<PreparedImages>;
    encode(prepared: PreparedImages): Promise<EncodedImages>;
  };
  texts: Pick<CaptionEncoder, "embedCaptions">;
  /** The score heads, run on every batch that embedded; none when undefined. */
  scores?: {
    readonly names: readonly string[];
    readonly needsImageBytes: boolean;
    score(batch: {
      image: EmbeddingMatrix;
      text: EmbeddingMatrix;
      imageBytes?: readonly Uint8Array[];
    }): Promise<ScoredBatch>;
  };
}

export async function embedShard(
  input: EmbedShardInput,
  encoders: ShardEncoders,
): Promise<EmbeddedShard> {
  const outcomes: (SampleOutcome | undefined)[] = [];
  const expectedKeys = new Map<string, number>();
  const expectedCaptions: (string | null)[] = [];
  const expectedTiers: (string | null)[] = [];
  if (input.expected !== undefined) {
    for (const [position, sample] of input.expected.entries()) {
      expectedKeys.set(sample.key, position);
      expectedCaptions.push(sample.caption);
      expectedTiers.push(sample.languageTier ?? null);
      outcomes.push(undefined);
    }
  }
  const keys: string[] = input.expected?.map((sample) => sample.key) ?? [];
  const damagedMembers: string[] = [];
  const timings: EmbedShardTimings = {
    readSeconds: 0,
    preprocessSeconds: 0,
    imageSeconds: 0,
    textSeconds: 0,
    scoreSeconds: 0,
  };
  let unexpectedSamples = 0;
  let pending: Pending[] = [];
  let inFlight: Promise<void> = Promise.resolve();

  const finish = async (batch: Pending[], preparing: Promise<PreparedImages>) => {
    const prepared = await preparing;
    const images = await encoders.images.encode(prepared);
    timings.imageSeconds += images.towerSeconds;
    for (const failure of images.failures) {
      const sample = batch[failure.index] as Pending;
      outcomes[sample.position] = failed(
        keys[sample.position] as string,
        sample.caption,
        `${failure.refused === true ? IMAGE_REFUSED : DECODE_FAILED}: ${decodeReason(failure.message)}`,
      );
    }
    if (images.indices.length === 0) return;
    let started = performance.now();
    const texts = await encoders.texts.embedCaptions(
      images.indices.map((index) => {
        const sample = batch[index] as Pending;
        return { text: sample.caption, tier: sample.tier };
      }),
    );
    timings.textSeconds += (performance.now() - started) / 1000;
    started = performance.now();
    const scored = await encoders.scores?.score({
      image: images.embeddings,
      text: texts.embeddings,
      ...(encoders.scores.needsImageBytes
        ? { imageBytes: images.indices.map((index) => (batch[index] as Pending).image) }
        : {}),
    });
    timings.scoreSeconds += (performance.now() - started) / 1000;
    images.indices.forEach((index, row) => {
      const sample = batch[index] as Pending;
      const image = Float32Array.from(embeddingRow(images.embeddings, row));
      const text = Float32Array.from(embeddingRow(texts.embeddings, row));
      outcomes[sample.position] = {
        key: keys[sample.position] as string,
        caption: sample.caption,
        status: "embedded",
        errorMessage: null,
        similarity: cosineSimilarity(image, text),
        captionTruncated: texts.truncated[row] ?? false,
        textTower: texts.towers[row] ?? null,
        image,
        text,
        scores: Object.fromEntries(
          (encoders.scores?.names ?? []).map((name) => [name, scored?.values[name]?.[row] ?? null]),
        ),
        scoreError: scored?.errors[row] ?? null,
      };
    });
  };

  // Batch k + 1 is decoded on the workers while batch k runs through the towers.
  const flush = async () => {
    const batch = pending;
    pending = [];
    if (batch.length === 0) return;
    const started = performance.now();
    const preparing = encoders.images.prepare(batch.map((sample) => sample.image));
    const timed = preparing.finally(() => {
      timings.preprocessSeconds += (performance.now() - started) / 1000;
    });
    // Awaited in finish(); until then a rejection must not count as unhandled.
    timed.catch(() => {});
    await inFlight;
    inFlight = finish(batch, timed);
    // Awaited by the next flush or at the end; a failure meanwhile is not unhandled.
    inFlight.catch(() => {});
  };

  const iterator = input.samples[Symbol.asyncIterator]();
  while (true) {
    const started = performance.now();
    const next = await iterator.next();
    timings.readSeconds += (performance.now() - started) / 1000;
    if (next.done === true) break;
    const sample = next.value;
    if ("kind" in sample) {
      damagedMembers.push(`${sample.message} at byte ${sample.offset}`);
      continue;
    }
    let position: number;
    if (input.expected === undefined) {
      position = keys.length;
      keys.push(sample.key);
      expectedCaptions.push(null);
      expectedTiers.push(null);
      outcomes.push(undefined);
    } else {
      const found = expectedKeys.get(sample.key);
      if (found === undefined || outcomes[found] !== undefined) {
        unexpectedSamples++;
        continue;
      }
      position = found;
    }
    const caption = expectedCaptions[position] ?? textOf(sample) ?? "";
    const image = imageOf(sample);
    if (image === undefined) {
      outcomes[position] = failed(sample.key, caption, missingReason(damagedMembers));
      continue;
    }
    const tier = expectedTiers[position] ?? tierOf(sample);
    pending.push({ position, caption, tier, image });
    if (pending.length >= encoders.batchSize) await flush();
  }
  await flush();
  await inFlight;

  const finished = keys.map(
    (key, position) =>
      outcomes[position] ??
      failed(key, expectedCaptions[position] ?? "", missingReason(damagedMembers)),
  );
  return {
    outcomes: finished,
    dimensions: encoders.dimensions,
    damagedMembers,
    unexpectedSamples,
    timings,
  };
}

function failed(key: string, caption: string, message: string): SampleOutcome {
  return {
    key,
    caption,
    status: "failed_to_embed",
    errorMessage: message,
    similarity: null,
    captionTruncated: null,
    textTower: null,
    image: null,
    text: null,
    scores: {},
    scoreError: null,
  };
}

function missingReason(damagedMembers: readonly string[]): string {
  return damagedMembers.length > 0
    ? `${MISSING_FROM_TAR} (the tar has damaged members)`
    : MISSING_FROM_TAR;
}

/**
 * libvips repeats its reason once per decode attempt; one copy of each keeps the message short
 * and the same for every image that fails the same way, so stats can count it.
 */
export function decodeReason(message: string): string {
  const parts = message.split(/\s+(?=Vips\w+: )/);
  return [...new Set(parts)].join(" ");
}

function imageOf(sample: WebdatasetSample): Buffer | undefined {
  for (const extension of IMAGE_EXTENSIONS) {
    const data = sample.files.get(extension);
    if (data !== undefined) return data;
  }
  return undefined;
}

/** `language_tier` from the sample's KEY.json, as download writes it for candidate shards. */
function tierOf(sample: WebdatasetSample): string | null {
  const json = sample.files.get("json");
  if (json === undefined) return null;
  try {
    const parsed = JSON.parse(json.toString("utf8")) as Record<string, unknown>;
    return typeof parsed.language_tier === "string" ? parsed.language_tier : null;
  } catch {
    return null;
  }
}

function textOf(sample: WebdatasetSample): string | undefined {
  const text = sample.files.get("txt");
  if (text !== undefined) return text.toString("utf8");
  const json = sample.files.get("json");
  if (json === undefined) return undefined;
  try {
    const parsed = JSON.parse(json.toString("utf8")) as Record<string, unknown>;
    return typeof parsed.caption === "string" ? parsed.caption : undefined;
  } catch {
    // A KEY.json that does not parse carries no caption; the sample is still embedded.
    return undefined;
  }
}
