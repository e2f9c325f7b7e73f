/**
 * `node --import ./import-recorder.mjs …` appends every module URL the program (and each of its
 * worker threads, which inherit the flag) resolves to the file named by CLIPCRAWL_IMPORT_RECORD,
 * one a line: what a start-up test reads to see which packages a command loaded. Imports are seen
 * by the module hooks; require() calls (a CommonJS package loaded through createRequire) by a
 * wrapper of CommonJS resolution.
 */
import { appendFileSync } from "node:fs";
import Module, { register } from "node:module";
import { pathToFileURL } from "node:url";

const out = process.env.CLIPCRAWL_IMPORT_RECORD;
if (out !== undefined) {
  register(new URL("./import-recorder-hooks.mjs", import.meta.url), { data: { out } });
  const resolveFilename = Module._resolveFilename;
  Module._resolveFilename = function (...args) {
    const resolved = resolveFilename.apply(this, args);
    if (resolved.startsWith("/")) appendFileSync(out, `${pathToFileURL(resolved).href}\n`);
    return resolved;
  };
}
