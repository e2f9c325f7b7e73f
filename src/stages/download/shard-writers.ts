/**
 * The output formats of an image shard, behind one interface (as img2dataset's writers):
 * - webdataset: `images/NNNNN.tar` (KEY.jpg, KEY.json, KEY.txt per success) + `NNNNN.parquet`
 * - files: a folder `images/NNNNN/` holding the same files + `NNNNN.parquet`
 * - parquet: `images/NNNNN.parquet` with the image bytes in a column named after the format
 * Every format writes the metadata of every sample, failures included, to `NNNNN.parquet`.
 */
import { mkdir, open, rename, rm, writeFile } from "node:fs/promises";
import { layout } from "../../io/layout.js";
import { LocalStorage } from "../../io/local-storage.js";
import { type CellValue, type ParquetColumn, writeParquet } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import { TarWriter } from "../../io/tar-writer.js";
import type { DownloadConfig } from "./config.js";
import type { ExtraColumn, SampleRecord } from "./samples.js";

export interface CompletedShard {
  name: string;
  /** Every sample of the shard, in key order. */
  records: readonly SampleRecord[];
  extraColumns: readonly ExtraColumn[];
  /** Whether the input had a caption column: then each success also gets KEY.txt. */
  hasCaptions: boolean;
  /** The stored image of a successful record, by its index in `records`. */
  image(index: number): Promise<Buffer>;
}

export interface ShardOutputWriter {
  /** Writes the shard's outputs atomically; returns the files written. */
  write(shard: CompletedShard): Promise<string[]>;
}

export function shardWriterFor(
  format: DownloadConfig["outputFormat"],
  storage: DatasetStorage,
  imageColumn: string,
): ShardOutputWriter {
  switch (format) {
    case "webdataset":
      return new WebdatasetWriter(storage);
    case "files":
      return new FilesWriter(storage);
    case "parquet":
      return new ParquetImagesWriter(storage, imageColumn);
  }
}

/** The columns of `NNNNN.parquet`, img2dataset's first, then the hashes and carried columns. */
export function metadataColumns(
  extraColumns: readonly ExtraColumn[],
): ParquetColumn<SampleRecord>[] {
  return [
    { name: "key", type: "VARCHAR", value: (record) => record.key },
    { name: "url", type: "VARCHAR", value: (record) => record.url },
    { name: "caption", type: "VARCHAR", value: (record) => record.caption },
    { name: "status", type: "VARCHAR", value: (record) => record.status },
    { name: "error_message", type: "VARCHAR", value: (record) => record.errorMessage },
    { name: "width", type: "INTEGER", value: (record) => record.width },
    { name: "height", type: "INTEGER", value: (record) => record.height },
    { name: "original_width", type: "INTEGER", value: (record) => record.originalWidth },
    { name: "original_height", type: "INTEGER", value: (record) => record.originalHeight },
    { name: "exif", type: "VARCHAR", value: (record) => record.exif },
    { name: "sha256", type: "VARCHAR", value: (record) => record.sha256 },
    { name: "md5", type: "VARCHAR", value: (record) => record.md5 },
    { name: "sha1", type: "VARCHAR", value: (record) => record.sha1 },
    ...extraColumns.map(
      (column): ParquetColumn<SampleRecord> => ({
        name: column.name,
        type: column.type,
        value: (record) => record.extra[column.name] ?? null,
      }),
    ),
  ];
}

/** KEY.json: the sample's metadata row as a JSON object, as img2dataset writes it. */
export function sampleJson(record: SampleRecord, extraColumns: readonly ExtraColumn[]): string {
  const object: Record<string, unknown> = {};
  for (const column of metadataColumns(extraColumns)) {
    object[column.name] = jsonValue(column.value(record));
  }
  return JSON.stringify(object, null, 4);
}

/** The files of one successful sample, in the order webdataset's TarWriter writes them. */
async function sampleFiles(
  shard: CompletedShard,
  index: number,
): Promise<{ name: string; data: Uint8Array }[]> {
  const record = shard.records[index] as SampleRecord;
  const files = [
    { extension: record.extension ?? "jpg", data: await shard.image(index) },
    { extension: "json", data: Buffer.from(sampleJson(record, shard.extraColumns)) },
  ];
  if (shard.hasCaptions) files.push({ extension: "txt", data: Buffer.from(record.caption ?? "") });
  files.sort((a, b) => (a.extension < b.extension ? -1 : a.extension > b.extension ? 1 : 0));
  return files.map((file) => ({ name: `${record.key}.${file.extension}`, data: file.data }));
}

class WebdatasetWriter implements ShardOutputWriter {
  constructor(private readonly storage: DatasetStorage) {}

  async write(shard: CompletedShard): Promise<string[]> {
    const tarPath = layout.imageTar(shard.name);
    await this.storage.writeAtomicWith(tarPath, async (localPath) => {
      const file = await open(localPath, "w");
      try {
        const tar = new TarWriter(file);
        for (const [index, record] of shard.records.entries()) {
          if (record.status !== "success") continue;
          for (const entry of await sampleFiles(shard, index))
            await tar.add(entry.name, entry.data);
        }
        await tar.finish();
      } finally {
        await file.close();
      }
    });
    const parquetPath = layout.imageParquet(shard.name);
    await writeParquet(
      this.storage,
      parquetPath,
      metadataColumns(shard.extraColumns),
      shard.records,
    );
    return [tarPath, parquetPath];
  }
}

/**
 * One file per image. On a local root the folder is filled under a temporary name and renamed
 * into place, which costs one rename instead of an fsync per file; object storage has no folder
 * to rename, so each file is its own object there. Either way the done marker, written after the
 * folder, is what proves it complete.
 */
class FilesWriter implements ShardOutputWriter {
  constructor(private readonly storage: DatasetStorage) {}

  async write(shard: CompletedShard): Promise<string[]> {
    const folder = layout.imageFilesFolder(shard.name);
    if (this.storage instanceof LocalStorage) {
      await this.writeLocalFolder(shard, await this.storage.localPath(folder));
    } else {
      await this.storage.remove(folder);
      for (const [index, record] of shard.records.entries()) {
        if (record.status !== "success") continue;
        for (const entry of await sampleFiles(shard, index)) {
          await this.storage.writeAtomic(`${folder}/${entry.name}`, entry.data);
        }
      }
    }
    const parquetPath = layout.imageParquet(shard.name);
    await writeParquet(
      this.storage,
      parquetPath,
      metadataColumns(shard.extraColumns),
      shard.records,
    );
    return [parquetPath];
  }

  private async writeLocalFolder(shard: CompletedShard, folder: string): Promise<void> {
    const partial = `${folder}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(partial, { recursive: true });
    for (const [index, record] of shard.records.entries()) {
      if (record.status !== "success") continue;
      for (const entry of await sampleFiles(shard, index)) {
        await writeFile(`${partial}/${entry.name}`, entry.data);
      }
    }
    await rm(folder, { recursive: true, force: true });
    await rename(partial, folder);
  }
}

class ParquetImagesWriter implements ShardOutputWriter {
  constructor(
    private readonly storage: DatasetStorage,
    private readonly imageColumn: string,
  ) {}

  async write(shard: CompletedShard): Promise<string[]> {
    const images = new Map<number, Buffer>();
    for (const [index, record] of shard.records.entries()) {
      if (record.status === "success") images.set(index, await shard.image(index));
    }
    const indexed = shard.records.map((record, index) => ({ record, index }));
    const columns: ParquetColumn<{ record: SampleRecord; index: number }>[] = [
      ...metadataColumns(shard.extraColumns).map((column) => ({
        ...column,
        value: (row: { record: SampleRecord }) => column.value(row.record),
      })),
      {
        name: this.imageColumn,
        type: "BLOB",
        value: (row: { index: number }) => images.get(row.index) ?? null,
      },
    ];
    const parquetPath = layout.imageParquet(shard.name);
    await writeParquet(this.storage, parquetPath, columns, indexed);
    return [parquetPath];
  }
}

function jsonValue(value: CellValue): unknown {
  if (typeof value === "bigint") {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
      ? Number(value)
      : String(value);
  }
  if (value instanceof Uint8Array) return undefined;
  return value;
}
