import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { initRoot } from "../src/config/init-root.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { type CliResult, runCli } from "./support/cli.js";
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

/** The help of every command `clipcrawl --help` lists, and of `model`'s subcommands. */
const HELPS_AT_ONCE = 3;

async function commandHelps(help: string, prefix: string[] = []): Promise<Map<string, string>> {
  const section = help.split("\nCommands:\n")[1]?.split("\n\n")[0] ?? "";
  const names = [...section.matchAll(/^ {2}([a-z][\w-]*)/gm)]
    .map((match) => match[1] as string)
    .filter((name) => name !== "help");
  const helps = new Map<string, string>();
  // A few at a time: twenty CLIs starting at once on two cores would each wait out the others.
  const outputs: CliResult[] = [];
  for (let at = 0; at < names.length; at += HELPS_AT_ONCE) {
    const batch = names.slice(at, at + HELPS_AT_ONCE);
    outputs.push(...(await Promise.all(batch.map((name) => runCli([...prefix, name, "--help"])))));
  }
  for (const [index, name] of names.entries()) {
    const { stdout } = outputs[index] as CliResult;
    if (prefix.length === 0 && stdout.includes("\nCommands:\n")) {
      for (const [sub, text] of await commandHelps(stdout, [name])) helps.set(sub, text);
    } else helps.set([...prefix, name].join(" "), stdout);
  }
  return helps;
}

test("every command's --help shows its options with defaults and at least one example", async () => {
  const top = await runCli(["--help"]);
  assert.match(top.stdout, /\nExamples:\n {2}clipcrawl demo /);
  const helps = await commandHelps(top.stdout);
  for (const expected of ["extract", "serve", "demo", "model fetch", "model quantize"]) {
    assert.ok(helps.has(expected), `${expected} is not listed`);
  }
  for (const [name, help] of helps) {
    assert.match(help, new RegExp(`\\nExamples?:\\n {2}clipcrawl ${name}\\b`), name);
    const root = help.replace(/\s+/g, " ").match(/--root <dir> .*?(?= --\w| -h, )/)?.[0];
    if (root !== undefined) assert.match(root, /\(default: "[^"]+"\)/, `${name}: ${root}`);
  }
  const demo = (helps.get("demo") ?? "").replace(/\s+/g, " ");
  assert.match(demo, /--port <n> .*\(default: "1234"\)/);
  assert.match(demo, /--no-serve build the dataset and its index, then exit/);
});

test("an unknown option suggests the closest one", async () => {
  const extract = await runCli(["extract", "--rot", "data"]);
  assert.equal(extract.code, 1);
  assert.match(extract.stderr, /unknown option '--rot'\n\(Did you mean --root\?\)/);
  const demo = await runCli(["demo", "--prot", "8080"]);
  assert.match(demo.stderr, /\(Did you mean --port\?\)/);
});

test("the errors a user causes name the fix", async () => {
  const dir = await tempDir("cli-errors");
  await initRoot(new LocalStorage(dir));
  const noCandidates = await runCli(["download", "--root", dir]);
  assert.equal(noCandidates.code, 1);
  assert.match(noCandidates.stderr, /no candidate shards: run clipcrawl extract first/);
  const noModel = await runCli(["embed", "--root", dir, "--model", join(dir, "no-model")]);
  assert.equal(noModel.code, 1);
  assert.match(
    noModel.stderr,
    /model folder .*no-model does not exist: fetch one with clipcrawl model fetch/,
  );
  const noIndex = await runCli(["serve", "--root", dir, "--port", "0"]);
  assert.equal(noIndex.code, 1);
  assert.match(noIndex.stderr, /run clipcrawl index first/);
  const noRoot = await runCli(["status", join(dir, "typo")]);
  assert.equal(noRoot.code, 1);
  assert.match(noRoot.stderr, /typo: not a clipcrawl dataset root .*clipcrawl init/);
  const busy = createServer();
  await new Promise<void>((resolve) => busy.listen(0, "127.0.0.1", resolve));
  const port = (busy.address() as AddressInfo).port;
  const portInUse = await runCli(["demo", "--root", join(dir, "demo"), "--port", String(port)]);
  busy.close();
  assert.equal(portInUse.code, 1);
  assert.match(
    portInUse.stderr,
    new RegExp(`port ${port} on 127.0.0.1 is in use: pick another with --port`),
  );
  assert.equal(
    existsSync(join(dir, "demo")),
    false,
    "the demo was built before the port was checked",
  );
  const badPort = await runCli(["demo", "--root", dir, "--port", "http"]);
  assert.equal(badPort.code, 2);
  assert.equal(
    badPort.stderr.trim(),
    'clipcrawl: --port: expected a port number from 0 to 65535, got "http"',
  );
});
