/**
 * A dataset root on S3 or an S3-compatible store (`s3://bucket/prefix`). The guarantees of a
 * local root hold:
 * - an object appears whole or not at all: a single PUT, or above `multipartBytes` a multipart
 *   upload that becomes visible only when completed, and is aborted when a part fails;
 * - writes are in the order the caller awaits them, so a done marker written last is last;
 * - a retried job overwrites the same keys (a PUT replaces an object whole);
 * - `list` pages through any number of objects.
 * Readers that need a local file get one from a bounded LRU cache (local-file-cache.ts).
 * Limit: `copy` is one CopyObject, which S3 allows up to 5 GiB; larger objects are refused.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, posix } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { LocalFileCache } from "./local-file-cache.js";
import {
  connectS3,
  isMissingObject,
  missingObjectError,
  type S3ClientOptions,
  type S3Connection,
  s3Status,
  storageError,
} from "./s3-client.js";
import type { DatasetStorage, StoredFile } from "./storage.js";

export interface S3StorageOptions extends S3ClientOptions {
  /** The local cache behind `localPath` (default: <os.tmpdir()>/clipcrawl-cache). */
  cacheDir?: string;
  /** The cache's size bound in bytes (default 10 GiB). */
  cacheBytes?: number;
  /** Cached files used this recently are not evicted (default 10 minutes). */
  cacheGraceMs?: number;
  /** Objects larger than this go up as multipart uploads (default 64 MiB; at least 5 MiB). */
  multipartBytes?: number;
  /** The part size of multipart uploads (default 16 MiB; at least 5 MiB). */
  partBytes?: number;
  /** Keys a list request asks for (default and maximum 1000). */
  listPageSize?: number;
}

type ObjectBody = Readable & { transformToByteArray(): Promise<Uint8Array> };

export const S3_SCHEME = "s3://";
const MIB = 1024 * 1024;
/** S3's limit for one CopyObject. */
const MAX_COPY_BYTES = 5 * 1024 * MIB;

/** Whether a root names object storage rather than a local path. */
export function isS3Url(root: string): boolean {
  return root.startsWith(S3_SCHEME);
}

/** `s3://bucket/some/prefix/` → bucket and prefix (no slash at either end). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const rest = url.slice(S3_SCHEME.length);
  const slash = rest.indexOf("/");
  const bucket = slash === -1 ? rest : rest.slice(0, slash);
  const prefix = slash === -1 ? "" : rest.slice(slash + 1).replace(/^\/+|\/+$/g, "");
  if (!isS3Url(url) || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new Error(`${url}: not an s3://bucket/prefix URL (bucket names are 3–63 of a-z 0-9 . -)`);
  }
  return { bucket, prefix };
}

export class S3Storage implements DatasetStorage {
  readonly root: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly options: S3StorageOptions;
  private readonly cache: LocalFileCache;
  private connection: Promise<S3Connection> | undefined;

  constructor(url: string, options: S3StorageOptions = {}) {
    const { bucket, prefix } = parseS3Url(url);
    this.bucket = bucket;
    this.prefix = prefix;
    this.root = `${S3_SCHEME}${bucket}${prefix === "" ? "" : `/${prefix}`}`;
    this.options = options;
    this.cache = new LocalFileCache({
      folder: options.cacheDir ?? join(tmpdir(), "clipcrawl-cache"),
      maxBytes: options.cacheBytes ?? 10 * 1024 * MIB,
      ...(options.cacheGraceMs === undefined ? {} : { graceMs: options.cacheGraceMs }),
    });
  }

  describe(path: string): string {
    const key = this.key(path);
    return key === "" ? this.root : `${S3_SCHEME}${this.bucket}/${key}`;
  }

  async exists(path: string): Promise<boolean> {
    return (await this.stat(path)) !== undefined;
  }

  async read(path: string): Promise<Buffer> {
    return Buffer.from(await (await this.get(path)).transformToByteArray());
  }

  async readText(path: string): Promise<string> {
    return (await this.read(path)).toString("utf8");
  }

  openRead(path: string): Readable {
    const stream = new PassThrough();
    this.get(path).then(
      (body) => pipeline(body, stream).catch((error) => stream.destroy(error)),
      (error) => stream.destroy(error),
    );
    return stream;
  }

  async readRange(path: string, offset: number, length: number): Promise<Buffer> {
    if (length <= 0) return Buffer.alloc(0);
    try {
      const body = await this.get(path, `bytes=${offset}-${offset + length - 1}`);
      return Buffer.from(await body.transformToByteArray());
    } catch (error) {
      // 416: the range starts at or past the end, where a local read returns nothing.
      if (s3Status((error as Error).cause) === 416) return Buffer.alloc(0);
      throw error;
    }
  }

  async stat(path: string): Promise<StoredFile | undefined> {
    const { sdk, client } = await this.connect();
    try {
      const head = await client.send(
        new sdk.HeadObjectCommand({ Bucket: this.bucket, Key: this.key(path) }),
      );
      return {
        path,
        bytes: head.ContentLength ?? 0,
        modified: head.LastModified?.getTime() ?? 0,
        ...(head.ETag === undefined ? {} : { version: head.ETag }),
      };
    } catch (error) {
      if (isMissingObject(error)) return undefined;
      throw storageError(this.describe(path), error);
    }
  }

  list(folder: string): Promise<string[]> {
    return this.listPages(folder, "files");
  }

  /** A folder on object storage is a common prefix of keys: it exists while an object is under it. */
  listFolders(folder: string): Promise<string[]> {
    return this.listPages(folder, "folders");
  }

  private async listPages(folder: string, kind: "files" | "folders"): Promise<string[]> {
    const { sdk, client } = await this.connect();
    const folderKey = this.key(folder);
    const prefix = folderKey === "" ? "" : `${folderKey}/`;
    const names: string[] = [];
    let token: string | undefined;
    do {
      const page = await client
        .send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: prefix,
            Delimiter: "/",
            MaxKeys: this.options.listPageSize ?? 1000,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        )
        .catch((error) => {
          throw storageError(this.describe(folder), error);
        });
      const found =
        kind === "files"
          ? (page.Contents ?? []).map((object) => (object.Key ?? "").slice(prefix.length))
          : (page.CommonPrefixes ?? []).map((common) =>
              (common.Prefix ?? "").slice(prefix.length).replace(/\/$/, ""),
            );
      for (const name of found) if (name !== "" && !name.startsWith(".")) names.push(name);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return names.sort();
  }

  async writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
    const body = typeof data === "string" ? Buffer.from(data) : data;
    if (body.byteLength <= this.multipartBytes()) await this.put(path, body, body.byteLength);
    else await this.uploadMultipart(path, body);
  }

  async writeAtomicWith(
    path: string,
    produce: (localPath: string) => Promise<void>,
  ): Promise<void> {
    const staging = await mkdtemp(join(tmpdir(), "clipcrawl-upload-"));
    try {
      const local = join(staging, basename(path) || "object");
      await produce(local);
      const bytes = (await stat(local)).size;
      // A body in memory, not a stream, so the SDK can resend it on a retry.
      if (bytes <= this.multipartBytes()) await this.put(path, await readFile(local), bytes);
      else await this.uploadMultipart(path, createReadStream(local));
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  async remove(path: string): Promise<void> {
    const { sdk, client } = await this.connect();
    const key = this.key(path);
    const keys = key === "" ? [] : [key];
    // A folder: every object under it, as a local remove takes a folder with its files.
    let token: string | undefined;
    do {
      const page = await client
        .send(
          new sdk.ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: key === "" ? "" : `${key}/`,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        )
        .catch((error) => {
          throw storageError(this.describe(path), error);
        });
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    for (let start = 0; start < keys.length; start += 1000) {
      const batch = keys.slice(start, start + 1000);
      const result = await client
        .send(
          new sdk.DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        )
        .catch((error) => {
          throw storageError(this.describe(path), error);
        });
      const failed = result.Errors?.[0];
      if (failed !== undefined) {
        throw storageError(`${S3_SCHEME}${this.bucket}/${failed.Key}`, {
          name: failed.Code,
          message: failed.Message,
        });
      }
    }
  }

  async copy(from: string, to: string): Promise<void> {
    const info = await this.stat(from);
    if (info === undefined) throw missingObjectError(this.describe(from));
    if (info.bytes > MAX_COPY_BYTES) {
      throw storageError(
        this.describe(from),
        new Error(`${info.bytes} bytes: copies on object storage are limited to 5 GiB`),
      );
    }
    const { sdk, client } = await this.connect();
    const source = `${this.bucket}/${this.key(from)}`.split("/").map(encodeURIComponent).join("/");
    await client
      .send(
        new sdk.CopyObjectCommand({ Bucket: this.bucket, Key: this.key(to), CopySource: source }),
      )
      .catch((error) => {
        throw storageError(this.describe(to), error);
      });
  }

  /** A local copy from the LRU cache, fetched again when the object has changed. */
  async localPath(path: string): Promise<string> {
    const info = await this.stat(path);
    if (info === undefined) throw missingObjectError(this.describe(path));
    const endpoint = this.options.endpoint ?? "aws";
    const identity = `${endpoint}\n${this.describe(path)}\n${info.version ?? info.modified}\n${info.bytes}`;
    return this.cache.file(identity, posix.basename(this.key(path)), async (temporary) => {
      await pipeline(await this.get(path), createWriteStream(temporary));
    });
  }

  /** The object's key: the root's prefix and the path, which may not leave the root. */
  private key(path: string): string {
    const segments: string[] = [];
    for (const segment of path.split("/")) {
      if (segment === "" || segment === ".") continue;
      if (segment !== "..") segments.push(segment);
      else if (segments.pop() === undefined) {
        throw new Error(`path ${path} is outside the dataset root ${this.root}`);
      }
    }
    const normal = segments.join("/");
    if (this.prefix === "") return normal;
    return normal === "" ? this.prefix : `${this.prefix}/${normal}`;
  }

  private connect(): Promise<S3Connection> {
    this.connection ??= connectS3(this.options);
    return this.connection;
  }

  private multipartBytes(): number {
    return Math.max(5 * MIB, this.options.multipartBytes ?? 64 * MIB);
  }

  /** The object's body as Node streams it (the SDK's Node body is a Readable). */
  private async get(path: string, range?: string): Promise<ObjectBody> {
    const { sdk, client } = await this.connect();
    try {
      const result = await client.send(
        new sdk.GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(path),
          ...(range === undefined ? {} : { Range: range }),
        }),
      );
      if (result.Body === undefined) throw new Error("the store returned no body");
      return result.Body as ObjectBody;
    } catch (error) {
      if (isMissingObject(error)) throw missingObjectError(this.describe(path));
      throw storageError(this.describe(path), error);
    }
  }

  private async put(path: string, body: Uint8Array, bytes: number): Promise<void> {
    const { sdk, client } = await this.connect();
    await client
      .send(
        new sdk.PutObjectCommand({
          Bucket: this.bucket,
          Key: this.key(path),
          Body: body,
          ContentLength: bytes,
        }),
      )
      .catch((error) => {
        throw storageError(this.describe(path), error);
      });
  }

  /**
   * A multipart upload, completed only when every part is in. On a failure it is aborted here
   * (not by lib-storage, whose failed abort would hide the first error): nothing becomes visible
   * either way, and a store that refuses the abort keeps only invisible parts, which a bucket
   * lifecycle rule (AbortIncompleteMultipartUpload) clears.
   */
  private async uploadMultipart(path: string, body: Uint8Array | Readable): Promise<void> {
    const { sdk, upload: lib, client } = await this.connect();
    const upload = new lib.Upload({
      client,
      params: { Bucket: this.bucket, Key: this.key(path), Body: body },
      partSize: Math.max(5 * MIB, this.options.partBytes ?? 16 * MIB),
      queueSize: 4,
      leavePartsOnError: true,
    });
    try {
      await upload.done();
    } catch (error) {
      if (upload.uploadId !== undefined) {
        await client
          .send(
            new sdk.AbortMultipartUploadCommand({
              Bucket: this.bucket,
              Key: this.key(path),
              UploadId: upload.uploadId,
            }),
          )
          .catch(() => {});
      }
      throw storageError(this.describe(path), error);
    }
  }
}
