/**
 * The statistics page's numbers (`/api/stats/:index`, docs/http-api.md) for one served index:
 * the dataset statistics that `clipcrawl stats` also reports (src/formats/dataset-stats.ts),
 * with the index's rows as the kept rows, tombstoned ones left out.
 */

import { type DatasetStats, readDatasetStats } from "../formats/dataset-stats.js";
import type { ClipIndex } from "../formats/index/clip-index.js";
import { readTombstones } from "../formats/tombstones.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";

export type { Histogram, HistogramBin } from "../formats/dataset-stats.js";
export type IndexStats = DatasetStats;

export async function readIndexStats(
  storage: DatasetStorage,
  index: ClipIndex,
): Promise<IndexStats> {
  const paths = await Promise.all(
    index.manifest.segments.map((segment) =>
      storage.localPath(layout.indexSegmentMetadata(segment.name)),
    ),
  );
  const tombstones = await readTombstones(storage);
  return readDatasetStats(storage, { paths, rows: index.liveRows, tombstones });
}
