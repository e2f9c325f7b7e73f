/**
 * Hand-built WARC/WAT records for tests that need one exact malformed or edge case; whole
 * realistic files come from src/demo/sample/wat-generator.ts.
 */
import { gzipSync } from "node:zlib";

export function warcRecord(headers: Record<string, string>, body: string | Buffer): Buffer {
  const payload = typeof body === "string" ? Buffer.from(body, "utf8") : body;
  const lines = [
    "WARC/1.0",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  if (!("Content-Length" in headers)) lines.push(`Content-Length: ${payload.length}`);
  return Buffer.concat([
    Buffer.from(`${lines.join("\r\n")}\r\n\r\n`),
    payload,
    Buffer.from("\r\n\r\n"),
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
  options: { base?: string } = {},
): Buffer {
  const envelope = {
    Container: { Filename: "CC-MAIN-test-00000.warc.gz", Compressed: true, Offset: "1234" },
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
  };
  return warcRecord(
    {
      "WARC-Type": "metadata",
      "WARC-Target-URI": pageUrl,
      "WARC-Date": "2024-03-01T00:00:00Z",
      "Content-Type": "application/json",
    },
    JSON.stringify(envelope),
  );
}

export function warcinfoRecord(): Buffer {
  return warcRecord(
    { "WARC-Type": "warcinfo", "Content-Type": "application/warc-fields" },
    "Software-Info: test\r\nformat: WARC File Format 1.0\r\n",
  );
}

/** One gzip member per record, as Common Crawl writes them. */
export function gzipEach(records: Buffer[]): Buffer {
  return Buffer.concat(records.map((record) => gzipSync(record)));
}
