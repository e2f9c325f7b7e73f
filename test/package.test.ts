/**
 * What a user gets from a clone and from the package. A clone-like copy of the working tree
 * installs with `npm ci` without a warning, and its `npx clipcrawl` runs before any build. What
 * `npm pack` ships works on its own: the tarball installs into an empty folder with a plain
 * `npm install` (npm's cache is warm after `npm ci`; the registry is reachable), asks for no Node
 * newer than package.json's `engines`, and its `clipcrawl` runs --help and the demo, which builds
 * every stage and serves the packaged web UI, loading for each command only the packages it uses.
 * Dev-only files stay out.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cp, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type CliResult, runProcess } from "./support/cli.js";
import { tempDir } from "./support/temp.js";
import { gzipEach, warcinfoRecord, watPageRecord } from "./support/warc-build.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
/**
 * The child commands must not see the npm settings of an `npm test` around this one (its
 * npm_config_* and npm_package_* variables name this repository), nor a setting of onnxruntime-node's
 * install script: the installs below must keep its CUDA download off by themselves.
 */
const ENV: NodeJS.ProcessEnv = {
  ...Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(npm_|onnxruntime_node_install)/i.test(key)),
  ),
  NO_COLOR: "1",
};

/** Build outputs, dependencies, data and scratch folders of the working tree. */
const NOT_COPIED = new Set([
  "node_modules",
  ".git",
  ".tmp",
  "dist",
  "web/dist",
  "demo-data",
  "bench/.data",
  "test-results",
]);

/** What an install prints when something is off: npm's warnings and engine complaints. */
const INSTALL_WARNING = /npm warn|npm WARN|EBADENGINE|deprecated/;

/** The CUDA library onnxruntime-node's install script would download from NuGet. */
const CUDA_PROVIDER = "onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so";

/** Packages whose loading costs a command's start-up dearly; each loads only where it is used. */
const HEAVY = ["@duckdb/node-api", "onnxruntime-node", "sharp", "usearch", "fastify", "bullmq"];

const semver = createRequire(import.meta.url)("semver") as {
  satisfies(version: string, range: string): boolean;
  minVersion(range: string): { version: string } | null;
};

function run(command: string, args: string[], cwd: string): Promise<CliResult> {
  return runProcess(command, args, { cwd, env: ENV });
}

let work: string;
let clone: string;
let cloneInstall: CliResult;
let cloneHelp: CliResult;
let distBeforeBuild: boolean;
let files: string[];
let installed: string;
let install: CliResult;

before(async () => {
  work = await tempDir("package");
  // A clone, as far as files go: the working tree without what git ignores.
  clone = join(work, "clone");
  await cp(REPO, clone, {
    recursive: true,
    filter: (from) => !NOT_COPIED.has(relative(REPO, from)),
  });
  cloneInstall = await run("npm", ["ci", "--prefer-offline"], clone);
  assert.equal(cloneInstall.code, 0, cloneInstall.stderr);
  distBeforeBuild = existsSync(join(clone, "dist"));
  cloneHelp = await run("npx", ["clipcrawl", "--help"], clone);
  // `npm pack` runs prepack (the build: tsc and the web bundle), whose output comes first on
  // stdout, then lists what it packed as JSON.
  const packed = await run("npm", ["pack", "--json", "--pack-destination", work], clone);
  assert.equal(packed.code, 0, packed.stderr);
  const [tarball] = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[$/m))) as {
    filename: string;
    files: { path: string }[];
  }[];
  assert.ok(tarball !== undefined);
  files = tarball.files.map((file) => file.path);
  // An empty project whose package.json turns onnxruntime-node's install script off, as
  // docs/install.md tells users (npm reads that policy only from the project installing).
  installed = join(work, "app");
  await mkdir(installed);
  await writeFile(
    join(installed, "package.json"),
    `${JSON.stringify({ name: "app", private: true, allowScripts: { "onnxruntime-node": false } })}\n`,
  );
  install = await run(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", join(work, tarball.filename)],
    installed,
  );
  assert.equal(install.code, 0, install.stderr);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
  await forgetNpxLink(clone);
});

test("npm ci in a fresh clone prints no warning and downloads no CUDA library", () => {
  assert.doesNotMatch(cloneInstall.stdout + cloneInstall.stderr, INSTALL_WARNING);
  assert.match(cloneInstall.stdout, /added \d+ packages/);
  assert.equal(existsSync(join(clone, "node_modules", CUDA_PROVIDER)), false);
});

test("npx clipcrawl works in a clone right after npm ci, with no build", () => {
  assert.equal(distBeforeBuild, false);
  assert.equal(cloneHelp.code, 0, cloneHelp.stderr);
  assert.match(cloneHelp.stdout, /^Usage: clipcrawl /);
});

test("the package holds the built code, the web bundle and the demo's generators, no dev-only file", () => {
  for (const path of [
    "bin/clipcrawl.js",
    "dist/cli/main.js",
    "dist/cli/extract-worker.js",
    "dist/cli/language-ngrams.bin",
    "dist/src/cli/main.js",
    "dist/src/index.js",
    "dist/src/stages/extract/extract-worker.js",
    "dist/src/stages/extract/language-ngrams.bin",
    "dist/src/demo/sample/wat-generator.js",
    "dist/src/demo/tiny-clip/generate.js",
    "dist/src/demo/tiny-clip/generate-multilingual.js",
    "web/dist/index.html",
    "README.md",
  ]) {
    assert.ok(files.includes(path), `${path} is not in the package`);
  }
  const devOnly = files.filter(
    (path) =>
      /^(test|bench|src|scripts|web\/src|\.ci|node_modules)\//.test(path) ||
      (path.endsWith(".ts") && !path.endsWith(".d.ts")),
  );
  assert.deepEqual(devOnly, []);
});

test("the tarball installs with a plain npm install: no engine warning, no CUDA download", () => {
  const output = install.stdout + install.stderr;
  assert.doesNotMatch(output, /EBADENGINE/);
  assert.doesNotMatch(output, /nuget|Downloading/i);
  assert.equal(existsSync(join(installed, "node_modules", CUDA_PROVIDER)), false);
});

test("every installed dependency runs on the oldest Node that package.json's engines admits", () => {
  const engines = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")).engines.node;
  const oldest = semver.minVersion(engines)?.version;
  assert.ok(oldest !== undefined, engines);
  const tooNew: string[] = [];
  let checked = 0;
  for (const path of packageJsonsUnder(join(installed, "node_modules"))) {
    const pkg = JSON.parse(readFileSync(path, "utf8"));
    checked++;
    const wanted = pkg.engines?.node;
    if (typeof wanted === "string" && !semver.satisfies(oldest, wanted)) {
      tooNew.push(`${pkg.name}@${pkg.version} wants node ${wanted}`);
    }
  }
  assert.ok(checked > 100, `only ${checked} packages found`);
  assert.deepEqual(tooNew, []);
});

test("npx clipcrawl --help from the installed package", async () => {
  const help = await run("npx", ["--no-install", "clipcrawl", "--help"], installed);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: clipcrawl /);
  for (const command of ["extract", "download", "embed", "filter", "index", "serve", "demo"]) {
    assert.match(help.stdout, new RegExp(`\\n  ${command} `), command);
  }
});

test("--help and extract of the installed package load only the packages they use", async () => {
  const help = await packagesLoaded(["--help"]);
  // The bin runs the CLI's bundle (scripts/bundle-cli.ts), which holds commander and zod.
  assert.ok(help.has("clipcrawl/dist/cli"), [...help].join(", "));
  assert.deepEqual(
    HEAVY.filter((name) => help.has(name)),
    [],
  );

  const dir = join(work, "startup");
  await mkdir(dir);
  const wat = join(dir, "a.warc.wat.gz");
  const page = watPageRecord("https://a.example/p.html", [{ url: "x.jpg", alt: "A red boat" }]);
  await writeFile(wat, gzipEach([warcinfoRecord(), page]));
  const extract = await packagesLoaded(["extract", wat, "--root", join(dir, "root")]);
  // The Parquet writer is what extract needs (DuckDB's native binding); language detection reads
  // its n-gram table from the package's own files (eld is a devDependency that writes the table).
  // A local file needs no HTTP client (undici) and a plain path no glob matcher (tinyglobby).
  assert.ok(extract.has("@duckdb/node-bindings"), [...extract].join(", "));
  assert.deepEqual(
    ["onnxruntime-node", "sharp", "usearch", "fastify", "bullmq", "undici", "tinyglobby"].filter(
      (name) => extract.has(name),
    ),
    [],
  );
});

test("the installed demo builds every stage, then a second run serves the web UI", async () => {
  const root = join(work, "demo-root");
  const built = await run(
    "npx",
    ["--no-install", "clipcrawl", "demo", "--no-serve", "--root", root],
    installed,
  );
  assert.equal(built.code, 0, built.stderr);
  for (const stage of ["extract", "download", "embed", "filter", "index"]) {
    assert.match(built.stdout, new RegExp(`\\] ${stage}…\\n${stage}\\b`), stage);
  }
  assert.match(built.stdout, /index \(dataset\): (\d+) shards \(\1 added/);
  assert.doesNotMatch(built.stdout, /search UI/);

  const bin = join(installed, "node_modules", ".bin", "clipcrawl");
  const serving = spawn(bin, ["demo", "--root", root, "--port", "0"], {
    cwd: installed,
    env: ENV,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => serving.once("close", resolve));
  try {
    const url = await servedUrl(serving);
    const page = await fetch(url);
    assert.equal(page.status, 200);
    const html = await page.text();
    assert.match(html, /<!doctype html>/i);
    const script = html.match(/src="(?:\.?\/)?(assets\/[^"]+\.js)"/)?.[1];
    assert.ok(script !== undefined, html);
    const bundle = await fetch(`${url}${script}`);
    assert.equal(bundle.status, 200);
    assert.ok((await bundle.arrayBuffer()).byteLength > 1000);
  } finally {
    serving.kill("SIGINT");
  }
  assert.equal(await exited, 0);
});

/** The URL the demo prints once it serves; its earlier lines say every stage was done already. */
function servedUrl(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let stdout = "";
    child.stdout?.on("data", (chunk) => {
      stdout += chunk;
      const url = stdout.match(/search UI and API at (http:\/\/127\.0\.0\.1:\d+\/)/)?.[1];
      if (url === undefined) return;
      if (!/0 written, 5 already done/.test(stdout)) reject(new Error(`rebuilt:\n${stdout}`));
      resolve(url);
    });
    child.once("close", (code) =>
      reject(new Error(`demo exited (${code}) before serving:\n${stdout}`)),
    );
  });
}

/** The packages a run of the installed `clipcrawl` loaded, in any of its threads. */
async function packagesLoaded(args: string[]): Promise<Set<string>> {
  const record = join(work, `imports-${args[0]}.txt`);
  const recorder = join(REPO, "test", "support", "import-recorder.mjs");
  const bin = join(installed, "node_modules", ".bin", "clipcrawl");
  const result = await runProcess(process.execPath, ["--import", recorder, bin, ...args], {
    cwd: installed,
    env: { ...ENV, CLIPCRAWL_IMPORT_RECORD: record },
  });
  assert.equal(result.code, 0, result.stderr);
  const names = new Set<string>();
  for (const url of (await readFile(record, "utf8")).split("\n")) {
    const name = url.match(/.*\/node_modules\/((?:@[^/]+\/)?[^/]+)\//)?.[1];
    if (name !== undefined && name !== "clipcrawl") names.add(name);
    if (url.includes("/node_modules/clipcrawl/dist/cli/")) names.add("clipcrawl/dist/cli");
  }
  return names;
}

/** The package.json of every package installed under a node_modules folder, nested ones too. */
function* packageJsonsUnder(nodeModules: string): Generator<string> {
  if (!existsSync(nodeModules)) return;
  for (const entry of readdirSync(nodeModules)) {
    if (entry.startsWith(".")) continue;
    if (entry.startsWith("@")) {
      for (const scoped of readdirSync(join(nodeModules, entry))) {
        yield* packageAt(join(nodeModules, entry, scoped));
      }
    } else {
      yield* packageAt(join(nodeModules, entry));
    }
  }
}

function* packageAt(folder: string): Generator<string> {
  const manifest = join(folder, "package.json");
  if (!existsSync(manifest)) return;
  yield manifest;
  yield* packageJsonsUnder(join(folder, "node_modules"));
}

/** `npx clipcrawl` in the clone linked it into npm's npx cache: take that link out again. */
async function forgetNpxLink(folder: string): Promise<void> {
  const npxCache = join(process.env.npm_config_cache ?? join(homedir(), ".npm"), "_npx");
  for (const entry of await readdir(npxCache).catch(() => [])) {
    const manifest = await readFile(join(npxCache, entry, "package.json"), "utf8").catch(() => "");
    if (manifest.includes(JSON.stringify(folder))) {
      await rm(join(npxCache, entry), { recursive: true, force: true });
    }
  }
}
