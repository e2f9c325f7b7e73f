import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { extract } from "../src/stages/extract/extract.js";
import { runCliUntilKilled } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

test("kill -9 at several points, then a re-run: the shards are identical to an uninterrupted run", async () => {
  const dir = await tempDir("extract-kill");
  const inputs: string[] = [];
  for (let index = 0; index < 3; index++) {
    const path = join(dir, `in-${index}.warc.wat.gz`);
    await writeWatFile(path, { seed: 5, fileIndex: index, pages: 80 });
    inputs.push(path);
  }
  const reference = join(dir, "reference");
  assert.equal((await extract({ root: reference, inputs, config: { workers: 1 } })).ok, true);
  const shards = ["00000", "00001", "00002"];
  const expected = await Promise.all(
    shards.map((shard) => readFile(join(reference, `candidates/${shard}.parquet`))),
  );

  const killPoints: [string, (root: string) => boolean][] = [
    ["while the config is written", (root) => existsSync(join(root, "clipcrawl.json"))],
    [
      "after the first shard's Parquet file",
      (root) => existsSync(join(root, "candidates/00000.parquet")),
    ],
    [
      "after the second shard's done marker",
      (root) => existsSync(join(root, "_state/extract/00001.json")),
    ],
  ];
  for (const [name, reached] of killPoints) {
    const root = join(dir, name.replaceAll(" ", "-"));
    const outcome = await runCliUntilKilled(
      ["extract", ...inputs, "--root", root, "--workers", "1"],
      () => reached(root),
      5,
    );
    assert.equal(outcome, "SIGKILL", `the run was killed ${name}`);
    const resumed = await extract({ root, inputs, config: { workers: 1 } });
    assert.equal(resumed.ok, true, name);
    const actual = await Promise.all(
      shards.map((shard) => readFile(join(root, `candidates/${shard}.parquet`))),
    );
    assert.deepEqual(actual, expected, `killed ${name} (${outcome}), then resumed`);
  }
});
