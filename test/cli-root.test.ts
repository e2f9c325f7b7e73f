/**
 * A mistyped `--root`: every command that reads a dataset root refuses a path that is none with
 * one line naming the path and the fix, and creates nothing there.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

let work: string;

before(async () => {
  work = await tempDir("cli-root");
  await writeFile(join(work, "empty.txt"), "");
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Each command as a user would type it, given the root. */
function commands(root: string): string[][] {
  return [
    ["download", "--root", root],
    ["embed", "--root", root, "--model", join(work, "no-such-model")],
    ["filter", "--root", root],
    ["index", "--root", root],
    ["run", "--root", root],
    ["subset", "--root", root, "-o", join(work, "subset.parquet")],
    ["stats", "--root", root],
    ["status", root],
    ["remove", "--root", root, "--urls", join(work, "empty.txt")],
    ["show", "000000000", "--root", root],
    ["serve", "--root", root, "--port", "0"],
  ];
}

/** Runs the commands (three at a time) and lists what each did wrong; `stderr` by command. */
async function refusals(
  root: string,
  only?: readonly string[],
): Promise<{ problems: string[]; stderr: Map<string, string> }> {
  const problems: string[] = [];
  const stderr = new Map<string, string>();
  const pending = commands(root).filter((command) => only?.includes(command[0] as string) ?? true);
  const runOne = async (command: string[]) => {
    const name = command[0] as string;
    const result = await runCli(command, { timeoutMs: 180_000 });
    stderr.set(name, result.stderr);
    const lines = result.stderr.trim().split("\n");
    if (result.code === 0) problems.push(`${name}: exit code 0`);
    if (lines.length !== 1 || !lines[0]?.includes(root)) {
      problems.push(`${name}: not one line naming the path: ${result.stderr}`);
    }
    if (result.stdout.trim() !== "") problems.push(`${name}: printed ${result.stdout}`);
  };
  const lanes = Array.from({ length: 3 }, async () => {
    for (let command = pending.shift(); command !== undefined; command = pending.shift()) {
      await runOne(command);
    }
  });
  await Promise.all(lanes);
  return { problems, stderr };
}

test("a command given a root that does not exist refuses in one line and creates nothing", async () => {
  const root = join(work, "typo", "deeper", "root");
  const { problems, stderr } = await refusals(root);
  assert.deepEqual(problems, []);
  assert.equal(existsSync(join(work, "typo")), false, "the mistyped folder was created");
  assert.equal(
    stderr.get("filter"),
    `clipcrawl: ${root}: not a clipcrawl dataset root (no clipcrawl.json): check the path, or start one with clipcrawl init ${root}\n`,
  );
  assert.match(stderr.get("download") ?? "", /, or give URL lists to download into a new root\n$/);
  assert.match(stderr.get("run") ?? "", /, or give WAT files to run on a new root\n$/);
});

test("an existing folder that is no dataset root is refused too, and left empty", async () => {
  const root = join(work, "existing");
  await mkdir(root);
  const { problems } = await refusals(root, ["download", "embed", "filter", "index", "run"]);
  assert.deepEqual(problems, []);
  assert.deepEqual(await readdir(root), []);
});
