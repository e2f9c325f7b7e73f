/**
 * One index as the server holds it: the ClipIndex, the CLIP model that embeds its queries (and
 * the multilingual text model behind `use_mclip`), and what is derived from its rows once, when
 * first needed: the aesthetic embeddings, the violence flags, the key → row map of the
 * thumbnails, the statistics page. Several ServedIndex live side by side, each with its model.
 *
 * An index rewritten on disk (`clipcrawl remove`, `clipcrawl index`) is reopened as a new
 * ServedIndex that keeps the models (see index-reloader.ts); the old one is closed when the last
 * request that leased it is done, so a query never reads a closed index.
 */
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { ClipcrawlError, errorMessage } from "../errors.js";
import { type ClipIndex, type GraphSearcher, openIndex } from "../formats/index/clip-index.js";
import { readTombstones, tombstonesStamp } from "../formats/tombstones.js";
import { layout } from "../io/layout.js";
import { LocalStorage } from "../io/local-storage.js";
import { openRoot } from "../io/open-root.js";
import { isS3Url } from "../io/s3-storage.js";
import type { DatasetStorage } from "../io/storage.js";
import { ClipModel } from "../models/clip-model.js";
import { ClipEmbedder, TextEmbedder } from "../models/embedder.js";
import { checkEmbeddingSizesMatch, TextModel } from "../models/text-model.js";
import { type AestheticEmbeddings, computeAestheticEmbeddings } from "./aesthetic-embeddings.js";
import { AtlasMap } from "./atlas-map.js";
import { FreshRead } from "./fresh-read.js";
import { type IndexModels, resolveIndexModels } from "./index-models.js";
import { type IndexStats, readIndexStats } from "./index-stats.js";
import { RESULT_COLUMNS } from "./result-rows.js";
import type { ShardThreads } from "./shard-threads.js";
import { ThumbnailStore } from "./thumbnails.js";
import {
  computeViolenceFlags,
  type ViolenceFlags,
  type ViolencePrompts,
} from "./violence-detector.js";

/** An index to serve: a dataset root under a name, and optionally the models of its queries. */
export interface IndexSource {
  name: string;
  root: string;
  /**
   * CLIP model folder; default: the one the root was embedded with (see index-models.ts). null:
   * no model, only `embedding_input` queries (an index whose model is not at hand).
   */
  model?: string | null;
  /** Multilingual text model folder for `use_mclip`. */
  multilingualModel?: string;
  /** The index shards (sNNNNN) this server answers for; default: all of them. */
  shards?: readonly string[];
  /** Other serve processes holding shards of the same index: queries fan out to them. */
  remoteShards?: readonly string[];
}

export interface ServedIndexOptions {
  /** onnxruntime threads per tower; 0: the engine's choice. */
  threads: number;
  /** The graph's candidate list per query; 0: the index's own. */
  expansionSearch: number;
  violencePrompts: ViolencePrompts;
  /** Stored images with more pixels (or not raster images) are not served as thumbnails. */
  maxImagePixels?: number;
  /** Searches several held shards at once on worker threads; undefined: on the request's thread. */
  shardThreads?: ShardThreads;
}

/** The models that embed an index's queries. */
export interface QueryModels {
  folders: IndexModels;
  clip: ClipModel;
  embedder: ClipEmbedder;
  multilingual: { model: TextModel; embedder: TextEmbedder } | undefined;
}

/** What `/api/indices` says of an index. */
export interface IndexDescription {
  name: string;
  rows: number;
  dimensions: number;
  modalities: ("image" | "text")[];
  hasMultilingual: boolean;
  /** false when only embedding_input queries are answered (served without a model). */
  hasModel: boolean;
  columns: string[];
}

export class ServedIndex {
  readonly thumbnails: ThumbnailStore;
  private aesthetic: Promise<AestheticEmbeddings> | undefined;
  private violence: Promise<ViolenceFlags> | undefined;
  private statistics: Promise<IndexStats> | undefined;
  private atlas: Promise<AtlasMap | undefined> | undefined;
  /** The atlas manifest's stamp when `atlas` was read: a newer atlas is read again. */
  private atlasStamp = "";
  private keys: Map<string, number> | undefined;
  private searcher: GraphSearcher | undefined | null = null;
  private closed = false;
  /** Requests (and export jobs) using this index now. */
  private leases = 0;
  /** Replaced by a newer generation: the index is closed once no lease is left. */
  private retired = false;
  private indexClosed: Promise<void> | undefined;
  /** false once a reopened ServedIndex took the models over. */
  private ownsModels = true;
  private readonly tombstoneStamps: FreshRead<string>;

  private constructor(
    readonly source: IndexSource,
    readonly storage: DatasetStorage,
    readonly index: ClipIndex,
    /** undefined: served without a model (embedding_input queries only). */
    readonly models: QueryModels | undefined,
    private readonly options: ServedIndexOptions,
    /** The manifest's stamp when the index was opened (see manifestStamp). */
    readonly stamp: string,
    /** The tombstones' stamp when they were last applied (see tombstonesStamp). */
    private tombstones: string,
  ) {
    this.thumbnails = new ThumbnailStore(storage, options.maxImagePixels);
    this.tombstoneStamps = new FreshRead(() => tombstonesStamp(storage));
  }

  get name(): string {
    return this.source.name;
  }

  /** How queries search the graphs: the held shards at once on worker threads, or undefined. */
  get graphSearcher(): GraphSearcher | undefined {
    if (this.searcher === null)
      this.searcher = this.options.shardThreads?.searcher(this.index, this.name);
    return this.searcher;
  }

  /** Fails with one line naming the index and what is missing (index, model, files). */
  static async load(source: IndexSource, options: ServedIndexOptions): Promise<ServedIndex> {
    try {
      return await ServedIndex.open(source, options);
    } catch (error) {
      if (error instanceof ClipcrawlError) throw error;
      throw new ClipcrawlError(
        "CC_SERVE_INDEX",
        `index ${source.name} (${isS3Url(source.root) ? source.root : resolve(source.root)}): ${errorMessage(error)}`,
        { cause: error },
      );
    }
  }

  private static async open(
    source: IndexSource,
    options: ServedIndexOptions,
  ): Promise<ServedIndex> {
    const storage = openRoot(isS3Url(source.root) ? source.root : resolve(source.root));
    // Taken before the files are read: a rewrite in between changes it again, and is seen.
    const stamp = await manifestStamp(storage);
    const tombstones = await tombstonesStamp(storage);
    const index = await openIndexOf(storage, options, source.shards);
    try {
      const models =
        source.model === null ? undefined : await loadQueryModels(source, storage, index, options);
      return new ServedIndex(source, storage, index, models, options, stamp, tombstones);
    } catch (error) {
      index.close();
      throw error;
    }
  }

  /**
   * The index's current files with this one's models; this one is retired (closed when its
   * last lease ends). Throws, leaving this one as it is, when the files cannot be opened.
   */
  async reopen(): Promise<ServedIndex> {
    const stamp = await manifestStamp(this.storage);
    const tombstones = await tombstonesStamp(this.storage);
    const index = await openIndexOf(this.storage, this.options, this.source.shards);
    const modelSize = this.models?.clip.embeddingSize;
    if (modelSize !== undefined && modelSize !== index.dimensions) {
      index.close();
      throw new Error(
        `the rebuilt index has ${index.dimensions} dimensions, its model embeds in ${modelSize}`,
      );
    }
    const next = new ServedIndex(
      this.source,
      this.storage,
      index,
      this.models,
      this.options,
      stamp,
      tombstones,
    );
    this.ownsModels = false;
    this.retire();
    return next;
  }

  /**
   * Whether the root's tombstones changed since they were applied (one directory read, or one
   * LIST on object storage, shared by the requests that ask at the same time: fresh-read.ts).
   */
  async tombstonesChanged(): Promise<boolean> {
    return (await this.tombstoneStamps.get()) !== this.tombstones;
  }

  /**
   * Applies the root's tombstones as they are now: their rows leave every search, `/metadata`,
   * the thumbnails and the statistics at once. Throws (a damaged tombstone file) leaving the
   * stamp as it was, so the caller refuses the index until the files change.
   */
  async refreshTombstones(): Promise<void> {
    const stamp = await tombstonesStamp(this.storage);
    this.index.applyTombstones(await readTombstones(this.storage));
    this.tombstones = stamp;
    this.statistics = undefined;
    // The map's points are matched to rows by key, and a removed sample's key matches none.
    this.atlas = undefined;
  }

  /** Marks the index in use until the returned function is called. */
  lease(): () => void {
    this.leases++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.leases--;
      if (this.retired && this.leases === 0) void this.closeIndex();
    };
  }

  /** No new requests get this index; it is closed once the running ones are done. */
  retire(): void {
    this.retired = true;
    if (this.leases === 0) void this.closeIndex();
  }

  describe(): IndexDescription {
    return {
      name: this.name,
      rows: this.index.size,
      dimensions: this.index.dimensions,
      modalities: ["image", "text"],
      hasMultilingual: this.models?.multilingual !== undefined,
      hasModel: this.models !== undefined,
      columns: RESULT_COLUMNS.map((column) => column.output),
    };
  }

  /** The per-score mean image embeddings (computed on first use, then kept). */
  aestheticEmbeddings(): Promise<AestheticEmbeddings> {
    this.aesthetic ??= computeAestheticEmbeddings(this.storage, this.index);
    return this.aesthetic;
  }

  /**
   * One byte a row, 1 where the violence detector flags the image (first use computes it);
   * undefined without a model to embed the prompts, as clip-back skips a detector it lacks.
   */
  violenceFlags(): Promise<ViolenceFlags | undefined> {
    const embedder = this.models?.embedder;
    if (embedder === undefined) return Promise.resolve(undefined);
    this.violence ??= computeViolenceFlags(
      this.storage,
      this.index,
      embedder,
      this.options.violencePrompts,
    );
    return this.violence;
  }

  stats(): Promise<IndexStats> {
    this.statistics ??= readIndexStats(this.storage, this.index);
    return this.statistics;
  }

  /** The root's atlas joined with this index's rows (first use reads it); undefined: none. */
  async atlasMap(): Promise<AtlasMap | undefined> {
    // The index stage writes the atlas after the index, so it may land after this index opened.
    const stamp = await fileStamp(this.storage, layout.atlasManifest());
    if (this.atlas === undefined || stamp !== this.atlasStamp) {
      this.atlasStamp = stamp;
      this.atlas = AtlasMap.load(this.storage, this.index, (key) => this.rowOfKey(key));
    }
    return this.atlas;
  }

  /** The row of a sample key, or undefined when the index has no such row (or it was removed). */
  rowOfKey(key: string): number | undefined {
    if (this.keys === undefined) {
      const keys = new Map<string, number>();
      const batch = 10_000;
      for (let start = 0; start < this.index.size; start += batch) {
        const ids = Array.from(
          { length: Math.min(batch, this.index.size - start) },
          (_, offset) => start + offset,
        );
        this.index.metadata(ids, ["key"]).forEach((row, offset) => {
          if (typeof row.key === "string" && !keys.has(row.key)) keys.set(row.key, start + offset);
        });
      }
      this.keys = keys;
    }
    const id = this.keys.get(key);
    return id === undefined || this.index.isRemoved(id) ? undefined : id;
  }

  /**
   * Starts the derived data in the background, one scan after the other, so the first queries
   * that need it do not wait.
   */
  warm(): void {
    this.aestheticEmbeddings()
      .catch(() => undefined)
      .then(() => (this.closed ? undefined : this.violenceFlags()))
      .catch(() => {
        // reported to the query that needs it
      });
  }

  async close(): Promise<void> {
    await this.closeIndex();
    if (this.ownsModels) {
      await Promise.all([this.models?.clip.release(), this.models?.multilingual?.model.release()]);
    }
  }

  private closeIndex(): Promise<void> {
    this.indexClosed ??= (async () => {
      this.closed = true;
      // Background scans finish before the files they read are closed.
      await Promise.allSettled([this.aesthetic, this.violence, this.statistics, this.atlas]);
      this.index.close();
    })();
    return this.indexClosed;
  }
}

/**
 * What identifies the manifest's current version, from one stat: locally it is replaced by
 * rename, so a rewrite changes its inode, and its time and size besides; on object storage a
 * rewrite changes its ETag. "missing" when there is none.
 */
export function manifestStamp(storage: DatasetStorage): Promise<string> {
  return fileStamp(storage, layout.indexManifest());
}

async function fileStamp(storage: DatasetStorage, path: string): Promise<string> {
  if (!(storage instanceof LocalStorage)) {
    const info = await storage.stat(path).catch(() => undefined);
    return info === undefined ? "missing" : `${info.version}:${info.modified}:${info.bytes}`;
  }
  try {
    const info = statSync(await storage.localPath(path));
    return `${info.ino}:${info.mtimeMs}:${info.size}`;
  } catch {
    return "missing";
  }
}

function openIndexOf(
  storage: DatasetStorage,
  options: ServedIndexOptions,
  shards: readonly string[] | undefined,
): Promise<ClipIndex> {
  return openIndex(storage, {
    ...(options.expansionSearch > 0 ? { expansionSearch: options.expansionSearch } : {}),
    ...(shards === undefined ? {} : { shards }),
  });
}

async function loadQueryModels(
  source: IndexSource,
  storage: DatasetStorage,
  index: ClipIndex,
  options: ServedIndexOptions,
): Promise<QueryModels> {
  const folders = await resolveIndexModels(source.name, storage, {
    ...(source.model === undefined || source.model === null ? {} : { model: source.model }),
    ...(source.multilingualModel === undefined
      ? {}
      : { multilingualModel: source.multilingualModel }),
  });
  const sessionOptions = { precision: folders.precision, intraOpThreads: options.threads };
  const clip = await ClipModel.load(folders.model, sessionOptions);
  let text: TextModel | undefined;
  try {
    if (clip.embeddingSize !== index.dimensions) {
      throw new Error(
        `index ${source.name}: the model ${folders.model} embeds in ${clip.embeddingSize} dimensions, the index in ${index.dimensions}; give the model the root was embedded with (--model)`,
      );
    }
    let multilingual: QueryModels["multilingual"];
    if (folders.multilingualModel !== undefined) {
      text = await TextModel.load(folders.multilingualModel, sessionOptions);
      checkEmbeddingSizesMatch(text, clip);
      multilingual = { model: text, embedder: new TextEmbedder(text) };
    }
    const embedder = new ClipEmbedder(clip, { batchSize: 1, preprocessConcurrency: 1 });
    return { folders, clip, embedder, multilingual };
  } catch (error) {
    await Promise.all([clip.release(), text?.release()]);
    throw error;
  }
}
