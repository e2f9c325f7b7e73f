/**
 * A run's WAT inputs, expanded once (globs, listings, `--crawl`) into the files and URLs that
 * become extract shards 00000, 00001, … in order. The list is kept in the run state file, so a
 * re-run without arguments reads the same inputs, and a distributed extract job finds its own.
 */
import { resolveWatInputs } from "../stages/extract/wat-inputs.js";

export interface InputSpecs {
  inputs?: readonly string[] | undefined;
  crawl?: string | undefined;
  limit?: number | undefined;
}

export async function expandInputs(
  specs: InputSpecs,
  baseUrl: string,
  cwd: string,
  previous: readonly string[],
  allowPrivateNetwork = false,
): Promise<{ expanded: string[]; errors: string[] }> {
  const given = specs.inputs ?? [];
  if (given.length === 0 && specs.crawl === undefined)
    return { expanded: [...previous], errors: [] };
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
