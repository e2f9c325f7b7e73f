import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { test } from "node:test";
import { gunzipSync } from "node:zlib";
import { ensureSampleWatFiles, SAMPLE_FILES } from "../src/demo/sample-wat.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { tempDir } from "./support/temp.js";

test("two demo roots get byte-identical sample WAT files, named in their warcinfo by their final name", async () => {
  const dir = await tempDir("sample-wat");
  const first = await ensureSampleWatFiles(new LocalStorage(join(dir, "one")));
  const second = await ensureSampleWatFiles(new LocalStorage(join(dir, "two")));
  assert.equal(first.length, SAMPLE_FILES);
  for (const [index, path] of first.entries()) {
    const bytes = await readFile(path);
    assert.ok(bytes.equals(await readFile(second[index] as string)), `${basename(path)} differs`);
    const warcinfo = gunzipSync(bytes).toString("utf8", 0, 2000);
    assert.match(
      warcinfo,
      new RegExp(`WARC-Filename: ${basename(path).replaceAll(".", "\\.")}\\r\\n`),
    );
  }
});
