import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { writeWatFile } from "../scripts/wat-generator.js";
import { extract } from "../src/stages/extract/extract.js";
import { tempDir } from "./support/temp.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

/** Starts `clipcrawl extract` and SIGKILLs it as soon as `killWhen` sees the root in a given state. */
function extractUntilKilled(
  inputs: string[],
  root: string,
  killWhen: () => boolean,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", MAIN, "extract", ...inputs, "--root", root, "--workers", "1"],
      {
        stdio: "ignore",
      },
    );
    const poll = setInterval(() => {
      if (killWhen()) {
        child.kill("SIGKILL");
        clearInterval(poll);
      }
    }, 5);
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve(signal ?? `exit ${code}`);
    });
  });
}

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
    const outcome = await extractUntilKilled(inputs, root, () => reached(root));
    assert.equal(outcome, "SIGKILL", `the run was killed ${name}`);
    const resumed = await extract({ root, inputs, config: { workers: 1 } });
    assert.equal(resumed.ok, true, name);
    const actual = await Promise.all(
      shards.map((shard) => readFile(join(root, `candidates/${shard}.parquet`))),
    );
    assert.deepEqual(actual, expected, `killed ${name} (${outcome}), then resumed`);
  }
});
