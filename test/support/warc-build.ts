/**
 * Hand-built WARC/WAT records for tests that need one exact malformed or edge case; whole
 * realistic files come from scripts/wat-generator.ts.
 */
import { gzipSync } from "node:zlib";

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
