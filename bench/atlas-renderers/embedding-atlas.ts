/**
 * The atlas bench's embedding-atlas page: its EmbeddingView, the scatter view of Apple's
 * Embedding Atlas used alone (no Mosaic coordinator, no DuckDB), with the points as typed arrays.
 * EmbeddingView 0.26 draws only with WebGPU and asks the device for `shader-f16`; the page says
 * so in one line when the browser cannot give it, rather than painting nothing.
 */
import { EmbeddingView } from "embedding-atlas";
import { loadPoints, reportFailure, watchFirstPaint } from "./harness.js";

interface GpuAdapter {
  features: { has(feature: string): boolean };
}

const container = document.getElementById("map") as HTMLDivElement;
watchFirstPaint(container);
checkWebGpu()
  .then(loadPoints)
  .then(({ x, y, categories, palette }) => {
    new EmbeddingView(container, {
      data: { x, y, category: Uint8Array.from(categories) },
      categoryColors: palette,
      width: container.clientWidth,
      height: container.clientHeight,
      pixelRatio: 1,
      config: { pointSize: 1.5, autoLabelEnabled: false },
    });
  })
  .catch(reportFailure);

async function checkWebGpu(): Promise<void> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<GpuAdapter | null> } }).gpu;
  const adapter = await gpu?.requestAdapter();
  if (adapter === undefined || adapter === null) {
    throw new Error(
      "this Chromium has no WebGPU adapter, and EmbeddingView draws only with WebGPU",
    );
  }
  if (!adapter.features.has("shader-f16")) {
    throw new Error(
      "this Chromium's WebGPU adapter lacks shader-f16, which EmbeddingView requires of its device",
    );
  }
}
