/**
 * WARC records in a stream of bytes: the records of one gzip member (Common Crawl writes one
 * record per member), or of a whole uncompressed file, fed in pieces of any size. Header lines
 * may end in CRLF, as the standard says, or in LF, as some copies in circulation do: the header
 * block ends at the first empty line, and the body is always Content-Length bytes. Only the
 * header block is parsed; the body stays a Buffer view so a record the extractor does not need
 * costs no decoding.
 *
 * Problems are data, and memory stays bounded whatever the bytes: a record longer than
 * `maxRecordBytes` is reported and its body dropped as it streams past, a header block with no
 * end is given up after MAX_HEADER_BYTES, and after a broken record the reader looks for the
 * next line that starts with `WARC/`.
 */
export interface WarcRecord {
  /**
   * Where the record starts: in a gzip file, the offset of the member holding it in the
   * compressed file; in an uncompressed file, the record's own byte offset.
   */
  offset: number;
  type: string;
  targetUri: string;
  date: string;
  /** Header names lower-cased. */
  headers: Map<string, string>;
  body: Buffer;
}

export class WarcFormatError extends Error {
  readonly offset: number;
  /** What is wrong, without the offset. */
  readonly reason: string;

  constructor(offset: number, reason: string) {
    super(`bad WARC record at offset ${offset}: ${reason}`);
    this.offset = offset;
    this.reason = reason;
  }
}

/**
 * `bad_warc_record`: a header block that cannot be read; `oversized_record`: a body longer than
 * the limit, skipped; `cut_off`: the bytes end inside a record.
 */
export type WarcProblemKind = "bad_warc_record" | "oversized_record" | "cut_off";

export interface WarcProblem {
  kind: WarcProblemKind;
  /** Its message is one line naming the offset. */
  error: WarcFormatError;
}

export type WarcRecordEvent = { record: WarcRecord } | { problem: WarcProblem };

/** Longer than any real header block; past this a block with no end is damage. */
export const MAX_HEADER_BYTES = 1024 * 1024;

const LF = 0x0a;
const CR = 0x0d;
const VERSION_PREFIX = Buffer.from("WARC/");
const LINE_THEN_VERSION = Buffer.from("\nWARC/");
const EMPTY = Buffer.alloc(0);

/** Reads the records of one segment (a gzip member, or a whole plain file) after another. */
export class WarcRecordReader {
  private pending: Buffer = EMPTY;
  /** Position of pending[0] in the segment. */
  private pendingStart = 0;
  private segmentOffset = 0;
  private offsetsPerByte = false;
  /** Body bytes of an oversized record still to drop. */
  private skipping = 0;
  /** After a broken record: looking for the next `WARC/` line. */
  private resyncing = false;

  constructor(private readonly maxRecordBytes: number) {}

  /**
   * Starts a segment at `offset` in the file. With `offsetsPerByte` (a plain file) a record's
   * offset is `offset` plus its position in the segment, else (a gzip member) `offset` itself.
   */
  begin(offset: number, offsetsPerByte: boolean): void {
    this.reset();
    this.segmentOffset = offset;
    this.offsetsPerByte = offsetsPerByte;
  }

  /** The records and problems complete in the segment's bytes so far. */
  *push(data: Buffer): Generator<WarcRecordEvent> {
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    yield* this.drain(false);
  }

  /** The segment has ended: what is left is a record cut off, or nothing. */
  *end(): Generator<WarcRecordEvent> {
    yield* this.drain(true);
    this.reset();
  }

  /** The segment was damaged (and reported as such): what is left is dropped silently. */
  abandon(): void {
    this.reset();
  }

  private reset(): void {
    this.pending = EMPTY;
    this.pendingStart = 0;
    this.skipping = 0;
    this.resyncing = false;
  }

  private offsetAt(position: number): number {
    return this.offsetsPerByte
      ? this.segmentOffset + this.pendingStart + position
      : this.segmentOffset;
  }

  private *drain(final: boolean): Generator<WarcRecordEvent> {
    const data = this.pending;
    let cursor = 0;
    for (;;) {
      if (this.skipping > 0) {
        const dropped = Math.min(this.skipping, data.length - cursor);
        cursor += dropped;
        this.skipping -= dropped;
        if (this.skipping > 0) break;
      }
      if (this.resyncing) {
        const next = data.indexOf(LINE_THEN_VERSION, cursor);
        if (next < 0) {
          // Keep a tail long enough to hold the start of a `\nWARC/` cut by the piece boundary.
          cursor = Math.max(cursor, data.length - LINE_THEN_VERSION.length + 1);
          break;
        }
        cursor = next + 1;
        this.resyncing = false;
      }
      cursor = skipLineBreaks(data, cursor);
      if (cursor >= data.length) break;
      if (data.length - cursor < VERSION_PREFIX.length && !final) break;
      const offset = this.offsetAt(cursor);
      const step = readRecordAt(data, cursor, offset, this.maxRecordBytes, final);
      if (step === "need_more") break;
      if ("record" in step) {
        yield { record: step.record };
        cursor = step.end;
        continue;
      }
      yield { problem: step.problem };
      if (step.problem.kind === "oversized_record") {
        cursor = step.bodyStart;
        this.skipping = step.bodyLength;
      } else {
        cursor = final ? data.length : cursor + 1;
        this.resyncing = !final;
      }
    }
    this.pendingStart += cursor;
    this.pending = cursor >= data.length ? EMPTY : data.subarray(cursor);
  }
}

type RecordStep =
  | "need_more"
  | { record: WarcRecord; end: number }
  | { problem: WarcProblem; bodyStart: number; bodyLength: number };

function readRecordAt(
  data: Buffer,
  start: number,
  offset: number,
  maxRecordBytes: number,
  final: boolean,
): RecordStep {
  const problem = (kind: WarcProblemKind, reason: string, bodyStart = 0, bodyLength = 0) => ({
    problem: { kind, error: new WarcFormatError(offset, reason) },
    bodyStart,
    bodyLength,
  });
  if (
    data.length - start < VERSION_PREFIX.length ||
    data.compare(VERSION_PREFIX, 0, VERSION_PREFIX.length, start, start + VERSION_PREFIX.length) !==
      0
  ) {
    return problem("bad_warc_record", "does not start with a WARC/ version line");
  }
  const block = headerBlockAt(data, start);
  if (block === undefined) {
    if (final) return problem("cut_off", "header block has no end (blank line)");
    if (data.length - start > MAX_HEADER_BYTES) {
      return problem("bad_warc_record", `header block has no end within ${MAX_HEADER_BYTES} bytes`);
    }
    return "need_more";
  }
  let headers: Map<string, string>;
  try {
    headers = parseHeaderLines(data.toString("utf8", start, block.textEnd));
  } catch (error) {
    if (!(error instanceof HeaderError)) throw error;
    return problem("bad_warc_record", error.message);
  }
  const lengthText = headers.get("content-length");
  const length = lengthText === undefined ? Number.NaN : Number(lengthText);
  if (!Number.isSafeInteger(length) || length < 0) {
    return problem(
      "bad_warc_record",
      `invalid Content-Length ${JSON.stringify(lengthText ?? null)}`,
    );
  }
  const type = headers.get("warc-type");
  if (type === undefined) return problem("bad_warc_record", "no WARC-Type header");
  if (length > maxRecordBytes) {
    return problem(
      "oversized_record",
      `its ${length}-byte body is over the ${maxRecordBytes}-byte limit (extract.maxRecordBytes); skipped`,
      block.bodyStart,
      length,
    );
  }
  if (block.bodyStart + length > data.length) {
    if (!final) return "need_more";
    return problem(
      "cut_off",
      `Content-Length ${length} is longer than the ${data.length - block.bodyStart} bytes in the record`,
    );
  }
  const record: WarcRecord = {
    offset,
    type,
    targetUri: stripAngleBrackets(headers.get("warc-target-uri") ?? ""),
    date: headers.get("warc-date") ?? "",
    headers,
    body: data.subarray(block.bodyStart, block.bodyStart + length),
  };
  return { record, end: block.bodyStart + length };
}

/** Where the header block from `start` ends: the first empty line, CRLF or LF. */
function headerBlockAt(
  data: Buffer,
  start: number,
): { textEnd: number; bodyStart: number } | undefined {
  for (let lf = data.indexOf(LF, start); lf >= 0; lf = data.indexOf(LF, lf + 1)) {
    const next = data[lf + 1];
    if (next === LF) return { textEnd: lf, bodyStart: lf + 2 };
    if (next === CR && data[lf + 2] === LF) return { textEnd: lf, bodyStart: lf + 3 };
  }
  return undefined;
}

class HeaderError extends Error {}

function parseHeaderLines(text: string): Map<string, string> {
  const headers = new Map<string, string>();
  const lines = text.split("\n");
  for (let index = 1; index < lines.length; index++) {
    const line = lines[index] as string;
    const colon = line.indexOf(":");
    if (colon <= 0) {
      throw new HeaderError(`malformed header line ${JSON.stringify(line.trimEnd().slice(0, 80))}`);
    }
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return headers;
}

function skipLineBreaks(data: Buffer, from: number): number {
  let cursor = from;
  while (cursor < data.length && (data[cursor] === CR || data[cursor] === LF)) cursor++;
  return cursor;
}

/** WARC 1.0 wrote `WARC-Target-URI: <http://…>`; 1.1 dropped the brackets. */
function stripAngleBrackets(uri: string): string {
  return uri.startsWith("<") && uri.endsWith(">") ? uri.slice(1, -1) : uri;
}

/**
 * The records in one complete piece of bytes (a member's data), for callers that hold it whole;
 * throws WarcFormatError on the first problem.
 */
export function parseWarcRecords(
  data: Buffer,
  offset: number,
  maxRecordBytes = Number.MAX_SAFE_INTEGER,
): WarcRecord[] {
  const reader = new WarcRecordReader(maxRecordBytes);
  reader.begin(offset, false);
  const records: WarcRecord[] = [];
  for (const events of [reader.push(data), reader.end()]) {
    for (const event of events) {
      if ("problem" in event) throw event.problem.error;
      records.push(event.record);
    }
  }
  return records;
}
