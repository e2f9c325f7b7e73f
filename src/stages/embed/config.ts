/**
 * The `embed` section of clipcrawl.json: the CLIP model and its precision, batching and threads,
 * the embeddings' dtype, and the multilingual text model. Composed into the root schema by
 * src/config/schema.ts; the CLI derives embed's flags from it. The score heads' section
 * (`scores`) lives with the heads, in src/models/heads/score-config.ts.
 */
import * as z from "zod";
import { DEFAULT_MAX_IMAGE_PIXELS } from "../../io/image-limits.js";
import { INFERENCE_DEVICE_PATTERN } from "../../models/inference-device.js";
import { MODEL_PRECISION_SUFFIX, type ModelPrecision } from "../../models/model-files.js";

/** What `clipcrawl embed` runs and writes; the model is a local folder, never downloaded here. */
export const embedConfigSchema = z
  .object({
    model: z
      .string()
      .default("")
      .describe(
        "CLIP model folder in the Hugging Face layout (onnx/text_model.onnx, onnx/vision_model.onnx, tokenizer.json, …)",
      ),
    precision: z
      .enum(Object.keys(MODEL_PRECISION_SUFFIX) as [ModelPrecision, ...ModelPrecision[]])
      .default("fp32")
      .describe("which ONNX variant of the towers to load (fp32: onnx/*_model.onnx)"),
    batchSize: z.number().int().min(1).default(64).describe("images (and captions) per ONNX run"),
    threads: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("onnxruntime intra-op threads for each tower; 0 means one per CPU core"),
    device: z
      .string()
      .regex(INFERENCE_DEVICE_PATTERN, "expected cpu, cuda or cuda:N (a GPU's index)")
      .default("cpu")
      .describe(
        "where the towers run: cpu, or cuda[:N] with onnxruntime's CUDA provider (an opt-in download: docs/install.md); one worker process a GPU",
      ),
    preprocessWorkers: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "worker threads that decode and preprocess images beside the model; 0 means a quarter of the CPU cores",
      ),
    decodeConcurrency: z
      .number()
      .int()
      .min(1)
      .default(4)
      .describe("images each preprocessing worker decodes at once (sharp uses its own threads)"),
    maxImagePixels: z
      .number()
      .int()
      .min(1)
      .default(DEFAULT_MAX_IMAGE_PIXELS)
      .describe(
        "decompression-bomb guard: larger images, and images that are not raster formats (SVG, PDF), are failed_to_embed before decoding (download's limit)",
      ),
    outputDtype: z
      .enum(["float16", "float32"])
      .default("float16")
      .describe("dtype of the .npy embeddings (clip-retrieval writes float16)"),
    multilingualModel: z
      .string()
      .default("")
      .describe(
        "text-only model folder (onnx/text_model.onnx, tokenizer.json, …) that maps captions of multilingualTiers into the CLIP model's space, as LAION used multilingual CLIP; empty: the CLIP text tower for every caption",
      ),
    multilingualTiers: z
      .array(z.enum(["en", "multi", "nolang"]))
      .default(["multi", "nolang"])
      .describe("language tiers whose captions go through multilingualModel when one is set"),
  })
  .strict();

export type EmbedConfig = z.infer<typeof embedConfigSchema>;
