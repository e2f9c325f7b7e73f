/**
 * The Atlas map's spatial index (hover and lasso find points through it), built in a worker from
 * the points' typed arrays while the page does the rest of its work (atlas-spatial-index.worker.ts).
 */

export function buildSpatialIndex(x: Float32Array, y: Float32Array): Promise<ArrayBuffer> {
  const worker = new Worker(new URL("./atlas-spatial-index.worker.ts", import.meta.url), {
    type: "module",
    name: "atlas-spatial-index",
  });
  return new Promise<ArrayBuffer>((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<ArrayBuffer>) => resolve(event.data);
    worker.onerror = (event) => reject(new Error(`the map's spatial index: ${event.message}`));
    // Copies, handed over: the page keeps drawing from its own arrays.
    const copies = { x: x.slice(), y: y.slice() };
    worker.postMessage(copies, [copies.x.buffer, copies.y.buffer]);
  }).finally(() => worker.terminate());
}
