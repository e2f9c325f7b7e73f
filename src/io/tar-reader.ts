/**
 * A streaming tar reader for webdataset shards: regular files (ustar, GNU long names, pax paths),
 * read member by member so a shard never has to fit in memory.
 *
 * A damaged archive is data, not an exception: a header whose checksum fails is reported once as
 * a `damaged` entry and the reader moves on block by block until the next valid header (the
 * member's data blocks cannot pass as a header by chance), so the samples around the damage are
 * still read. A header's size is not trusted either: a member claiming more than
 * `maxMemberBytes` is reported and skipped the same way without reading its data (memory stays
 * bounded by the limit), and one whose claimed data runs past the end of the tar, or holds the
 * ustar headers of the members after it, is reported and reading resumes at the first of those
 * headers. A member cut short by the end of the file is reported the same way.
 */

const BLOCK = 512;

/**
 * The largest member read by default: far above any web image (download's pixel limit at 3
 * bytes a pixel is ~256 MiB uncompressed), and the most one member can cost in memory.
 */
export const DEFAULT_MAX_TAR_MEMBER_BYTES = 256 * 1024 * 1024;

export type TarEntry =
  | { kind: "file"; name: string; data: Buffer; offset: number }
  | { kind: "damaged"; offset: number; message: string };

export interface TarReaderOptions {
  /** Members claiming more bytes are reported as damaged and skipped, unread. */
  maxMemberBytes?: number;
}

/** A webdataset sample: the consecutive members sharing one key (`KEY.jpg`, `KEY.txt`, …). */
export interface WebdatasetSample {
  key: string;
  /** By extension, without the dot: `jpg`, `txt`, `json`, `seg.png`. */
  files: Map<string, Buffer>;
}

export async function* readTarEntries(
  source: AsyncIterable<Uint8Array>,
  options: TarReaderOptions = {},
): AsyncGenerator<TarEntry> {
  const maxMemberBytes = options.maxMemberBytes ?? DEFAULT_MAX_TAR_MEMBER_BYTES;
  const input = new ByteQueue(source[Symbol.asyncIterator]());
  let offset = 0;
  let resyncing = false;
  let longName: string | undefined;
  let paxPath: string | undefined;
  while (true) {
    const header = await input.take(BLOCK);
    if (header.length === 0) return;
    if (header.length < BLOCK) {
      yield { kind: "damaged", offset, message: "tar ends inside a header block" };
      return;
    }
    if (!resyncing && isZeroBlock(header)) {
      // The end of the archive only when nothing but zeros follows: a zeroed header in the middle
      // would otherwise end the tar in silence and lose every member after it.
      const endAt = offset;
      let next: Buffer;
      do {
        offset += BLOCK;
        next = await input.take(BLOCK);
      } while (next.length === BLOCK && isZeroBlock(next));
      if (next.every((byte) => byte === 0)) return;
      yield {
        kind: "damaged",
        offset: endAt,
        message: "tar has an end-of-archive block with members after it",
      };
      input.giveBack(next);
      resyncing = true;
      continue;
    }
    const parsed = parseTarHeader(header);
    if (parsed === undefined) {
      if (!resyncing && !isZeroBlock(header)) {
        yield { kind: "damaged", offset, message: "tar header checksum mismatch" };
        resyncing = true;
      }
      offset += BLOCK;
      continue;
    }
    resyncing = false;
    const { size, type } = parsed;
    const name = longName ?? paxPath ?? parsed.name;
    const headerOffset = offset;
    offset += BLOCK;
    if (size > maxMemberBytes) {
      longName = undefined;
      paxPath = undefined;
      resyncing = true;
      yield {
        kind: "damaged",
        offset: headerOffset,
        message: `tar member ${name} claims ${size} bytes, over the limit of ${maxMemberBytes}`,
      };
      continue;
    }
    const padded = Math.ceil(size / BLOCK) * BLOCK;
    const taken = await input.take(padded);
    const nextHeader = firstUstarHeader(taken, /\.tar$/i.test(name));
    if (taken.length < padded || nextHeader !== undefined) {
      longName = undefined;
      paxPath = undefined;
      if (nextHeader === undefined) {
        yield { kind: "damaged", offset: headerOffset, message: `tar member ${name} is truncated` };
        return;
      }
      yield {
        kind: "damaged",
        offset: headerOffset,
        message: `tar member ${name} claims ${size} bytes, past the next header at byte ${offset + nextHeader}`,
      };
      input.giveBack(taken.subarray(nextHeader));
      offset += nextHeader;
      continue;
    }
    offset += padded;
    const data = taken.subarray(0, size);
    if (type === "L") {
      longName = cString(data);
      continue;
    }
    if (type === "x") {
      paxPath = paxRecords(data).get("path");
      continue;
    }
    longName = undefined;
    paxPath = undefined;
    if (type === "0" || type === "\u0000" || type === "7") {
      yield { kind: "file", name, data, offset: headerOffset };
    }
  }
}

/**
 * The position of the first block of a member's data that is a ustar header with a valid
 * checksum: the member claimed more bytes than it has, and the members after it start there.
 * Only ustar headers (magic at byte 257) count, so a chance match inside image bytes is out of
 * the question; a `.tar` member may hold headers of its own and is not searched.
 */
function firstUstarHeader(data: Buffer, mayHoldTar: boolean): number | undefined {
  if (mayHoldTar) return undefined;
  for (let start = 0; start + BLOCK <= data.length; start += BLOCK) {
    if (!USTAR_MAGIC.every((byte, index) => data[start + 257 + index] === byte)) continue;
    if (checksumMatches(data.subarray(start, start + BLOCK))) return start;
  }
  return undefined;
}

const USTAR_MAGIC = [...Buffer.from("ustar", "latin1")];

/**
 * Groups members into samples as webdataset does: the key is the path up to the first dot of the
 * file name, and a sample is a run of consecutive members with the same key. Damaged entries are
 * passed through as they are.
 */
export async function* readWebdatasetSamples(
  entries: AsyncIterable<TarEntry>,
): AsyncGenerator<WebdatasetSample | Extract<TarEntry, { kind: "damaged" }>> {
  let current: WebdatasetSample | undefined;
  for await (const entry of entries) {
    if (entry.kind === "damaged") {
      yield entry;
      continue;
    }
    const { key, extension } = splitSampleName(entry.name);
    if (current !== undefined && current.key !== key) {
      yield current;
      current = undefined;
    }
    current ??= { key, files: new Map() };
    current.files.set(extension, entry.data);
  }
  if (current !== undefined) yield current;
}

export function splitSampleName(name: string): { key: string; extension: string } {
  const slash = name.lastIndexOf("/");
  const dot = name.indexOf(".", slash + 1);
  return dot < 0
    ? { key: name, extension: "" }
    : { key: name.slice(0, dot), extension: name.slice(dot + 1).toLowerCase() };
}

/** Pulls exact byte counts out of a chunked stream. */
class ByteQueue {
  #chunks: Buffer[] = [];
  #length = 0;
  #done = false;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** The next `count` bytes, or fewer when the stream ends first. */
  async take(count: number): Promise<Buffer> {
    while (this.#length < count && !this.#done) {
      const next = await this.source.next();
      if (next.done === true) {
        this.#done = true;
        break;
      }
      const chunk = Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
      this.#chunks.push(chunk);
      this.#length += chunk.length;
    }
    const wanted = Math.min(count, this.#length);
    if (wanted === 0) return Buffer.alloc(0);
    const joined =
      this.#chunks.length === 1 ? (this.#chunks[0] as Buffer) : Buffer.concat(this.#chunks);
    const taken = Buffer.from(joined.subarray(0, wanted));
    const rest = joined.subarray(wanted);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#length = rest.length;
    return taken;
  }

  /** Puts bytes back in front, to be taken again. */
  giveBack(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.#chunks.unshift(bytes);
    this.#length += bytes.length;
  }
}

/** What a header block says of its member. */
export interface TarHeader {
  /** From the header alone (a GNU long name or pax path comes in a member before it). */
  name: string;
  size: number;
  /** The type flag: `0` or NUL a regular file, `L` a GNU long name, `x` a pax header, … */
  type: string;
}

/** A header block's fields; undefined when its checksum does not match (damage, or data). */
export function parseTarHeader(block: Buffer): TarHeader | undefined {
  if (!checksumMatches(block)) return undefined;
  return {
    name: headerName(block),
    size: parseSize(block),
    type: String.fromCharCode(block[156] as number),
  };
}

export function isZeroBlock(block: Buffer): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

/** The checksum counts its own field as spaces; old writers summed signed bytes. */
function checksumMatches(header: Buffer): boolean {
  const stored = parseOctal(header.subarray(148, 156));
  if (stored === undefined) return false;
  let unsigned = 0;
  let signed = 0;
  for (let index = 0; index < BLOCK; index++) {
    const byte = index >= 148 && index < 156 ? 0x20 : (header[index] as number);
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  return stored === unsigned || stored === signed;
}

function parseSize(header: Buffer): number {
  const field = header.subarray(124, 136);
  // GNU base-256 for sizes past 8 GiB: high bit of the first byte set.
  if (((field[0] as number) & 0x80) !== 0) {
    let value = 0;
    for (let index = 1; index < field.length; index++)
      value = value * 256 + (field[index] as number);
    return value;
  }
  return parseOctal(field) ?? 0;
}

function parseOctal(field: Buffer): number | undefined {
  const text = field
    .toString("latin1")
    .replace(/[\0 ]+$/g, "")
    .replace(/^[\0 ]+/, "");
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) return undefined;
  return Number.parseInt(text, 8);
}

function headerName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const isUstar = header.toString("latin1", 257, 262) === "ustar";
  const prefix = isUstar ? cString(header.subarray(345, 500)) : "";
  return prefix === "" ? name : `${prefix}/${name}`;
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.toString("utf8", 0, end < 0 ? bytes.length : end);
}

/** pax extended header: records `LENGTH KEY=VALUE\n`. */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let position = 0;
  while (position < data.length) {
    const space = data.indexOf(0x20, position);
    if (space < 0) break;
    const length = Number.parseInt(data.toString("latin1", position, space), 10);
    if (!Number.isFinite(length) || length <= 0) break;
    const record = data.toString("utf8", space + 1, position + length - 1);
    const equals = record.indexOf("=");
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    position += length;
  }
  return records;
}
