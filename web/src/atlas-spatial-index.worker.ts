/**
 * Builds the Atlas map's spatial index off the main thread: a KDBush over the points' positions,
 * in the serialised form regl-scatterplot's `draw(points, { spatialIndex })` takes. Left to
 * regl-scatterplot, a million points are first turned into a million small arrays and copied to
 * its own worker, which the map's first paint waits for.
 */
import KDBush from "kdbush";

/** What regl-scatterplot builds with; its hover and lasso searches are tuned to it. */
const NODE_SIZE = 16;

interface WorkerScope {
  onmessage: ((event: MessageEvent<{ x: Float32Array; y: Float32Array }>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
}

const scope = self as unknown as WorkerScope;
scope.onmessage = (event) => {
  const { x, y } = event.data;
  const index = new KDBush(x.length, NODE_SIZE, Float32Array);
  for (let point = 0; point < x.length; point++) {
    index.add(x[point] as number, y[point] as number);
  }
  index.finish();
  scope.postMessage(index.data, [index.data]);
};
