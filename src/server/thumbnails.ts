/**
 * The images behind `/api/thumbnail`: a sample's bytes read from the dataset's own image shards,
 * so the UI never hot-links the original site (clip-retrieval #198: what a site serves today is
 * not what was crawled). A key names its shard (download's keys start with the shard number), and
 * the first request for a shard reads that tar's headers once into a key → (offset, size) map;
 * later requests read just the member's bytes. An `images/NNNNN/` folder (download's `files`
 * output) is read directly. What is not found is undefined: the route falls back to the URL.
 *
 * The browser decodes what is served, so stored bytes pass the rule every decoder shares
 * (src/io/image-header.ts) first: a raster image within the pixel limit, served with the type of
 * its real format, whatever its file name says. Anything else is `refused`, with the reason.
 */
import { type FileHandle, open } from "node:fs/promises";
import { checkImageHeader, DEFAULT_MAX_IMAGE_PIXELS } from "../io/image-header.js";
import { layout, SHARD_DIGITS } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";
import { readTarEntries, splitSampleName } from "../io/tar-reader.js";

export interface Thumbnail {
  bytes: Buffer;
  contentType: string;
}

/** A stored image that is not served: why (an SVG, a decompression bomb, bytes that do not decode). */
export interface RefusedThumbnail {
  refused: string;
}

interface TarMember {
  offset: number;
  size: number;
  extension: string;
}

/** File extensions an image member of a sample has. */
const IMAGE_EXTENSIONS = ["jpg", "jpeg", "png", "webp", "gif", "avif", "bmp", "tif", "tiff"];

/** The content type of each raster format, as sharp names it. */
const TYPE_OF_FORMAT: Record<string, string> = {
  jpeg: "image/jpeg",
  png: "image/png",
  webp: "image/webp",
  gif: "image/gif",
  avif: "image/avif",
  tiff: "image/tiff",
};

const TAR_HEADER = 512;

/** A tar's member map, and which file it was read from (a compaction replaces the tar). */
interface TarIndex {
  identity: string;
  members: Promise<Map<string, TarMember>>;
}

export class ThumbnailStore {
  private readonly tars = new Map<string, TarIndex>();

  constructor(
    private readonly storage: DatasetStorage,
    private readonly maxImagePixels = DEFAULT_MAX_IMAGE_PIXELS,
  ) {}

  async find(key: string): Promise<Thumbnail | RefusedThumbnail | undefined> {
    const bytes = await this.storedBytes(key);
    if (bytes === undefined) return undefined;
    const checked = await checkImageHeader(bytes, this.maxImagePixels);
    if (!checked.ok) return { refused: checked.error };
    const { format, compression } = checked.header;
    const heif = compression === "av1" ? "image/avif" : "image/heic";
    return { bytes, contentType: format === "heif" ? heif : (TYPE_OF_FORMAT[format] as string) };
  }

  private async storedBytes(key: string): Promise<Buffer | undefined> {
    const shard = key.slice(0, SHARD_DIGITS);
    if (!/^\d+$/.test(shard)) return undefined;
    const tar = layout.imageTar(shard);
    if (await this.storage.exists(tar)) {
      let file: FileHandle;
      try {
        file = await open(await this.storage.localPath(tar), "r");
      } catch {
        return this.fromFolder(shard, key);
      }
      try {
        // The offsets are those of the file open here: a tar rewritten since they were read
        // (clipcrawl compact) has other offsets, so its map is read again.
        const info = await file.stat();
        const identity = `${info.dev}:${info.ino}:${info.size}:${info.mtimeMs}`;
        let index = this.tars.get(shard);
        if (index?.identity !== identity) {
          index = { identity, members: readTarMembers(file) };
          this.tars.set(shard, index);
        }
        const member = (await index.members).get(key);
        if (member !== undefined) {
          const bytes = Buffer.alloc(member.size);
          const { bytesRead } = await file.read(bytes, 0, member.size, member.offset);
          return bytesRead === member.size ? bytes : undefined;
        }
      } finally {
        await file.close();
      }
    }
    return this.fromFolder(shard, key);
  }

  private async fromFolder(shard: string, key: string): Promise<Buffer | undefined> {
    if (!/^[\w-]+$/.test(key)) return undefined;
    for (const extension of IMAGE_EXTENSIONS) {
      const path = `${layout.imageFilesFolder(shard)}/${key}.${extension}`;
      if (await this.storage.exists(path)) return this.storage.read(path);
    }
    return undefined;
  }
}

/** The image members of a tar, by key, read from an open file (left open). */
async function readTarMembers(file: FileHandle): Promise<Map<string, TarMember>> {
  const members = new Map<string, TarMember>();
  try {
    for await (const entry of readTarEntries(chunksOf(file))) {
      if (entry.kind !== "file") continue;
      const { key, extension } = splitSampleName(entry.name);
      if (!IMAGE_EXTENSIONS.includes(extension)) continue;
      // A long name or pax header before the member would shift its data; the reader gives
      // the offset of the member's own header, whose data follows it.
      members.set(key, { offset: entry.offset + TAR_HEADER, size: entry.data.length, extension });
    }
  } catch {
    // A tar that cannot be read serves what was found before the damage.
  }
  return members;
}

/**
 * The file's bytes by positioned reads. Not `file.createReadStream`: a stream that reaches the
 * end closes its handle on some Node versions whatever `autoClose` says, and the handle is read
 * again for the member's bytes.
 */
async function* chunksOf(file: FileHandle): AsyncGenerator<Uint8Array> {
  let position = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    const { bytesRead } = await file.read(chunk, 0, chunk.length, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield chunk.subarray(0, bytesRead);
  }
}
