import assert from "node:assert/strict";
import { test } from "node:test";
import { parseWarcRecords, WarcFormatError } from "../src/stages/extract/warc-records.js";
import { warcRecord } from "./support/warc-build.js";

test("a WARC record's headers and exact body are read, UTF-8 lengths counted in bytes", () => {
  const body = '{"alt":"Ünïcödé 😀"}';
  const data = warcRecord(
    {
      "WARC-Type": "metadata",
      "WARC-Target-URI": "<https://a.example/>",
      "WARC-Date": "2024-01-01T00:00:00Z",
    },
    body,
  );
  const [record] = parseWarcRecords(data, 42);
  assert.ok(record !== undefined);
  assert.equal(record.type, "metadata");
  assert.equal(record.targetUri, "https://a.example/");
  assert.equal(record.offset, 42);
  assert.equal(record.body.toString("utf8"), body);
});

test("two records in one member are both read", () => {
  const data = Buffer.concat([
    warcRecord({ "WARC-Type": "request" }, "a"),
    warcRecord({ "WARC-Type": "response" }, "bb"),
  ]);
  assert.deepEqual(
    parseWarcRecords(data, 0).map((record) => [record.type, record.body.toString()]),
    [
      ["request", "a"],
      ["response", "bb"],
    ],
  );
});

for (const [name, data, message] of [
  [
    "no version line",
    Buffer.from("HTTP/1.1 200 OK\r\n\r\n"),
    /does not start with a WARC\/ version line/,
  ],
  [
    "no end of headers",
    Buffer.from("WARC/1.0\r\nWARC-Type: metadata\r\n"),
    /header block has no end/,
  ],
  [
    "a header line without a colon",
    Buffer.from("WARC/1.0\r\nWARC-Type metadata\r\nContent-Length: 0\r\n\r\n"),
    /malformed header line/,
  ],
  [
    "a non-numeric Content-Length",
    warcRecord({ "WARC-Type": "metadata", "Content-Length": "12x" }, "x"),
    /invalid Content-Length "12x"/,
  ],
  [
    "a Content-Length past the end",
    warcRecord({ "WARC-Type": "metadata", "Content-Length": "9999" }, "short"),
    /longer than the/,
  ],
  ["no WARC-Type", warcRecord({ "WARC-Date": "x" }, "body"), /no WARC-Type/],
] as const) {
  test(`a broken WARC header (${name}) is a WarcFormatError naming the offset`, () => {
    assert.throws(
      () => parseWarcRecords(data, 777),
      (error: unknown) =>
        error instanceof WarcFormatError &&
        error.offset === 777 &&
        message.test(error.message) &&
        /offset 777/.test(error.message),
    );
  });
}
