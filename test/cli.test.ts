import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "./support/cli.js";
import { tempDir } from "./support/temp.js";
import { gzipEach, warcinfoRecord, watPageRecord } from "./support/warc-build.js";

const page = watPageRecord("https://a.example/p.html", [
  { url: "x.jpg", alt: "A small blue boat on a calm lake" },
]);

test("--help lists the commands; a typo suggests the closest one", async () => {
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /extract/);
  assert.match(help.stdout, /init/);
  const typo = await runCli(["extrat"]);
  assert.notEqual(typo.code, 0);
  assert.match(typo.stderr, /Did you mean extract\?/);
});

test("extract --help shows config flags with their defaults and an example", async () => {
  const help = (await runCli(["extract", "--help"])).stdout.replace(/\s+/g, " ");
  assert.match(
    help,
    /--min-text-length <n> drop alt texts [^(]*\(default: 5; config extract\.minTextLength\)/,
  );
  assert.match(help, /--bloom-false-positive-rate <n> .*\(default: 0\.001;/);
  assert.match(help, /Examples: clipcrawl extract/);
});

test("init then extract --json: a summary on stdout, exit code 0", async () => {
  const dir = await tempDir("cli");
  const root = join(dir, "root");
  const init = await runCli(["init", root]);
  assert.equal(init.code, 0);
  assert.match(init.stdout, /created .*clipcrawl\.json/);
  await writeFile(join(dir, "a.warc.wat.gz"), gzipEach([warcinfoRecord(), page]));
  const result = await runCli(["extract", join(dir, "a.warc.wat.gz"), "--root", root, "--json"]);
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(result.stdout);
  assert.equal(summary.ok, true);
  assert.equal(summary.totals.kept, 1);
});

test("exit code 1 when an input failed, with one line naming it; the other input is still extracted", async () => {
  const dir = await tempDir("cli-fail");
  await writeFile(join(dir, "a.warc.wat.gz"), gzipEach([warcinfoRecord(), page]));
  const result = await runCli([
    "extract",
    join(dir, "nope.warc.wat.gz"),
    join(dir, "a.warc.wat.gz"),
    "--root",
    join(dir, "root"),
  ]);
  assert.equal(result.code, 1);
  assert.equal(result.stderr.trim(), `${join(dir, "nope.warc.wat.gz")}: no such file`);
  assert.match(result.stdout, /2 shards \(1 written, 0 already done\), 1 inputs failed/);
  assert.match(result.stdout, /1 candidate pairs/);
});

test("a bad config value on the command line or in clipcrawl.json: one line, exit code 2", async () => {
  const dir = await tempDir("cli-config");
  const flag = await runCli(["extract", "x.wat.gz", "--root", dir, "--min-text-length", "abc"]);
  assert.equal(flag.code, 2);
  assert.equal(
    flag.stderr.trim(),
    'clipcrawl: command-line options: extract.minTextLength: expected number, received string, got "abc"',
  );
  await writeFile(join(dir, "clipcrawl.json"), '{"extract": {"workers": -1}}');
  const file = await runCli(["extract", "x.wat.gz", "--root", dir]);
  assert.equal(file.code, 2);
  assert.match(
    file.stderr.trim(),
    /^clipcrawl: .*clipcrawl\.json: extract\.workers: .*>=0.*got -1$/,
  );
});
