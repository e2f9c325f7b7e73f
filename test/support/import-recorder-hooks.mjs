/** The module hooks of import-recorder.mjs (they run on Node's hooks thread). */
import { appendFileSync } from "node:fs";

let out;

export function initialize(data) {
  out = data.out;
}

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  // Synchronously, so that the lines of a program that exits at once are written too.
  appendFileSync(out, `${resolved.url}\n`);
  return resolved;
}
