/**
 * Worker-thread entry: decode and preprocess a chunk of images as the model's
 * preprocessor_config.json says. Preprocessing (a PIL-exact resize in JavaScript) costs about as
 * much as a ViT-B/32 forward pass per image, so it runs here, beside the ONNX run of the batch
 * before, instead of on the thread that drives the model. An image whose header fails the shared
 * check (not a raster format, over `maxImagePixels`) is refused before it is decoded.
 */
import { asBuffer, decodeError } from "../../io/image-format.js";
import { isRefusal } from "../../io/image-header.js";
import { ClipImagePreprocessor } from "../../models/image-preprocessing.js";
import { serveWorkerTasks } from "../../shard/worker-pool.js";

export interface PreprocessTask {
  preprocessorConfig: string;
  images: Uint8Array[];
  /** Images decoded at once inside this worker (sharp decodes on its own threads). */
  concurrency: number;
  /** Images with more pixels are refused from their header. */
  maxImagePixels: number;
}

export type PreprocessedImage =
  | { ok: true; height: number; width: number; pixels: Float32Array }
  | { ok: false; message: string; refused: boolean };

let loaded: { key: string; preprocessor: Promise<ClipImagePreprocessor> } | undefined;

function preprocessorFor(path: string, maxImagePixels: number): Promise<ClipImagePreprocessor> {
  const key = `${maxImagePixels}:${path}`;
  if (loaded?.key !== key) {
    loaded = { key, preprocessor: ClipImagePreprocessor.load(path, { maxImagePixels }) };
  }
  return loaded.preprocessor;
}

serveWorkerTasks<PreprocessTask, PreprocessedImage[]>(async (task) => {
  const preprocessor = await preprocessorFor(task.preprocessorConfig, task.maxImagePixels);
  const results: PreprocessedImage[] = [];
  for (let start = 0; start < task.images.length; start += task.concurrency) {
    const group = task.images.slice(start, start + task.concurrency);
    const settled = await Promise.allSettled(group.map((image) => preprocessor.preprocess(image)));
    for (const [index, outcome] of settled.entries()) {
      results.push(
        outcome.status === "fulfilled"
          ? {
              ok: true,
              height: outcome.value.height,
              width: outcome.value.width,
              pixels: outcome.value.pixels,
            }
          : {
              ok: false,
              message: decodeError(outcome.reason, asBuffer(group[index])),
              refused: isRefusal(outcome.reason),
            },
      );
    }
  }
  return results;
});
