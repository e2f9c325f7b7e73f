#!/usr/bin/env node
/**
 * The `clipcrawl` command. The installed package runs its compiled JavaScript: the CLI's bundle
 * (dist/cli/, scripts/bundle-cli.ts), or the compiled modules (dist/src/) of a build made before
 * there was one. A clone runs its TypeScript sources through tsx (a devDependency), so that
 * `npx clipcrawl` works right after `npm ci`, with no build step, and never runs a dist/ left
 * stale by an earlier build.
 */
import { existsSync } from "node:fs";
import module from "node:module";

// Node 22.1 and later keep the compiled code of the modules between runs, so a second start
// compiles nothing; Node 20 has no such cache (nor this function).
module.enableCompileCache?.();

const sources = new URL("../src/cli/main.ts", import.meta.url);
const bundled = new URL("../dist/cli/main.js", import.meta.url);
const compiled = new URL("../dist/src/cli/main.js", import.meta.url);

async function fromSources() {
  let tsx;
  try {
    tsx = await import("tsx/esm/api");
  } catch (error) {
    // A clone installed without its devDependencies: run a build if there is one.
    if (error?.code === "ERR_MODULE_NOT_FOUND") return undefined;
    throw error;
  }
  tsx.register();
  return import(sources.href);
}

const cli =
  (existsSync(sources) ? await fromSources() : undefined) ??
  (existsSync(bundled) ? await import(bundled.href) : undefined) ??
  (existsSync(compiled) ? await import(compiled.href) : undefined);
if (cli === undefined) {
  process.stderr.write(
    "clipcrawl: neither tsx (npm ci installs it) nor a build (npm run build) to run the CLI from\n",
  );
  process.exitCode = 1;
} else {
  await cli.main();
}
