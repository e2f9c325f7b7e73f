/**
 * WARC/1.0 records inside an inflated gzip member (Common Crawl writes one record per member).
 * Only the header block is parsed here; the body stays a Buffer view so a record the extractor
 * does not need costs no decoding.
 */
export interface WarcRecord {
  /** Offset of the gzip member holding the record, in the compressed file. */
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

  constructor(offset: number, message: string) {
    super(`bad WARC record at offset ${offset}: ${message}`);
    this.offset = offset;
  }
}

const HEADER_END = Buffer.from("\r\n\r\n");
const VERSION_PREFIX = Buffer.from("WARC/");

/** The records in one member's data; throws WarcFormatError on a broken header block. */
export function parseWarcRecords(data: Buffer, offset: number): WarcRecord[] {
  const records: WarcRecord[] = [];
  let cursor = 0;
  while (cursor < data.length) {
    cursor = skipLineBreaks(data, cursor);
    if (cursor >= data.length) break;
    const { record, end } = parseOne(data, cursor, offset);
    records.push(record);
    cursor = end;
  }
  return records;
}

function parseOne(
  data: Buffer,
  start: number,
  offset: number,
): { record: WarcRecord; end: number } {
  if (
    data.compare(VERSION_PREFIX, 0, VERSION_PREFIX.length, start, start + VERSION_PREFIX.length) !==
    0
  ) {
    throw new WarcFormatError(offset, "does not start with a WARC/ version line");
  }
  const headerEnd = data.indexOf(HEADER_END, start);
  if (headerEnd < 0) throw new WarcFormatError(offset, "header block has no end (blank line)");
  const lines = data.toString("utf8", start, headerEnd).split("\r\n");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0)
      throw new WarcFormatError(
        offset,
        `malformed header line ${JSON.stringify(line.slice(0, 80))}`,
      );
    headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  const lengthText = headers.get("content-length");
  const length = lengthText === undefined ? Number.NaN : Number(lengthText);
  if (!Number.isSafeInteger(length) || length < 0) {
    throw new WarcFormatError(
      offset,
      `invalid Content-Length ${JSON.stringify(lengthText ?? null)}`,
    );
  }
  const bodyStart = headerEnd + HEADER_END.length;
  if (bodyStart + length > data.length) {
    throw new WarcFormatError(
      offset,
      `Content-Length ${length} is longer than the ${data.length - bodyStart} bytes in the record`,
    );
  }
  const type = headers.get("warc-type");
  if (type === undefined) throw new WarcFormatError(offset, "no WARC-Type header");
  const record: WarcRecord = {
    offset,
    type,
    targetUri: stripAngleBrackets(headers.get("warc-target-uri") ?? ""),
    date: headers.get("warc-date") ?? "",
    headers,
    body: data.subarray(bodyStart, bodyStart + length),
  };
  return { record, end: bodyStart + length };
}

function skipLineBreaks(data: Buffer, from: number): number {
  let cursor = from;
  while (cursor < data.length && (data[cursor] === 0x0d || data[cursor] === 0x0a)) cursor++;
  return cursor;
}

/** WARC 1.0 wrote `WARC-Target-URI: <http://…>`; 1.1 dropped the brackets. */
function stripAngleBrackets(uri: string): string {
  return uri.startsWith("<") && uri.endsWith(">") ? uri.slice(1, -1) : uri;
}
