/**
 * Which shards `embed` reads, and the digest of everything each one's output depends on.
 *
 * - The root's image shards (the default): `images/NNNNN.parquet` says which samples succeeded
 *   and carries their columns; `images/NNNNN.tar` holds their images. Output NNNNN = input NNNNN.
 * - Positional inputs: webdataset tars (files, or folders of them; no parquet: every sample in the
 *   tar counts, its KEY.json gives the columns), or a folder of images with `.txt` captions next
 *   to them. Output shards are numbered from 00000 in input order.
 *
 * A digest covers the input files' identity (size and modification time, and the download
 * stage's own digest when there is one: hashing every tar on every re-run would cost more than a
 * skip check should), the model's digest and the output dtype.
 */
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { extname, join, relative, resolve } from "node:path";
import { InputError } from "../../errors.js";
import { fileIdentity, localFileIdentity } from "../../io/file-info.js";
import { layout, shardName } from "../../io/layout.js";
import { quoteLiteral, readParquet } from "../../io/parquet.js";
import type { DatasetStorage } from "../../io/storage.js";
import {
  readTarEntries,
  readWebdatasetSamples,
  type TarEntry,
  type WebdatasetSample,
} from "../../io/tar-reader.js";
import { namedShardsPresent } from "../../shard/shard-selection.js";
import { digestOf, ShardState } from "../../shard/shard-state.js";
import type { EmbedConfig } from "./config.js";
import { type EmbedShardInput, IMAGE_EXTENSIONS } from "./embed-shard.js";

/** Bump when the output of the same input and model changes, so finished shards are redone. */
export const EMBED_FORMAT_VERSION = 1;
/** Images of an image folder per output shard (img2dataset's default shard size). */
export const IMAGE_FOLDER_SHARD_SIZE = 10_000;

const IMAGE_SHARD = /^(\d{5})\.parquet$/;
const DOWNLOAD_STAGE = "download";

export interface OpenedShard extends EmbedShardInput {
  /**
   * The DuckDB relation of the source rows whose columns the metadata carries (one row per key);
   * asked for once the samples have been read.
   */
  source(): Promise<string | undefined>;
  /** Cleans up whatever opening the shard created. */
  close(): Promise<void>;
}

export interface PlannedEmbedShard {
  name: string;
  /** What the shard reads, for messages. */
  input: string;
  digest: string;
  open(): Promise<OpenedShard>;
}

export interface OutputIdentity {
  model: string;
  outputDtype: EmbedConfig["outputDtype"];
}

export async function planImageShards(
  storage: DatasetStorage,
  identity: OutputIdentity,
  only?: readonly string[],
): Promise<PlannedEmbedShard[]> {
  // A call of named shards (a job) plans only those, so its cost does not grow with the run.
  const names =
    only === undefined
      ? (await storage.list(layout.imagesFolder()))
          .map((name) => IMAGE_SHARD.exec(name)?.[1])
          .filter((name): name is string => name !== undefined)
      : await namedShardsPresent(only, (name) => storage.exists(layout.imageParquet(name)));
  if (names.length === 0 && only === undefined) {
    throw new InputError(
      "CC_NO_IMAGE_SHARDS",
      storage.describe(layout.imagesFolder()),
      "no image shards (NNNNN.parquet + NNNNN.tar); run clipcrawl download first, or pass webdataset tars or an image folder",
    );
  }
  const downloads = new ShardState(storage, DOWNLOAD_STAGE);
  const planned: PlannedEmbedShard[] = [];
  for (const name of names) {
    const parquet = layout.imageParquet(name);
    const tar = layout.imageTar(name);
    const marker = await downloads.read(name);
    planned.push({
      name,
      input: storage.describe(tar),
      digest: digestOf({
        version: EMBED_FORMAT_VERSION,
        kind: "image shard",
        parquet: await fileIdentity(storage, parquet),
        tar: await fileIdentity(storage, tar),
        download: marker?.inputDigest ?? null,
        ...identity,
      }),
      open: async () => {
        if (!(await storage.exists(tar))) {
          throw new InputError(
            "CC_NO_TAR",
            storage.describe(tar),
            "missing: embed reads webdataset shards (download's outputFormat webdataset)",
          );
        }
        // Every column: language_tier is there only for shards cut from candidates.
        const rows = await readParquet(storage, parquet);
        const expected = rows
          .filter((row) => row.status === "success")
          .map((row) => ({
            key: String(row.key),
            caption: typeof row.caption === "string" ? row.caption : null,
            languageTier: typeof row.language_tier === "string" ? row.language_tier : null,
          }));
        return {
          expected,
          samples: readWebdatasetSamples(readTarEntries(storage.openRead(tar))),
          source: async () => `read_parquet(${quoteLiteral(await storage.localPath(parquet))})`,
          close: async () => {},
        };
      },
    });
  }
  return planned;
}

/** Tars (files or folders of them) and image folders given as inputs, in the order given. */
export async function planInputShards(
  inputs: readonly string[],
  cwd: string,
  identity: OutputIdentity,
): Promise<PlannedEmbedShard[]> {
  const planned: PlannedEmbedShard[] = [];
  const next = () => shardName(planned.length);
  for (const input of inputs) {
    const path = resolve(cwd, input);
    const info = await stat(path).catch(() => undefined);
    if (info === undefined) throw new InputError("CC_INPUT_MISSING", path, "does not exist");
    if (info.isFile()) {
      if (extname(path) !== ".tar") {
        throw new InputError("CC_INPUT_FORMAT", path, "expected a webdataset .tar or a folder");
      }
      planned.push(await tarShard(next(), path, identity));
      continue;
    }
    const entries = (await readdir(path, { withFileTypes: true }))
      .filter((entry) => entry.isFile() && entry.name.endsWith(".tar"))
      .map((entry) => entry.name)
      .sort();
    if (entries.length > 0) {
      for (const name of entries) planned.push(await tarShard(next(), join(path, name), identity));
      continue;
    }
    const images = await imageFiles(path);
    if (images.length === 0) {
      throw new InputError("CC_INPUT_EMPTY", path, "holds no .tar files and no images");
    }
    for (let start = 0; start < images.length; start += IMAGE_FOLDER_SHARD_SIZE) {
      planned.push(
        await imageFolderShard(
          next(),
          path,
          images.slice(start, start + IMAGE_FOLDER_SHARD_SIZE),
          identity,
        ),
      );
    }
  }
  return planned;
}

async function tarShard(
  name: string,
  path: string,
  identity: OutputIdentity,
): Promise<PlannedEmbedShard> {
  return {
    name,
    input: path,
    digest: digestOf({
      version: EMBED_FORMAT_VERSION,
      kind: "webdataset tar",
      path,
      tar: await localFileIdentity(path),
      ...identity,
    }),
    open: async () => {
      const sidecars = new SidecarRows();
      return {
        samples: sidecars.collect(readWebdatasetSamples(readTarEntries(createReadStream(path)))),
        source: () => sidecars.source(),
        close: () => sidecars.close(),
      };
    },
  };
}

async function imageFolderShard(
  name: string,
  folder: string,
  images: readonly string[],
  identity: OutputIdentity,
): Promise<PlannedEmbedShard> {
  return {
    name,
    input: folder,
    digest: digestOf({
      version: EMBED_FORMAT_VERSION,
      kind: "image folder",
      folder,
      images: await Promise.all(
        images.map(async (image) => [relative(folder, image), await localFileIdentity(image)]),
      ),
      ...identity,
    }),
    open: async () => {
      const sidecars = new SidecarRows();
      return {
        samples: sidecars.collect(folderSamples(folder, images)),
        source: () => sidecars.source(),
        close: () => sidecars.close(),
      };
    },
  };
}

/**
 * An image folder read as webdataset samples: `a/b.jpg` with `a/b.txt` (and `a/b.json`) is the
 * sample with key `a/b`.
 */
async function* folderSamples(
  folder: string,
  images: readonly string[],
): AsyncGenerator<WebdatasetSample> {
  for (const image of images) {
    const stem = image.slice(0, image.length - extname(image).length);
    const files = new Map<string, Buffer>();
    files.set(extname(image).slice(1).toLowerCase(), await readFile(image));
    for (const extension of ["txt", "json"]) {
      const sidecar = await readFile(`${stem}.${extension}`).catch(() => undefined);
      if (sidecar !== undefined) files.set(extension, sidecar);
    }
    yield { key: relative(folder, stem), files };
  }
}

async function imageFiles(folder: string): Promise<string[]> {
  const found: string[] = [];
  const entries = await readdir(folder, { withFileTypes: true, recursive: true });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const extension = extname(entry.name).slice(1).toLowerCase();
    if (IMAGE_EXTENSIONS.includes(extension)) {
      found.push(join(entry.parentPath ?? folder, entry.name));
    }
  }
  return found.sort();
}

/**
 * Without a parquet, a sample's columns come from its KEY.json (as img2dataset writes it): they
 * are gathered while the samples stream by and handed to DuckDB as newline-delimited JSON once
 * the samples are consumed.
 */
class SidecarRows {
  readonly #rows: string[] = [];
  readonly #path = join(tmpdir(), `clipcrawl-embed-${randomBytes(6).toString("hex")}.jsonl`);

  async *collect(
    samples: AsyncIterable<WebdatasetSample | Extract<TarEntry, { kind: "damaged" }>>,
  ): AsyncGenerator<WebdatasetSample | Extract<TarEntry, { kind: "damaged" }>> {
    for await (const sample of samples) {
      if (!("kind" in sample)) this.#rows.push(sidecarRow(sample));
      yield sample;
    }
  }

  async source(): Promise<string | undefined> {
    if (this.#rows.length === 0) return undefined;
    await writeFile(this.#path, `${this.#rows.join("\n")}\n`);
    return `read_json_auto(${quoteLiteral(this.#path)}, format = 'newline_delimited')`;
  }

  async close(): Promise<void> {
    await rm(this.#path, { force: true });
  }
}

function sidecarRow(sample: WebdatasetSample): string {
  let fields: Record<string, unknown> = {};
  const json = sample.files.get("json");
  if (json !== undefined) {
    try {
      const parsed: unknown = JSON.parse(json.toString("utf8"));
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        fields = parsed as Record<string, unknown>;
      }
    } catch {
      // A KEY.json that does not parse adds no columns; the sample is still embedded.
    }
  }
  return JSON.stringify({ ...fields, key: sample.key });
}
