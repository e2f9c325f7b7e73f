/**
 * What `npm pack` ships works on its own: the tarball installs into an empty folder (npm's cache
 * is warm after `npm ci`; the registry is reachable) and its `clipcrawl` runs --help and the
 * demo, which builds every stage and serves the packaged web UI. Dev-only files stay out.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cp, mkdir, rm, symlink, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type CliResult, runProcess } from "./support/cli.js";
import { tempDir } from "./support/temp.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
/**
 * The child commands must not see the npm settings of an `npm test` around this one (its
 * npm_config_* and npm_package_* variables name this repository). onnxruntime-node's postinstall
 * would fetch CUDA libraries from NuGet; the repository's .npmrc skips that, and so does this.
 */
const ENV: NodeJS.ProcessEnv = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key))),
  ONNXRUNTIME_NODE_INSTALL: "skip",
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

function run(command: string, args: string[], cwd: string): Promise<CliResult> {
  return runProcess(command, args, { cwd, env: ENV });
}

let work: string;
let files: string[];
let installed: string;

before(async () => {
  work = await tempDir("package");
  // `npm pack` runs prepack (the build: tsc and the web bundle), whose output comes first on
  // stdout, then lists what it packed as JSON. It runs in a copy of the working tree, so that
  // rebuilding dist/ and web/dist/ does not pull them away from tests running beside this one.
  const source = join(work, "source");
  await cp(REPO, source, {
    recursive: true,
    filter: (from) => !NOT_COPIED.has(relative(REPO, from)),
  });
  await symlink(join(REPO, "node_modules"), join(source, "node_modules"), "dir");
  const packed = await run("npm", ["pack", "--json", "--pack-destination", work], source);
  assert.equal(packed.code, 0, packed.stderr);
  const [tarball] = JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[$/m))) as {
    filename: string;
    files: { path: string }[];
  }[];
  assert.ok(tarball !== undefined);
  files = tarball.files.map((file) => file.path);
  installed = join(work, "app");
  await mkdir(installed);
  await writeFile(join(installed, "package.json"), '{"name": "app", "private": true}\n');
  const install = await run(
    "npm",
    ["install", "--prefer-offline", "--no-audit", "--no-fund", join(work, tarball.filename)],
    installed,
  );
  assert.equal(install.code, 0, install.stderr);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

test("the package holds the built code, the web bundle and the demo's generators, no dev-only file", () => {
  for (const path of [
    "dist/src/cli/main.js",
    "dist/src/index.js",
    "dist/src/stages/extract/extract-worker.js",
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

test("npx clipcrawl --help from the installed package", async () => {
  const help = await run("npx", ["--no-install", "clipcrawl", "--help"], installed);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: clipcrawl /);
  for (const command of ["extract", "download", "embed", "filter", "index", "serve", "demo"]) {
    assert.match(help.stdout, new RegExp(`\\n  ${command} `), command);
  }
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
