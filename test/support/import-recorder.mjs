/**
 * `node --import ./import-recorder.mjs …` appends every module URL the program (and each of its
 * worker threads, which inherit the flag) resolves to the file named by CLIPCRAWL_IMPORT_RECORD,
 * one a line: what a start-up test reads to see which packages a command loaded.
 */
import { register } from "node:module";

const out = process.env.CLIPCRAWL_IMPORT_RECORD;
if (out !== undefined) {
  register(new URL("./import-recorder-hooks.mjs", import.meta.url), { data: { out } });
}
