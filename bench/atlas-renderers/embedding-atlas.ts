/**
 * The atlas bench's embedding-atlas page: its EmbeddingView, the scatter view of Apple's
 * Embedding Atlas used alone (no Mosaic coordinator, no DuckDB), with the points as typed arrays.
 */
import { EmbeddingView } from "embedding-atlas";
import { loadPoints, reportFailure, watchFirstPaint } from "./harness.js";

const container = document.getElementById("map") as HTMLDivElement;
watchFirstPaint(container);
loadPoints()
  .then(({ x, y, categories, palette }) => {
    new EmbeddingView(container, {
      data: { x, y, category: Uint8Array.from(categories) },
      categoryColors: palette,
      width: container.clientWidth,
      height: container.clientHeight,
      pixelRatio: 1,
      config: { pointSize: 1.5, autoLabelEnabled: false },
      theme: { statusBar: false },
    });
  })
  .catch(reportFailure);
