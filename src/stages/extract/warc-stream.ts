/**
 * The WARC records of a WAT (or WARC) file's bytes, whether gzip-compressed (`.warc.wat.gz`, one
 * member per record, or any members) or plain (`.warc.wat`, as warcio also reads): told apart by
 * the first bytes, not the name. Bad records and damaged members are events, so the caller counts
 * them and goes on; only what ends the reading (a cut-off file, bytes that are not WARC at all) is
 * a failure.
 */
import { gzipMembers } from "./gzip-members.js";
import { type WarcProblem, type WarcRecord, WarcRecordReader } from "./warc-records.js";

export type WarcStreamProblemKind = "bad_warc_record" | "oversized_record" | "corrupt_gzip";

export type WarcStreamEvent =
  | { record: WarcRecord }
  /** A record (or gzip member) left out; the reading goes on. One line in `message`. */
  | { problem: { kind: WarcStreamProblemKind; message: string } }
  /** The reading stops here: one line saying why. */
  | { failure: string };

export interface WarcStreamOptions {
  /** A record whose body is longer is reported and skipped without being held in memory. */
  maxRecordBytes: number;
}

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);
const WARC_VERSION = Buffer.from("WARC/");

export async function* readWarcStream(
  chunks: AsyncIterable<Buffer>,
  options: WarcStreamOptions,
): AsyncGenerator<WarcStreamEvent> {
  const { head, rest } = await peek(chunks, WARC_VERSION.length);
  if (head.length === 0) return;
  const reader = new WarcRecordReader(options.maxRecordBytes);
  if (startsWith(head, GZIP_MAGIC)) {
    yield* gzipRecords(rest, reader, options.maxRecordBytes);
  } else if (startsWith(head, WARC_VERSION)) {
    yield* plainRecords(rest, reader);
  } else {
    yield {
      failure: `not a WAT/WARC file: it starts with neither a gzip header nor "WARC/" (${JSON.stringify(head.toString("latin1"))})`,
    };
  }
}

async function* gzipRecords(
  chunks: AsyncIterable<Buffer>,
  reader: WarcRecordReader,
  maxRecordBytes: number,
): AsyncGenerator<WarcStreamEvent> {
  let inMember = false;
  for await (const event of gzipMembers(chunks, { inflateAtOnceBytes: maxRecordBytes })) {
    if ("damage" in event) {
      reader.abandon();
      inMember = false;
      if (event.damage.kind !== "corrupt") {
        yield { failure: event.damage.message };
        return;
      }
      yield { problem: { kind: "corrupt_gzip", message: event.damage.message } };
      continue;
    }
    const { piece } = event;
    if (!inMember) {
      reader.begin(piece.memberOffset, false);
      inMember = true;
    }
    for (const item of reader.push(piece.data)) yield fromReader(item, false);
    if (piece.memberEnd) {
      // A record cut off at the end of its member is a bad record: the next member starts afresh.
      for (const item of reader.end()) yield fromReader(item, false);
      inMember = false;
    }
  }
}

async function* plainRecords(
  chunks: AsyncIterable<Buffer>,
  reader: WarcRecordReader,
): AsyncGenerator<WarcStreamEvent> {
  reader.begin(0, true);
  for await (const chunk of chunks) {
    for (const item of reader.push(chunk)) yield fromReader(item, true);
  }
  for (const item of reader.end()) yield fromReader(item, true);
}

function fromReader(
  event: { record: WarcRecord } | { problem: WarcProblem },
  plain: boolean,
): WarcStreamEvent {
  if ("record" in event) return event;
  const { kind, error } = event.problem;
  // In a plain file, bytes that end inside a record mean the file itself is cut off.
  if (kind === "cut_off" && plain) {
    return { failure: `file cut off in the record at offset ${error.offset} (${error.reason})` };
  }
  return {
    problem: {
      kind: kind === "oversized_record" ? kind : "bad_warc_record",
      message: error.message,
    },
  };
}

/** The first `count` bytes (fewer if the stream is shorter), and the whole stream again. */
async function peek(
  chunks: AsyncIterable<Buffer>,
  count: number,
): Promise<{ head: Buffer; rest: AsyncIterable<Buffer> }> {
  const iterator = chunks[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let length = 0;
  while (length < count) {
    const next = await iterator.next();
    if (next.done) break;
    seen.push(next.value);
    length += next.value.length;
  }
  const head = Buffer.concat(seen).subarray(0, count);
  async function* rest(): AsyncGenerator<Buffer> {
    yield* seen;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return;
      yield next.value;
    }
  }
  return { head, rest: rest() };
}

function startsWith(data: Buffer, prefix: Buffer): boolean {
  return data.length >= prefix.length && data.subarray(0, prefix.length).equals(prefix);
}
