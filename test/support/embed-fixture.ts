/**
 * A dataset root as `clipcrawl download` leaves it, built without the network: one image shard
 * (`images/00000.tar` + `images/00000.parquet`) of coloured shapes with matching and mismatching
 * captions, and the bad cases embed must account for: an image that does not decode, a failed
 * download, a caption past the context length, and a tar member with a damaged header.
 */
import { open, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { renderShapeImage } from "../../src/demo/sample/shape-images.js";
import { layout } from "../../src/io/layout.js";
import { LocalStorage } from "../../src/io/local-storage.js";
import { writeParquet } from "../../src/io/parquet.js";
import { TarWriter } from "../../src/io/tar-writer.js";
import type { ExtraColumn, SampleRecord } from "../../src/stages/download/samples.js";
import { sampleKey, unfinishedRecord } from "../../src/stages/download/samples.js";
import { metadataColumns, sampleJson } from "../../src/stages/download/shard-writers.js";

export const LONG_CAPTION = `an orange star ${"with many small words around it and ".repeat(12)}at the end`;

export interface FixtureSample {
  key: string;
  caption: string;
  kind: "match" | "mismatch" | "corrupt-image" | "failed-download" | "long-caption" | "damaged";
}

export const EXTRA_COLUMNS: ExtraColumn[] = [
  { name: "language", type: "VARCHAR" },
  { name: "language_tier", type: "VARCHAR" },
  { name: "page_url", type: "VARCHAR" },
  { name: "source", type: "VARCHAR" },
];

interface Spec {
  kind: FixtureSample["kind"];
  caption: string;
  image?: () => Promise<Buffer>;
}

const SPECS: Spec[] = [
  { kind: "match", caption: "a red circle", image: () => renderShapeImage("red", "circle", 1) },
  { kind: "match", caption: "A blue square", image: () => renderShapeImage("blue", "square", 2) },
  {
    kind: "mismatch",
    caption: "a yellow star",
    image: () => renderShapeImage("green", "triangle", 3),
  },
  {
    kind: "corrupt-image",
    caption: "a purple circle",
    // A JPEG that starts right and stops after its first segments.
    image: async () => (await renderShapeImage("purple", "circle", 4)).subarray(0, 40),
  },
  { kind: "failed-download", caption: "a black square" },
  {
    kind: "long-caption",
    caption: LONG_CAPTION,
    image: () => renderShapeImage("orange", "star", 5),
  },
  { kind: "damaged", caption: "a green star", image: () => renderShapeImage("green", "star", 6) },
  {
    kind: "match",
    caption: "a white triangle on a black background",
    image: () => renderShapeImage("white", "triangle", 7),
  },
  {
    kind: "mismatch",
    caption: "a red square",
    image: () => renderShapeImage("blue", "circle", 8),
  },
];

/** Writes the shard into `root`; returns the samples in key order. */
export async function writeImageShardFixture(root: string): Promise<FixtureSample[]> {
  const storage = new LocalStorage(root);
  const records: SampleRecord[] = [];
  const images = new Map<number, Buffer>();
  for (const [index, spec] of SPECS.entries()) {
    const key = sampleKey(0, index, 100);
    const extra = {
      language: "en",
      language_tier: "en",
      page_url: `https://shapes.example/page/${index}`,
      source: `sample.wat.gz:${index * 100}`,
    };
    if (spec.image === undefined) {
      records.push(
        unfinishedRecord(
          key,
          { url: "https://shapes.example/img/missing.jpg", caption: spec.caption, extra },
          "failed_to_download",
          "HTTP 404",
        ),
      );
      continue;
    }
    const image = await spec.image();
    images.set(index, image);
    records.push({
      key,
      url: `https://shapes.example/img/${index}.jpg`,
      caption: spec.caption,
      status: "success",
      errorMessage: null,
      width: 256,
      height: 256,
      originalWidth: 256,
      originalHeight: 256,
      exif: null,
      sha256: `${index}`.padStart(64, "0"),
      md5: null,
      sha1: null,
      extension: "jpg",
      extra,
    });
  }

  const tarPath = await storage.localPath(layout.imageTar("00000"));
  await storage.writeAtomicWith(layout.imageTar("00000"), async (localPath) => {
    const file = await open(localPath, "w");
    const tar = new TarWriter(file);
    for (const [index, record] of records.entries()) {
      if (record.status !== "success") continue;
      await tar.add(`${record.key}.jpg`, images.get(index) as Buffer);
      await tar.add(`${record.key}.json`, Buffer.from(sampleJson(record, EXTRA_COLUMNS)));
      await tar.add(`${record.key}.txt`, Buffer.from(record.caption ?? ""));
    }
    await tar.finish();
    await file.close();
  });
  const damagedIndex = SPECS.findIndex((spec) => spec.kind === "damaged");
  await damageHeader(tarPath, `${sampleKey(0, damagedIndex, 100)}.jpg`);
  await writeParquet(
    storage,
    layout.imageParquet("00000"),
    metadataColumns(EXTRA_COLUMNS),
    records,
  );

  return records.map((record, index) => ({
    key: record.key,
    caption: record.caption ?? "",
    kind: (SPECS[index] as Spec).kind,
  }));
}

/** Flips one byte of a member's name, so its header checksum no longer matches. */
async function damageHeader(tarPath: string, member: string): Promise<void> {
  const bytes = await readFile(tarPath);
  const at = bytes.indexOf(Buffer.from(`${member}\u0000`));
  if (at < 0 || at % 512 !== 0) throw new Error(`no header for ${member}`);
  bytes[at + 2] = (bytes[at + 2] as number) ^ 0x01;
  await writeFile(tarPath, bytes);
}

export const fixtureModelDir = (workDir: string) => join(workDir, "model");
