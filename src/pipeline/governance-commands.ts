/**
 * `clipcrawl remove`, `clipcrawl compact` and `clipcrawl show` as the library and the CLI call
 * them: governance imports no stage, so what it needs of one is handed in here — the index
 * stage's rebuild for an index that held removed samples, the filter stage's verdict on one row
 * for a pair that is not in the dataset.
 */
import { type CompactOptions, type CompactSummary, compactRoot } from "../governance/compact.js";
import { type RemoveOptions, type RemoveSummary, removeSamples } from "../governance/remove.js";
import {
  type SampleHistory,
  type ShowOptions,
  sampleHistory,
} from "../governance/sample-history.js";
import { filterVerdict } from "../stages/filter/row-verdict.js";
import { buildIndex } from "../stages/index/build-index.js";

/** Tombstones the samples; with `compact`, the files that hold them are rewritten right after. */
export async function remove(options: RemoveOptions): Promise<RemoveSummary> {
  const summary = await removeSamples(options);
  if (options.compact !== true) return summary;
  const compaction = await compact({
    root: options.root,
    ...(options.index === undefined ? {} : { index: options.index }),
    ...(options.reporter === undefined ? {} : { reporter: options.reporter }),
  });
  return { ...summary, ok: summary.ok && compaction.ok, compaction };
}

/** Applies the root's tombstones to its files (the index rebuilt by the index stage). */
export function compact(options: CompactOptions): Promise<CompactSummary> {
  return compactRoot(options, (root, reporter) => buildIndex({ root, reporter }));
}

export function showSample(options: ShowOptions): Promise<SampleHistory> {
  return sampleHistory(options, filterVerdict);
}
