/**
 * A run's inputs, expanded once (globs, listings, `--crawl`) by the pipeline's first stage into
 * the files and URLs that become its shards 00000, 00001, … in order. The list is kept in the
 * run state file, so a re-run without arguments reads the same inputs, and a distributed job of
 * the first stage finds its own.
 */
import type { ClipcrawlConfig } from "../config/schema.js";
import type { DatasetStorage } from "../io/storage.js";
import type { Stages } from "../pipeline/pipeline.js";
import type { InputSpecs } from "../shard/stage-definition.js";
import { readRunState } from "./run-state.js";

/** The inputs given, expanded; none given: the previous run's, from the root's run state. */
export async function expandInputs(
  stages: Stages,
  specs: InputSpecs,
  storage: DatasetStorage,
  config: ClipcrawlConfig,
): Promise<{ expanded: string[]; errors: string[] }> {
  const given = specs.inputs ?? [];
  const first = stages[0];
  if ((given.length === 0 && specs.crawl === undefined) || first?.expandInputs === undefined) {
    return { expanded: [...((await readRunState(storage))?.inputs ?? [])], errors: [] };
  }
  const { inputs, errors } = await first.expandInputs(specs, config);
  return { expanded: inputs, errors };
}
