import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { defaultConfig, loadConfig } from "../src/config/config-file.js";
import { initRoot } from "../src/config/init-root.js";
import { ConfigError } from "../src/errors.js";
import { LocalStorage } from "../src/io/local-storage.js";

async function rootWithConfig(text: string): Promise<LocalStorage> {
  const root = await mkdtemp(join(tmpdir(), "clipcrawl-config-"));
  await writeFile(join(root, "clipcrawl.json"), text);
  return new LocalStorage(root);
}

test("defaults follow LAION: alt text of 5 characters, IMG@/src links", () => {
  const config = defaultConfig();
  assert.equal(config.extract.minTextLength, 5);
  assert.deepEqual(config.extract.linkPaths, ["IMG@/src"]);
});

test("init writes clipcrawl.json with defaults and provenance, and leaves an existing one alone", async () => {
  const storage = new LocalStorage(await mkdtemp(join(tmpdir(), "clipcrawl-init-")));
  const first = await initRoot(storage);
  assert.equal(first.created, true);
  assert.match(first.config.provenance?.createdWith ?? "", /^clipcrawl \d+\.\d+\.\d+/);
  const second = await initRoot(storage);
  assert.equal(second.created, false);
  assert.deepEqual(second.config, first.config);
});

test("a bad value names the file, the key, the rule and the value given", async () => {
  const storage = await rootWithConfig(
    JSON.stringify({ extract: { minTextLength: "five", bloomFalsePositiveRate: 2 } }),
  );
  await assert.rejects(loadConfig(storage), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    const lines = error.message.split("\n");
    assert.equal(lines.length, 2);
    assert.match(
      lines[0] ?? "",
      /clipcrawl\.json: extract\.minTextLength: expected number, received string, got "five"/,
    );
    assert.match(lines[1] ?? "", /clipcrawl\.json: extract\.bloomFalsePositiveRate: .*0\.5.*got 2/);
    return true;
  });
});

test("an unknown key lists the known ones, so a typo is easy to fix", async () => {
  const storage = await rootWithConfig(JSON.stringify({ extract: { minTextLenght: 3 } }));
  await assert.rejects(
    loadConfig(storage),
    /extract: unknown key "minTextLenght" \(known keys: minTextLength, linkPaths,/,
  );
});

test("invalid JSON in clipcrawl.json is reported with its line and column", async () => {
  const storage = await rootWithConfig('{\n  "extract": {\n    "minTextLength": 5,\n  }\n}');
  await assert.rejects(loadConfig(storage), /clipcrawl\.json: invalid JSON at line 4 column 3/);
});

test("command-line overrides win over the file and are validated the same way", async () => {
  const storage = await rootWithConfig(JSON.stringify({ extract: { minTextLength: 8 } }));
  assert.equal((await loadConfig(storage)).extract.minTextLength, 8);
  assert.equal(
    (await loadConfig(storage, { extract: { minTextLength: 3 } })).extract.minTextLength,
    3,
  );
  await assert.rejects(
    loadConfig(storage, { extract: { minTextLength: 0 } }),
    /command-line options: extract\.minTextLength: .*>=1/,
  );
});
