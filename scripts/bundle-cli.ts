/**
 * Bundles the compiled CLI (dist/src/cli/main.js, after tsc) into dist/cli/: the command's
 * modules in a few files, each command's in a chunk of its own that loads only when named, with
 * the small pure-JavaScript packages every start loads (zod, commander, entities, ipaddr.js)
 * inside. Node 20 resolves, reads and compiles each ES module apart, and for a small
 * `clipcrawl extract` that was a third of its time; one file costs a fraction of that.
 * bin/clipcrawl.js runs this bundle; the library (`import … from "clipcrawl"`) stays dist/src.
 *
 * Of zod only what clipcrawl uses is kept: its modules import it as a namespace
 * (`import * as z from "zod"`; biome.json holds them to it), whose unused members esbuild leaves
 * out, where the `z` object zod also exports brings all of zod (150 KB to load at every start,
 * against 300 KB without its other-language messages and 580 KB with them).
 *
 * Every other package stays external, loaded from node_modules as before (the native ones,
 * and those that read files beside their own modules). What locates files from its own module
 * still finds them from dist/cli/: worker entries are bundled as entries of their own, with
 * their names, beside the chunks that start them (`siblingModule`); the n-gram table is copied
 * there; web/dist and package.json are found by walking up to the package, as from dist/src.
 *
 *   npm run build:cli            (part of npm run build)
 */
import { copyFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const PACKAGE = fileURLToPath(new URL("..", import.meta.url));
const COMPILED = join(PACKAGE, "dist", "src");
const BUNDLE = join(PACKAGE, "dist", "cli");

/** Packages bundled in: pure JavaScript, loaded at every start or by extract's parser. */
const INLINED = new Set(["zod", "commander", "entities", "ipaddr.js"]);

/** Files found beside the module that reads them (`new URL(name, import.meta.url)`). */
const DATA_FILES = ["stages/extract/language-ngrams.bin"];

const externalPackages: Plugin = {
  name: "external-packages",
  setup(builder) {
    builder.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith("node:")) return { external: true };
      const parts = args.path.split("/");
      const name = args.path.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0];
      return INLINED.has(name as string) ? undefined : { external: true };
    });
  },
};

async function workerEntries(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { recursive: true, withFileTypes: true });
  return entries
    .filter((entry) => entry.isFile() && entry.name.endsWith("-worker.js"))
    .map((entry) => join(entry.parentPath, entry.name));
}

async function bundleCli(): Promise<void> {
  await rm(BUNDLE, { recursive: true, force: true });
  const workers = await workerEntries(COMPILED);
  const names = workers.map((path) => path.slice(path.lastIndexOf("/") + 1));
  if (new Set(names).size !== names.length) {
    throw new Error(`two worker entries share a name, and dist/cli/ is flat: ${names.join(", ")}`);
  }
  await build({
    entryPoints: [join(COMPILED, "cli", "main.js"), ...workers],
    outdir: BUNDLE,
    entryNames: "[name]",
    chunkNames: "chunk-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    minifyWhitespace: true,
    minifySyntax: true,
    logLevel: "warning",
    plugins: [externalPackages],
    // commander is CommonJS: its require() calls of Node's modules need a require in ESM.
    banner: {
      js: 'import { createRequire as __clipcrawlRequire } from "node:module"; const require = __clipcrawlRequire(import.meta.url);',
    },
  });
  for (const file of DATA_FILES) {
    await copyFile(join(COMPILED, file), join(BUNDLE, file.slice(file.lastIndexOf("/") + 1)));
  }
}

await bundleCli();
