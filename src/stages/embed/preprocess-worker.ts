/**
 * Worker-thread entry: decode and preprocess a chunk of images as the model's
 * preprocessor_config.json says. Preprocessing (a PIL-exact resize in JavaScript) costs about as
 * much as a ViT-B/32 forward pass per image, so it runs here, beside the ONNX run of the batch
 * before, instead of on the thread that drives the model.
 */
import { asBuffer, decodeError } from "../../io/image-format.js";
import { ClipImagePreprocessor } from "../../models/image-preprocessing.js";
import { serveWorkerTasks } from "../../shard/worker-pool.js";

export interface PreprocessTask {
  preprocessorConfig: string;
  images: Uint8Array[];
  /** Images decoded at once inside this worker (sharp decodes on its own threads). */
  concurrency: number;
}

export type PreprocessedImage =
  | { ok: true; height: number; width: number; pixels: Float32Array }
  | { ok: false; message: string };

let loaded: { path: string; preprocessor: Promise<ClipImagePreprocessor> } | undefined;

function preprocessorFor(path: string): Promise<ClipImagePreprocessor> {
  if (loaded?.path !== path) loaded = { path, preprocessor: ClipImagePreprocessor.load(path) };
  return loaded.preprocessor;
}

serveWorkerTasks<PreprocessTask, PreprocessedImage[]>(async (task) => {
  const preprocessor = await preprocessorFor(task.preprocessorConfig);
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
          : { ok: false, message: decodeError(outcome.reason, asBuffer(group[index])) },
      );
    }
  }
  return results;
});
