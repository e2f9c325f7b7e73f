/**
 * WAT files as they come from elsewhere: older crawls' key order, decompressed copies, copies
 * whose WARC headers end lines with LF, and files that hold no record at all.
 */
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { extract } from "../src/stages/extract/extract.js";
import { tempDir } from "./support/temp.js";
import { gzipEach, warcinfoRecord, warcRecord, watPageRecord } from "./support/warc-build.js";

const links = [
  { url: "img/red-chair.jpg", alt: "A red leather armchair in a bright living room" },
  { url: "/logo.png", alt: "Shop logo with a smiling sun" },
  { url: "spacer.gif", alt: "" },
  { url: "icon.png", alt: "icon" },
];
const pageUrl = "https://shop.example.com/chairs/index.html";
const expectedPairs = [
  [
    "https://shop.example.com/chairs/img/red-chair.jpg",
    "A red leather armchair in a bright living room",
  ],
  ["https://shop.example.com/logo.png", "Shop logo with a smiling sun"],
];

async function extractOne(name: string, bytes: Buffer) {
  const dir = await tempDir("extract-real");
  const input = join(dir, name);
  await writeFile(input, bytes);
  const reporter = collectingReporter();
  const root = join(dir, "root");
  const summary = await extract({ root, inputs: [input], config: { workers: 1 }, reporter });
  const written = summary.shardsWritten > 0;
  const rows = written ? await readParquet(new LocalStorage(root), "candidates/00000.parquet") : [];
  return { summary, rows, warnings: reporter.warnings, input };
}

test("records that put Envelope before Container, as older crawls do, keep their WARC filename and offset", async () => {
  const { summary, rows } = await extractOne(
    "old.warc.wat.gz",
    gzipEach([warcinfoRecord(), watPageRecord(pageUrl, links, { envelopeFirst: true })]),
  );
  assert.equal(summary.ok, true);
  assert.equal(rows.length, 2);
  for (const row of rows) {
    assert.equal(row.warc_filename, "CC-MAIN-test-00000.warc.gz");
    assert.equal(row.warc_offset, 1234n);
  }
});

test("an uncompressed WAT file is read as its gzip is, whatever its name, with each record's byte offset", async () => {
  const records = [warcinfoRecord(), watPageRecord(pageUrl, links)];
  const compressed = await extractOne("a.warc.wat.gz", gzipEach(records));
  for (const name of ["a.warc.wat", "misnamed.warc.wat.gz"]) {
    const plain = await extractOne(name, Buffer.concat(records));
    assert.equal(plain.summary.ok, true, name);
    assert.deepEqual(plain.warnings, []);
    assert.deepEqual(
      plain.rows.map((row) => [row.url, row.text]),
      expectedPairs,
    );
    assert.deepEqual(plain.summary.totals.dropped, compressed.summary.totals.dropped);
    assert.equal(plain.rows[0]?.record_offset, BigInt(records[0]?.length ?? 0));
    assert.equal(plain.summary.totals.records, 2);
  }
});

test("a whole WAT file gzipped as one member (gzip file.warc.wat) is read record by record, even past the size limit", async () => {
  const pages = Array.from({ length: 40 }, (_, index) =>
    watPageRecord(`https://site${index}.example/`, [
      { url: "a.jpg", alt: `A picture on page number ${index}` },
    ]),
  );
  const records = [warcinfoRecord(), ...pages];
  assert.ok(Buffer.concat(records).length > 4 * 4096);
  const dir = await tempDir("extract-one-member");
  const input = join(dir, "whole.warc.wat.gz");
  await writeFile(input, gzipSync(Buffer.concat(records)));
  const root = join(dir, "root");
  const summary = await extract({
    root,
    inputs: [input],
    config: { workers: 1, maxRecordBytes: 4096 },
  });
  assert.equal(summary.ok, true);
  assert.equal(summary.totals.records, 41);
  assert.equal(summary.totals.kept, 40);
  const rows = await readParquet(new LocalStorage(root), "candidates/00000.parquet");
  assert.deepEqual(
    new Set(rows.map((row) => row.record_offset)),
    new Set([0n]),
    "the member's offset",
  );
});

test("WARC headers that end lines with LF are read as CRLF ones are, gzip-compressed or plain", async () => {
  const lf = [
    warcinfoRecord({ lineEnd: "\n" }),
    watPageRecord(pageUrl, links, { lineEnd: "\n" }),
    watPageRecord(
      "https://blog.example.org/post.html",
      [{ url: "a.jpg", alt: "A bicycle by a wall" }],
      {
        lineEnd: "\n",
      },
    ),
  ];
  for (const [name, bytes] of [
    ["lf.warc.wat.gz", gzipEach(lf)],
    ["lf.warc.wat", Buffer.concat(lf)],
  ] as const) {
    const { summary, rows, warnings } = await extractOne(name, bytes);
    assert.equal(summary.ok, true, name);
    assert.deepEqual(warnings, []);
    assert.equal(summary.totals.records, 3);
    assert.deepEqual(
      rows.map((row) => [row.url, row.text]),
      [...expectedPairs, ["https://blog.example.org/a.jpg", "A bicycle by a wall"]],
    );
  }
});

test("an empty alt is counted as no_alt and a short one as short_text", async () => {
  const { summary } = await extractOne(
    "alts.warc.wat.gz",
    gzipEach([warcinfoRecord(), watPageRecord(pageUrl, [...links, { url: "x.png" }])]),
  );
  assert.equal(summary.totals.dropped.no_alt, 2);
  assert.equal(summary.totals.dropped.short_text, 1);
});

for (const [what, name, bytes, why] of [
  [
    "a gzip of text that is not WARC",
    "text.warc.wat.gz",
    gzipSync("just some text, not a WARC record\n"),
    /does not start with a WARC\/ version line/,
  ],
  [
    "a gzip of a WARC header block that never ends",
    "endless.warc.wat.gz",
    gzipSync("WARC/1.0\r\nWARC-Type: warcinfo\r\nContent-Length: 0\r\n"),
    /header block has no end/,
  ],
  [
    "gzip members that are all damaged",
    "damaged.warc.wat.gz",
    Buffer.concat([
      gzipSync(warcinfoRecord()).subarray(0, 12),
      Buffer.alloc(64, 0x55),
      gzipSync(warcinfoRecord()).subarray(0, 12),
      Buffer.alloc(64, 0x55),
    ]),
    /corrupt gzip member at offset 0/,
  ],
] as const) {
  test(`a non-empty file with no WARC record (${what}) fails that input with one line saying why`, async () => {
    const { summary, warnings, input } = await extractOne(name, bytes);
    assert.equal(summary.ok, false);
    assert.equal(summary.totals.records, 0);
    assert.equal(summary.failedShards.length, 1);
    const failure = summary.failedShards[0]?.error ?? "";
    assert.ok(
      failure.startsWith(`${input}: no WARC record could be read from its ${bytes.length} bytes (`),
    );
    assert.match(failure, why);
    assert.ok(warnings.includes(failure));
    assert.equal(summary.shardsWritten, 0);
  });
}

test("a plain file whose only WARC header block never ends fails with one line saying so", async () => {
  const { summary, warnings, input } = await extractOne(
    "endless.warc.wat",
    Buffer.from("WARC/1.0\r\nWARC-Type: warcinfo\r\nContent-Length: 0\r\n"),
  );
  assert.equal(summary.ok, false);
  assert.deepEqual(warnings, [
    `${input}: file cut off in the record at offset 0 (header block has no end (blank line))`,
  ]);
});

test("an empty file is no failure: nothing to read", async () => {
  const { summary } = await extractOne("empty.warc.wat.gz", Buffer.alloc(0));
  assert.equal(summary.ok, true);
});

test("a plain WAT file cut off inside a record keeps the records before the cut and fails with the offset", async () => {
  const records = [warcinfoRecord(), watPageRecord(pageUrl, links)];
  const whole = Buffer.concat(records);
  const { summary, rows, warnings, input } = await extractOne(
    "cut.warc.wat",
    Buffer.concat([
      whole,
      warcRecord({ "WARC-Type": "metadata" }, "{}".repeat(100)).subarray(0, 120),
    ]),
  );
  assert.equal(summary.ok, false);
  assert.equal(rows.length, 2);
  assert.match(
    warnings.at(-1) ?? "",
    new RegExp(`^${input}: file cut off in the record at offset ${whole.length} `),
  );
});
