/**
 * A run's WAT inputs, expanded once (globs, listings, `--crawl`) into the files and URLs that
 * become extract shards 00000, 00001, … in order. The list is kept in the run state file, so a
 * re-run without arguments reads the same inputs, and a distributed extract job finds its own.
 */

import type { DatasetStorage } from "../io/storage.js";
import type { ExtractConfig } from "../stages/extract/config.js";
import { resolveWatInputs } from "../stages/extract/wat-inputs.js";
import { readRunState } from "./run-state.js";

export interface InputSpecs {
  inputs?: readonly string[] | undefined;
  crawl?: string | undefined;
  limit?: number | undefined;
  /** Over extract.allowPrivateNetwork for listing URLs (`run --allow-private-network`). */
  allowPrivateNetwork?: boolean | undefined;
}

/** The inputs given, expanded; none given: the previous run's, from the root's run state. */
export async function expandInputs(
  specs: InputSpecs,
  storage: DatasetStorage,
  extract: Pick<ExtractConfig, "baseUrl" | "allowPrivateNetwork">,
  cwd: string,
): Promise<{ expanded: string[]; errors: string[] }> {
  const { baseUrl } = extract;
  const allowPrivateNetwork = specs.allowPrivateNetwork === true || extract.allowPrivateNetwork;
  const given = specs.inputs ?? [];
  if (given.length === 0 && specs.crawl === undefined) {
    return { expanded: [...((await readRunState(storage))?.inputs ?? [])], errors: [] };
  }
  const resolved = await resolveWatInputs(given, {
    crawl: specs.crawl,
    baseUrl,
    allowPrivateNetwork,
    limit: specs.limit,
    cwd,
  });
  return {
    expanded: resolved.inputs.map((input) => (input.kind === "file" ? input.path : input.url)),
    errors: resolved.errors.map((error) => error.message),
  };
}
