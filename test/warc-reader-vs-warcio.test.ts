import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { WARCParser } from "warcio";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { readWarcStream } from "../src/stages/extract/warc-stream.js";
import { tempDir } from "./support/temp.js";

async function warcioRecords(path: string): Promise<ReaderView[]> {
  const records: ReaderView[] = [];
  const parser = new WARCParser(createReadStream(path));
  for await (const record of parser) {
    const body = Buffer.from(await record.readFully(false));
    records.push([
      parser.offset,
      record.warcType ?? "",
      record.warcTargetURI ?? "",
      body.toString("utf8"),
    ]);
  }
  return records;
}

async function ourRecords(path: string): Promise<ReaderView[]> {
  const records: ReaderView[] = [];
  async function* chunks() {
    yield* createReadStream(path, { highWaterMark: 64 * 1024 }) as AsyncIterable<Buffer>;
  }
  for await (const event of readWarcStream(chunks(), { maxRecordBytes: 2 ** 30 })) {
    assert.ok("record" in event, JSON.stringify(event));
    const { record } = event;
    records.push([record.offset, record.type, record.targetUri, record.body.toString("utf8")]);
  }
  return records;
}

type ReaderView = [offset: number, type: string, targetUri: string, body: string];

test("clipcrawl's WAT reader sees exactly the records, offsets and bodies warcio sees, gzip-compressed or plain", async () => {
  const dir = await tempDir("vs-warcio");
  const path = join(dir, "sample.warc.wat.gz");
  await writeWatFile(path, { seed: 11, pages: 60 });
  const plain = join(dir, "sample.warc.wat");
  await writeFile(plain, gunzipSync(await readFile(path)));
  for (const file of [path, plain]) {
    const reference = await warcioRecords(file);
    const ours = await ourRecords(file);
    assert.ok(reference.length > 100);
    assert.equal(ours.length, reference.length);
    assert.deepEqual(ours, reference);
  }
});
