/**
 * A whole dataset root as the stages leave it, written with the project's own writers and no
 * network or model: per shard the candidate rows, download's image tar + parquet + stats, embed's
 * `.npy` pair, metadata and failures, filter's dataset shard, and every stage's done marker.
 *
 * Sample n (counting across shards) is deterministic: URL `https://site-{n mod 4}.example/img/{n}.jpg`
 * (so domains group samples), hashes derived from n, language en / de / "" in turn. Its image
 * embedding row holds n in its first value, so a test can tell that the `.npy` rows still line up
 * with the metadata after rows are taken out. Some samples fail along the way, as in real runs:
 * every 7th fails to download, every 11th fails to embed, every 5th is dropped by filter.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";
import { initRoot } from "../../src/config/init-root.js";
import { layout, shardName } from "../../src/io/layout.js";
import { LocalStorage } from "../../src/io/local-storage.js";
import { encodeNpy } from "../../src/io/npy.js";
import { type ParquetColumn, writeParquet } from "../../src/io/parquet.js";
import { TarWriter } from "../../src/io/tar-writer.js";
import { toFloat16Bits } from "../../src/models/float16.js";
import { ShardState } from "../../src/shard/shard-state.js";
import type { ExtraColumn, SampleRecord } from "../../src/stages/download/samples.js";
import { sampleKey } from "../../src/stages/download/samples.js";
import { metadataColumns, sampleJson } from "../../src/stages/download/shard-writers.js";

export const DIMENSIONS = 8;
export const LANGUAGES = ["en", "de", ""];

export interface GeneratedSample {
  n: number;
  key: string;
  shard: string;
  url: string;
  caption: string;
  language: string;
  sha256: string;
  md5: string;
  sha1: string;
  downloaded: boolean;
  embedded: boolean;
  kept: boolean;
}

export const CANDIDATE_EXTRA: ExtraColumn[] = [
  { name: "language", type: "VARCHAR" },
  { name: "language_tier", type: "VARCHAR" },
  { name: "page_url", type: "VARCHAR" },
  { name: "source", type: "VARCHAR" },
  { name: "record_offset", type: "BIGINT" },
  { name: "crawl_date", type: "VARCHAR" },
];

const digest = (algorithm: string, n: number) =>
  createHash(algorithm).update(`image ${n}`).digest("hex");

export function generatedSample(n: number, perShard: number): GeneratedSample {
  const shardIndex = Math.floor(n / perShard);
  const language = LANGUAGES[n % LANGUAGES.length] as string;
  const downloaded = n % 7 !== 3;
  const embedded = downloaded && n % 11 !== 5;
  return {
    n,
    key: sampleKey(shardIndex, n % perShard, perShard),
    shard: shardName(shardIndex),
    url: `https://site-${n % 4}.example/img/${n}.jpg`,
    caption: `caption of sample ${n}`,
    language,
    sha256: digest("sha256", n),
    md5: digest("md5", n),
    sha1: digest("sha1", n),
    downloaded,
    embedded,
    kept: embedded && n % 5 !== 2,
  };
}

/** Writes the root; returns every sample, shard by shard. */
export async function writeDatasetRoot(
  root: string,
  options: { shards: number; perShard: number },
): Promise<GeneratedSample[]> {
  const storage = new LocalStorage(root);
  await initRoot(storage);
  const all: GeneratedSample[] = [];
  for (let shardIndex = 0; shardIndex < options.shards; shardIndex++) {
    const samples = Array.from({ length: options.perShard }, (_, index) =>
      generatedSample(shardIndex * options.perShard + index, options.perShard),
    );
    all.push(...samples);
    await writeShard(storage, shardName(shardIndex), samples, options.perShard);
  }
  return all;
}

function extra(sample: GeneratedSample): SampleRecord["extra"] {
  return {
    language: sample.language,
    language_tier: sample.language === "en" ? "en" : sample.language === "" ? "nolang" : "multi",
    page_url: `https://pages.example/${sample.n}.html`,
    source: "CC-MAIN-TEST.warc.wat.gz",
    record_offset: BigInt(1000 * sample.n),
    crawl_date: "2024-03-01T12:00:00Z",
  };
}

function record(sample: GeneratedSample): SampleRecord {
  const base = {
    key: sample.key,
    url: sample.url,
    caption: sample.caption,
    extra: extra(sample),
    exif: null,
    extension: null,
  };
  if (!sample.downloaded) {
    return {
      ...base,
      status: "failed_to_download",
      errorMessage: "HTTP 404",
      width: null,
      height: null,
      originalWidth: null,
      originalHeight: null,
      sha256: null,
      md5: null,
      sha1: null,
    };
  }
  return {
    ...base,
    status: "success",
    errorMessage: null,
    width: 64,
    height: 64,
    originalWidth: 300 + sample.n,
    originalHeight: 200 + sample.n,
    sha256: sample.sha256,
    md5: sample.md5,
    sha1: sample.sha1,
    extension: "jpg",
  };
}

async function writeShard(
  storage: LocalStorage,
  shard: string,
  samples: GeneratedSample[],
  perShard: number,
): Promise<void> {
  const candidates: ParquetColumn<GeneratedSample>[] = [
    { name: "url", type: "VARCHAR", value: (sample) => sample.url },
    { name: "text", type: "VARCHAR", value: (sample) => sample.caption },
    ...CANDIDATE_EXTRA.map((column) => ({
      name: column.name,
      type: column.type,
      value: (sample: GeneratedSample) => extra(sample)[column.name] ?? null,
    })),
  ];
  await writeParquet(storage, layout.candidates(shard), candidates, samples);

  const records = samples.map(record);
  await storage.writeAtomicWith(layout.imageTar(shard), async (localPath) => {
    const file = await open(localPath, "w");
    try {
      const tar = new TarWriter(file);
      for (const [index, item] of records.entries()) {
        if (item.status !== "success") continue;
        const sample = samples[index] as GeneratedSample;
        await tar.add(`${item.key}.jpg`, Buffer.from(`fake jpeg bytes of sample ${sample.n}`));
        await tar.add(`${item.key}.json`, Buffer.from(sampleJson(item, CANDIDATE_EXTRA)));
        await tar.add(`${item.key}.txt`, Buffer.from(item.caption ?? ""));
      }
      await tar.finish();
    } finally {
      await file.close();
    }
  });
  await writeParquet(
    storage,
    layout.imageParquet(shard),
    metadataColumns(CANDIDATE_EXTRA),
    records,
  );
  await storage.writeAtomic(
    layout.imageStats(shard),
    JSON.stringify({ shard, count: samples.length, config: { samplesPerShard: perShard } }),
  );

  const embedded = samples.filter((sample) => sample.embedded);
  const metadata: ParquetColumn<GeneratedSample>[] = [
    { name: "key", type: "VARCHAR", value: (sample) => sample.key },
    { name: "url", type: "VARCHAR", value: (sample) => sample.url },
    { name: "caption", type: "VARCHAR", value: (sample) => sample.caption },
    { name: "similarity", type: "DOUBLE", value: (sample) => (sample.kept ? 0.35 : 0.1) },
    { name: "status", type: "VARCHAR", value: () => "embedded" },
    { name: "error_message", type: "VARCHAR", value: () => null },
    { name: "punsafe", type: "DOUBLE", value: (sample) => (sample.n % 10) / 10 },
    { name: "AESTHETIC_SCORE", type: "DOUBLE", value: (sample) => 4 + (sample.n % 4) },
    { name: "original_width", type: "INTEGER", value: (sample) => 300 + sample.n },
    { name: "original_height", type: "INTEGER", value: (sample) => 200 + sample.n },
    { name: "sha256", type: "VARCHAR", value: (sample) => sample.sha256 },
    { name: "md5", type: "VARCHAR", value: (sample) => sample.md5 },
    { name: "sha1", type: "VARCHAR", value: (sample) => sample.sha1 },
    { name: "language", type: "VARCHAR", value: (sample) => sample.language },
    {
      name: "page_url",
      type: "VARCHAR",
      value: (sample) => `https://pages.example/${sample.n}.html`,
    },
    { name: "source", type: "VARCHAR", value: () => "CC-MAIN-TEST.warc.wat.gz" },
  ];
  await writeParquet(storage, layout.embeddingMetadata(shard), metadata, embedded);
  const failed = samples.filter((sample) => sample.downloaded && !sample.embedded);
  await writeParquet(
    storage,
    layout.embeddingFailures(shard),
    [
      ...metadata.slice(0, 3),
      { name: "status", type: "VARCHAR", value: () => "failed_to_embed" },
      { name: "error_message", type: "VARCHAR", value: () => "image does not decode" },
      { name: "sha256", type: "VARCHAR", value: (sample) => sample.sha256 },
      { name: "md5", type: "VARCHAR", value: (sample) => sample.md5 },
    ],
    failed,
  );
  for (const [path, offset] of [
    [layout.imageEmbeddings(shard), 0],
    [layout.textEmbeddings(shard), 0.5],
  ] as const) {
    const values = new Float32Array(embedded.length * DIMENSIONS);
    embedded.forEach((sample, row) => {
      values[row * DIMENSIONS] = sample.n;
      for (let column = 1; column < DIMENSIONS; column++) {
        values[row * DIMENSIONS + column] = offset + column / DIMENSIONS;
      }
    });
    await storage.writeAtomic(
      path,
      encodeNpy({
        dtype: "<f2",
        shape: [embedded.length, DIMENSIONS],
        data: toFloat16Bits(values),
      }),
    );
  }

  const kept = embedded.filter((sample) => sample.kept);
  await writeParquet(storage, layout.datasetShard(shard), datasetColumns, kept);

  const outputs = async (paths: string[]) =>
    Promise.all(
      paths.map(async (path) => ({ path, bytes: (await storage.stat(path))?.bytes ?? -1 })),
    );
  await new ShardState(storage, "download").markDone({
    shard,
    inputDigest: `download ${shard}`,
    outputs: await outputs([
      layout.imageTar(shard),
      layout.imageParquet(shard),
      layout.imageStats(shard),
    ]),
    counts: {},
  });
  await new ShardState(storage, "embed").markDone({
    shard,
    inputDigest: `embed ${shard}`,
    outputs: await outputs([
      layout.imageEmbeddings(shard),
      layout.textEmbeddings(shard),
      layout.embeddingMetadata(shard),
      layout.embeddingFailures(shard),
    ]),
    counts: {},
  });
  await new ShardState(storage, "filter").markDone({
    shard,
    inputDigest: `filter ${shard}`,
    outputs: await outputs([layout.datasetShard(shard)]),
    counts: {},
  });
}

/** The dataset shard's columns (filter's LAION schema), from a generated sample. */
const datasetColumns: ParquetColumn<GeneratedSample>[] = [
  { name: "URL", type: "VARCHAR", value: (sample) => sample.url },
  { name: "TEXT", type: "VARCHAR", value: (sample) => sample.caption },
  { name: "WIDTH", type: "BIGINT", value: (sample) => 300 + sample.n },
  { name: "HEIGHT", type: "BIGINT", value: (sample) => 200 + sample.n },
  { name: "similarity", type: "DOUBLE", value: () => 0.35 },
  { name: "punsafe", type: "DOUBLE", value: (sample) => (sample.n % 10) / 10 },
  { name: "pwatermark", type: "DOUBLE", value: () => null },
  { name: "ptoxic", type: "DOUBLE", value: () => null },
  { name: "AESTHETIC_SCORE", type: "DOUBLE", value: (sample) => 4 + (sample.n % 4) },
  { name: "LANGUAGE", type: "VARCHAR", value: (sample) => sample.language },
  { name: "hash", type: "BIGINT", value: (sample) => BigInt(sample.n) * 7919n },
  { name: "key", type: "VARCHAR", value: (sample) => sample.key },
  { name: "sha256", type: "VARCHAR", value: (sample) => sample.sha256 },
  {
    name: "page_url",
    type: "VARCHAR",
    value: (sample) => `https://pages.example/${sample.n}.html`,
  },
  { name: "source", type: "VARCHAR", value: () => "CC-MAIN-TEST.warc.wat.gz" },
];
