/**
 * Hand-built WARC/WAT records for tests that need one exact malformed or edge case; whole
 * realistic files come from src/demo/sample/wat-generator.ts.
 */
import { constants, crc32, deflateRawSync, gzipSync } from "node:zlib";

/** `lineEnd: "\n"` frames the record as some copies in circulation do, instead of CRLF. */
export function warcRecord(
  headers: Record<string, string>,
  body: string | Buffer,
  options: { lineEnd?: "\r\n" | "\n" } = {},
): Buffer {
  const eol = options.lineEnd ?? "\r\n";
  const payload = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const lines = [
    "WARC/1.0",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  if (!("Content-Length" in headers)) lines.push(`Content-Length: ${payload.length}`);
  return Buffer.concat([
    Buffer.from(`${lines.join(eol)}${eol}${eol}`),
    payload,
    Buffer.from(`${eol}${eol}`),
  ]);
}

export interface TestLink {
  path?: string;
  url: string;
  alt?: string;
}

/** A WAT metadata record for an HTML page with the given links. */
export function watPageRecord(
  pageUrl: string,
  links: TestLink[],
  options: { base?: string; envelopeFirst?: boolean; lineEnd?: "\r\n" | "\n" } = {},
): Buffer {
  const container = {
    Container: { Filename: "CC-MAIN-test-00000.warc.gz", Compressed: true, Offset: "1234" },
  };
  const envelope = {
    ...(options.envelopeFirst === true ? {} : container),
    Envelope: {
      Format: "WARC",
      "WARC-Header-Metadata": {
        "WARC-Type": "response",
        "WARC-Target-URI": pageUrl,
        "WARC-Date": "2024-02-21T10:11:12Z",
      },
      "Payload-Metadata": {
        "Actual-Content-Type": "application/http; msgtype=response",
        "HTTP-Response-Metadata": {
          "Response-Message": { Status: "200", Version: "HTTP/1.1", Reason: "OK" },
          "HTML-Metadata": {
            Head: {
              Title: "test page",
              ...(options.base === undefined ? {} : { Base: options.base }),
            },
            Links: links.map((link) => ({ path: link.path ?? "IMG@/src", ...link })),
          },
        },
      },
    },
    ...(options.envelopeFirst === true ? container : {}),
  };
  return warcRecord(
    {
      "WARC-Type": "metadata",
      "WARC-Target-URI": pageUrl,
      "WARC-Date": "2024-03-01T00:00:00Z",
      "Content-Type": "application/json",
    },
    JSON.stringify(envelope),
    { lineEnd: options.lineEnd ?? "\r\n" },
  );
}

export function warcinfoRecord(options: { lineEnd?: "\r\n" | "\n" } = {}): Buffer {
  const eol = options.lineEnd ?? "\r\n";
  return warcRecord(
    { "WARC-Type": "warcinfo", "Content-Type": "application/warc-fields" },
    `Software-Info: test${eol}format: WARC File Format 1.0${eol}`,
    options,
  );
}

/** One gzip member per record, as Common Crawl writes them. */
export function gzipEach(records: Buffer[]): Buffer {
  return Buffer.concat(records.map((record) => gzipSync(record)));
}

const ZERO_SEGMENT_BYTES = 64 * 1024 * 1024;

/**
 * A gzip member holding one WARC record whose body is `bodyBytes` zeros (a gzip bomb: about a
 * thousandth of that compressed), built without holding the body: a deflate segment of 64 MiB of
 * zeros, flushed to a byte boundary, repeated.
 */
export function gzipBombMember(bodyBytes: number): Buffer {
  if (bodyBytes % ZERO_SEGMENT_BYTES !== 0) throw new Error("bodyBytes: a multiple of 64 MiB");
  const head = Buffer.from(
    `WARC/1.0\r\nWARC-Type: resource\r\nWARC-Target-URI: https://bomb.example/\r\nContent-Length: ${bodyBytes}\r\n\r\n`,
  );
  const tail = Buffer.from("\r\n\r\n");
  const flushed = { finishFlush: constants.Z_SYNC_FLUSH };
  const zeros = Buffer.alloc(ZERO_SEGMENT_BYTES);
  const segment = deflateRawSync(zeros, flushed);
  const segments = bodyBytes / ZERO_SEGMENT_BYTES;
  let checksum = crc32(head);
  for (let index = 0; index < segments; index++) checksum = crc32(zeros, checksum);
  checksum = crc32(tail, checksum);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(checksum >>> 0, 0);
  trailer.writeUInt32LE((head.length + bodyBytes + tail.length) % 2 ** 32, 4);
  return Buffer.concat([
    Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
    deflateRawSync(head, flushed),
    ...new Array<Buffer>(segments).fill(segment),
    deflateRawSync(tail),
    trailer,
  ]);
}
