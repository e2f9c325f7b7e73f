/**
 * `clipcrawl remove` and `clipcrawl show` as the library and the CLI call them: governance
 * imports no stage, so what it needs of one is handed in here — the index stage's rebuild for an
 * index that holds removed samples, the filter stage's verdict on one row for a pair that is not
 * in the dataset.
 */
import { type RemoveOptions, type RemoveSummary, removeSamples } from "../governance/remove.js";
import {
  type SampleHistory,
  type ShowOptions,
  sampleHistory,
} from "../governance/sample-history.js";
import { filterVerdict } from "../stages/filter/row-verdict.js";
import { buildIndex } from "../stages/index/build-index.js";

export function remove(options: RemoveOptions): Promise<RemoveSummary> {
  return removeSamples(options, (root, reporter) => buildIndex({ root, reporter }));
}

export function showSample(options: ShowOptions): Promise<SampleHistory> {
  return sampleHistory(options, filterVerdict);
}
