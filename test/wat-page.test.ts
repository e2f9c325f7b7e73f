import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { parseWarcRecords, type WarcRecord } from "../src/stages/extract/warc-records.js";
import { readWarcStream } from "../src/stages/extract/warc-stream.js";
import {
  linkPathPatterns,
  readWatPage,
  readWatPageFully,
  WatJsonError,
} from "../src/stages/extract/wat-page.js";
import { tempDir } from "./support/temp.js";
import { warcRecord, watPageRecord } from "./support/warc-build.js";

const imgOnly = linkPathPatterns(["IMG@/src"]);

function recordOf(data: Buffer): WarcRecord {
  const [record] = parseWarcRecords(data, 0);
  assert.ok(record !== undefined);
  return record;
}

test("the fast reading of a page equals a full JSON.parse on every record of a generated WAT file", async () => {
  const path = join(await tempDir("wat-page"), "sample.warc.wat.gz");
  await writeWatFile(path, { seed: 99, pages: 80 });
  let pagesCompared = 0;
  async function* chunks() {
    yield await readFile(path);
  }
  for await (const event of readWarcStream(chunks(), { maxRecordBytes: 2 ** 30 })) {
    assert.ok("record" in event);
    const { record } = event;
    if (record.type !== "metadata") continue;
    for (const paths of [["IMG@/src"], ["IMG@/src", "A@/href"]]) {
      const fast = readWatPage(record, linkPathPatterns(paths));
      const full = readWatPageFully(record, new Set(paths));
      assert.deepEqual(fast, fast === undefined ? undefined : full);
      if (fast !== undefined) pagesCompared++;
    }
  }
  assert.ok(pagesCompared > 50, `compared ${pagesCompared} pages`);
});

test("braces inside alt text, whitespace in the JSON, and escaped quotes still read correctly", () => {
  const tricky = recordOf(
    watPageRecord("https://a.example/x/", [
      { url: "a.jpg", alt: "curly {braces} at the end}" },
      { url: "{b}.jpg", alt: '"quoted" and \\ backslash' },
      { url: "c.jpg", alt: 'mentions "IMG@/src" in text' },
    ]),
  );
  const fast = readWatPage(tricky, imgOnly);
  assert.deepEqual(fast, readWatPageFully(tricky, imgOnly.paths));
  assert.deepEqual(
    fast?.links.map((link) => link.alt),
    ["curly {braces} at the end}", '"quoted" and \\ backslash', 'mentions "IMG@/src" in text'],
  );
  const pretty = JSON.stringify(
    JSON.parse(
      watPageRecord("https://a.example/", [{ url: "p.jpg", alt: "pretty printed" }])
        .toString()
        .split("\r\n\r\n")[1] ?? "",
    ),
    null,
    2,
  );
  const prettyRecord = recordOf(
    warcRecord({ "WARC-Type": "metadata", "WARC-Target-URI": "https://a.example/" }, pretty),
  );
  assert.deepEqual(readWatPage(prettyRecord, imgOnly)?.links, [
    { path: "IMG@/src", url: "p.jpg", alt: "pretty printed" },
  ]);
});

test("a record cut off mid-JSON is invalid, with its offset", () => {
  const whole = watPageRecord("https://a.example/", [
    { url: "p.jpg", alt: "a caption here" },
  ]).toString();
  const body = (whole.split("\r\n\r\n")[1] ?? "").slice(0, -40);
  const record = recordOf(warcRecord({ "WARC-Type": "metadata" }, body));
  assert.throws(
    () => readWatPage(record, imgOnly),
    (error: unknown) => error instanceof WatJsonError && /cut off/.test(error.message),
  );
});
