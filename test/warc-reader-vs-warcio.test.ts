import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { WARCParser } from "warcio";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { gzipMembers } from "../src/stages/extract/gzip-members.js";
import { parseWarcRecords } from "../src/stages/extract/warc-records.js";
import { tempDir } from "./support/temp.js";

test("clipcrawl's WAT reader sees exactly the records, offsets and bodies warcio sees", async () => {
  const path = join(await tempDir("vs-warcio"), "sample.warc.wat.gz");
  await writeWatFile(path, { seed: 11, pages: 60 });

  const reference: [number, string, string, string][] = [];
  const parser = new WARCParser(createReadStream(path));
  for await (const record of parser) {
    const body = Buffer.from(await record.readFully(false));
    reference.push([
      parser.offset,
      record.warcType ?? "",
      record.warcTargetURI ?? "",
      body.toString("utf8"),
    ]);
  }

  const ours: [number, string, string, string][] = [];
  async function* chunks() {
    yield await readFile(path);
  }
  for await (const event of gzipMembers(chunks())) {
    assert.ok("member" in event);
    for (const record of parseWarcRecords(event.member.data, event.member.offset)) {
      ours.push([record.offset, record.type, record.targetUri, record.body.toString("utf8")]);
    }
  }
  assert.equal(ours.length, reference.length);
  assert.deepEqual(ours, reference);
});
