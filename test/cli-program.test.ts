import assert from "node:assert/strict";
import { test } from "node:test";
import { buildProgram } from "../src/cli/main.js";

const names = async (args: string[]) =>
  (await buildProgram(["node", "clipcrawl", ...args])).commands.map((command) => command.name());

test("a command line that names a command builds the program with that command alone", async () => {
  const all = (await buildProgram()).commands.map((command) => command.name());
  assert.equal(all.length, 21);
  assert.deepEqual(await names(["extract", "a.wat.gz", "--root", "r"]), ["extract"]);
  assert.deepEqual(await names(["model", "fetch", "x/y"]), ["model"]);
  assert.deepEqual(await names(["diff", "v1", "v2"]), ["versions", "diff"]);
  // The values of the program's own options are not command names.
  assert.deepEqual(await names(["--cache-dir", "extract", "subset", "--where", "x"]), ["subset"]);
  assert.deepEqual(await names(["--s3-endpoint=http://s", "stats"]), ["stats"]);
  // Help, a mistyped name (suggestions), `help NAME`, `--` and nothing at all list every command.
  for (const args of [[], ["--help"], ["-V"], ["extrct"], ["help", "extract"], ["--", "extract"]]) {
    assert.deepEqual(await names(args), all, args.join(" "));
  }
  // Every command is found by its name.
  for (const name of all) assert.ok((await names([name])).includes(name), name);
});

test("the one command parses its line as the whole program does", async () => {
  const line = ["--cache-dir", "/c", "subset", "--root", "r", "--where", "TRUE", "-o", "o.csv"];
  const parsed = async (program: Awaited<ReturnType<typeof buildProgram>>) => {
    const subset = program.commands.find((command) => command.name() === "subset");
    assert.ok(subset !== undefined);
    program.exitOverride();
    subset.exitOverride().action(() => {});
    await program.parseAsync(line, { from: "user" });
    return { program: program.opts(), subset: subset.opts(), args: subset.args };
  };
  // --cache-dir sets the environment the command's threads read: put it back afterwards.
  const cacheDir = process.env.CLIPCRAWL_CACHE_DIR;
  try {
    assert.deepEqual(
      await parsed(await buildProgram(["node", "clipcrawl", ...line])),
      await parsed(await buildProgram()),
    );
  } finally {
    if (cacheDir === undefined) delete process.env.CLIPCRAWL_CACHE_DIR;
    else process.env.CLIPCRAWL_CACHE_DIR = cacheDir;
  }
});
