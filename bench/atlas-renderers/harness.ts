/**
 * What the renderer pages of the atlas bench share (bench/atlas.ts builds each page on its own and
 * serves it beside the web UI): the points the Atlas page draws, from the same server answer and
 * decoded by the same code, and the moment the map first shows on screen, taken the same way for
 * every renderer — the first animation frame whose canvas holds drawn points — since the
 * renderers do not all say when they have drawn.
 */
import {
  type AtlasPoints,
  colourCategories,
  decodeAtlasPoints,
} from "../../web/src/atlas-points.js";

export interface BenchPoints {
  points: AtlasPoints;
  /** Positions in [-1, 1], the aspect kept, as regl-scatterplot takes them. */
  x: Float32Array<ArrayBuffer>;
  y: Float32Array<ArrayBuffer>;
  /** Colour by cluster: each point's palette entry. */
  categories: Uint16Array;
  palette: string[];
}

const INDEX = new URLSearchParams(location.search).get("index") ?? "atlas";

export async function loadPoints(): Promise<BenchPoints> {
  const [info, buffer] = await Promise.all([
    answer(`/api/atlas/${INDEX}`).then((response) => response.json()),
    answer(`/api/atlas/${INDEX}/points`).then((response) => response.arrayBuffer()),
  ]);
  const points = decodeAtlasPoints(buffer);
  const [minX, minY, maxX, maxY] = (info as { bounds: [number, number, number, number] }).bounds;
  const half = (Math.max(maxX - minX, maxY - minY) / 2) * 1.05 || 1;
  const x = new Float32Array(points.count);
  const y = new Float32Array(points.count);
  for (let point = 0; point < points.count; point++) {
    x[point] = ((points.xy[point * 2] as number) - (minX + maxX) / 2) / half;
    y[point] = ((points.xy[point * 2 + 1] as number) - (minY + maxY) / 2) / half;
  }
  return { points, x, y, ...colourCategories(points, "cluster") };
}

async function answer(path: string): Promise<Response> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response;
}

/**
 * Samples the map's canvases each frame (drawn into a small 2-D canvas, as a screenshot would
 * see them) and, once one in fifty samples differs from the white background, writes the time
 * since navigation to `body[data-painted-ms]`. Stops at that frame.
 */
export function watchFirstPaint(container: HTMLElement): void {
  const probe = document.createElement("canvas");
  probe.width = 64;
  probe.height = 64;
  const context = probe.getContext("2d", { willReadFrequently: true });
  if (context === null) throw new Error("no 2-D canvas context");
  const check = (time: number) => {
    context.fillStyle = "#ffffff";
    context.fillRect(0, 0, 64, 64);
    for (const canvas of container.querySelectorAll("canvas")) {
      if (canvas.width > 0 && canvas.height > 0) context.drawImage(canvas, 0, 0, 64, 64);
    }
    const pixels = context.getImageData(0, 0, 64, 64).data;
    let drawn = 0;
    for (let at = 0; at < pixels.length; at += 4) {
      if ((pixels[at] as number) + (pixels[at + 1] as number) + (pixels[at + 2] as number) < 720) {
        drawn++;
      }
    }
    if (drawn >= (64 * 64) / 50) {
      document.body.dataset.paintedMs = time.toFixed(0);
      return;
    }
    requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
}

/** A failure the bench reads and reports, rather than a page that never paints. */
export function reportFailure(caught: unknown): void {
  document.body.dataset.failed = caught instanceof Error ? caught.message : String(caught);
}
