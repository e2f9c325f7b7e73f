/**
 * `clipcrawl serve --indices FILE`: several indices from one JSON file, as clip-back's
 * `indices_paths.json`: `{"name": "ROOT"}` or `{"name": {"root": "ROOT", "model": "DIR",
 * "multilingualModel": "DIR"}}` (clip-back's `indice_folder` is read as `root`). Relative paths
 * are relative to the file; `"model": null` serves an index without a model (embedding_input
 * queries only). Names appear in URLs, so they are kept to letters, digits, `.`, `_`
 * and `-`.
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../errors.js";
import type { IndexSource } from "./served-index.js";

const NAME = /^[\w.-]{1,64}$/;

/** Refuses a name that cannot appear in a URL path segment as it is. */
export function checkIndexName(name: string, source: string): void {
  if (!NAME.test(name)) {
    throw new ConfigError(
      `${source}: index name ${JSON.stringify(name)} must be 1–64 letters, digits, ".", "_" or "-"`,
    );
  }
}

export async function readIndicesFile(path: string): Promise<IndexSource[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, "utf8"));
  } catch (error) {
    throw new ConfigError(`${path}: cannot read the indices file: ${(error as Error).message}`);
  }
  return parseIndices(parsed, path, dirname(resolve(path)));
}

export function parseIndices(value: unknown, source: string, base: string): IndexSource[] {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(`${source}: expected an object {"name": "root folder" or {"root": …}}`);
  }
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) throw new ConfigError(`${source}: names no index`);
  return entries.map(([name, entry]) => {
    checkIndexName(name, source);
    if (typeof entry === "string") return { name, root: resolve(base, entry) };
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw new ConfigError(`${source}: index ${name} must be a root folder or {"root": …}`);
    }
    const fields = entry as Record<string, unknown>;
    const root = fields.root ?? fields.indice_folder;
    if (typeof root !== "string" || root === "") {
      throw new ConfigError(`${source}: index ${name} needs "root", the dataset root folder`);
    }
    const indexSource: IndexSource = { name, root: resolve(base, root) };
    for (const key of ["model", "multilingualModel"] as const) {
      const folder = fields[key];
      if (folder === undefined) continue;
      if (folder === null && key === "model") {
        indexSource.model = null;
        continue;
      }
      if (typeof folder !== "string") {
        throw new ConfigError(`${source}: index ${name}: "${key}" must be a folder path`);
      }
      indexSource[key] = resolve(base, folder);
    }
    return indexSource;
  });
}
