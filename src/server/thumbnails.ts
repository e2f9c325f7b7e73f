/**
 * The images behind `/api/thumbnail`: a sample's bytes read from the dataset's own image shards,
 * so the UI never hot-links the original site (clip-retrieval #198: what a site serves today is
 * not what was crawled). A key names its shard (download's keys start with the shard number), and
 * the first request for a shard reads that tar's headers once into a key → (offset, size) map;
 * later requests read just the member's bytes. An `images/NNNNN/` folder (download's `files`
 * output) is read directly. What is not found is undefined: the route falls back to the URL.
 */
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { layout, SHARD_DIGITS } from "../io/layout.js";
import type { LocalStorage } from "../io/local-storage.js";
import { readTarEntries, splitSampleName } from "../io/tar-reader.js";

export interface Thumbnail {
  bytes: Buffer;
  contentType: string;
}

interface TarMember {
  offset: number;
  size: number;
  extension: string;
}

const IMAGE_TYPES: Record<string, string> = {
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  png: "image/png",
  webp: "image/webp",
  gif: "image/gif",
  avif: "image/avif",
  bmp: "image/bmp",
  tif: "image/tiff",
  tiff: "image/tiff",
};

const TAR_HEADER = 512;

export class ThumbnailStore {
  private readonly tars = new Map<string, Promise<Map<string, TarMember> | undefined>>();

  constructor(private readonly storage: LocalStorage) {}

  async find(key: string): Promise<Thumbnail | undefined> {
    const shard = key.slice(0, SHARD_DIGITS);
    if (!/^\d+$/.test(shard)) return undefined;
    const members = await this.tarMembers(shard);
    const member = members?.get(key);
    if (member !== undefined) {
      const path = await this.storage.localPath(layout.imageTar(shard));
      const file = await open(path, "r");
      try {
        const bytes = Buffer.alloc(member.size);
        const { bytesRead } = await file.read(bytes, 0, member.size, member.offset);
        if (bytesRead !== member.size) return undefined;
        return { bytes, contentType: IMAGE_TYPES[member.extension] as string };
      } finally {
        await file.close();
      }
    }
    return this.fromFolder(shard, key);
  }

  private tarMembers(shard: string): Promise<Map<string, TarMember> | undefined> {
    let members = this.tars.get(shard);
    if (members === undefined) {
      members = this.readTar(shard);
      this.tars.set(shard, members);
    }
    return members;
  }

  private async readTar(shard: string): Promise<Map<string, TarMember> | undefined> {
    const tar = layout.imageTar(shard);
    if (!(await this.storage.exists(tar))) return undefined;
    const members = new Map<string, TarMember>();
    const stream = createReadStream(await this.storage.localPath(tar));
    try {
      for await (const entry of readTarEntries(stream)) {
        if (entry.kind !== "file") continue;
        const { key, extension } = splitSampleName(entry.name);
        if (IMAGE_TYPES[extension] === undefined) continue;
        // A long name or pax header before the member would shift its data; the reader gives
        // the offset of the member's own header, whose data follows it.
        members.set(key, { offset: entry.offset + TAR_HEADER, size: entry.data.length, extension });
      }
    } catch {
      // A tar that cannot be read serves what was found before the damage.
    } finally {
      stream.destroy();
    }
    return members;
  }

  private async fromFolder(shard: string, key: string): Promise<Thumbnail | undefined> {
    if (!/^[\w-]+$/.test(key)) return undefined;
    for (const [extension, contentType] of Object.entries(IMAGE_TYPES)) {
      const path = `${layout.imageFilesFolder(shard)}/${key}.${extension}`;
      if (await this.storage.exists(path)) {
        return { bytes: await this.storage.read(path), contentType };
      }
    }
    return undefined;
  }
}
