import assert from "node:assert/strict";
import { test } from "node:test";
import {
  parseWarcRecords,
  WarcFormatError,
  type WarcRecordEvent,
  WarcRecordReader,
} from "../src/stages/extract/warc-records.js";
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

test("a record whose header lines end with LF alone is read as a CRLF one is", () => {
  const data = warcRecord(
    { "WARC-Type": "metadata", "WARC-Target-URI": "https://a.example/" },
    "body\r\nwith a CRLF inside",
    { lineEnd: "\n" },
  );
  const [record] = parseWarcRecords(data, 0);
  assert.equal(record?.type, "metadata");
  assert.equal(record?.targetUri, "https://a.example/");
  assert.equal(record?.body.toString(), "body\r\nwith a CRLF inside");
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

function readAll(pieces: Buffer[], maxRecordBytes = 1 << 20): WarcRecordEvent[] {
  const reader = new WarcRecordReader(maxRecordBytes);
  reader.begin(100, true);
  const events: WarcRecordEvent[] = [];
  for (const piece of pieces) events.push(...reader.push(piece));
  events.push(...reader.end());
  return events;
}

function summarise(events: WarcRecordEvent[]): unknown[] {
  return events.map((event) =>
    "record" in event
      ? [event.record.offset, event.record.type, event.record.body.toString()]
      : [event.problem.kind, event.problem.error.message],
  );
}

function bytewise(data: Buffer): Buffer[] {
  return [...data].map((byte) => Buffer.from([byte]));
}

const first = warcRecord({ "WARC-Type": "warcinfo" }, "info");
const second = warcRecord({ "WARC-Type": "metadata" }, '{"a":1}', { lineEnd: "\n" });
const third = warcRecord({ "WARC-Type": "response" }, "third body");

test("records in a plain stream come out with their byte offsets, CRLF or LF, however the bytes are cut", () => {
  const stream = Buffer.concat([first, second, third]);
  const expected = [
    [100, "warcinfo", "info"],
    [100 + first.length, "metadata", '{"a":1}'],
    [100 + first.length + second.length, "response", "third body"],
  ];
  assert.deepEqual(summarise(readAll([stream])), expected);
  assert.deepEqual(summarise(readAll(bytewise(stream))), expected);
});

test("a record over the size limit is reported with its offset and size, skipped, and the next is read", () => {
  const oversized = warcRecord({ "WARC-Type": "resource" }, Buffer.alloc(5000, 0x20));
  const stream = Buffer.concat([first, oversized, third]);
  for (const pieces of [[stream], bytewise(stream)]) {
    assert.deepEqual(summarise(readAll(pieces, 4096)), [
      [100, "warcinfo", "info"],
      [
        "oversized_record",
        `bad WARC record at offset ${100 + first.length}: its 5000-byte body is over the 4096-byte limit (extract.maxRecordBytes); skipped`,
      ],
      [100 + first.length + oversized.length, "response", "third body"],
    ]);
  }
});

test("after a broken header block the reader finds the next WARC/ line and goes on", () => {
  const broken = Buffer.from("WARC/1.0\r\nno colon here\r\n\r\ngarbage\r\n\r\n");
  const stream = Buffer.concat([first, broken, third]);
  for (const pieces of [[stream], bytewise(stream)]) {
    assert.deepEqual(summarise(readAll(pieces)), [
      [100, "warcinfo", "info"],
      [
        "bad_warc_record",
        `bad WARC record at offset ${100 + first.length}: malformed header line "no colon here"`,
      ],
      [100 + first.length + broken.length, "response", "third body"],
    ]);
  }
});
