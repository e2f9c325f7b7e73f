/**
 * Which CLIP model (and multilingual text model) embeds the queries of an index. Queries must be
 * embedded by the model that embedded the index, so the default is the one embed used, in this
 * order: the one named for the index (`--model`, or the indices file), the root's
 * `embed.model`, the folder embed recorded in its shard stats, and the demo's own models. The
 * model is checked against the index's dimensions when it is loaded.
 */
import { isAbsolute, resolve } from "node:path";
import { readConfig } from "../config/config-file.js";
import { configBaseDir } from "../config/config-paths.js";
import { ConfigError } from "../errors.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";
import type { ModelPrecision } from "../models/model-files.js";

/** Where the demo keeps its models inside its root (src/demo/demo.ts). */
const DEMO_MODEL_FOLDER = "demo/tiny-clip";
const DEMO_MULTILINGUAL_FOLDER = "demo/tiny-multilingual";

export interface IndexModels {
  model: string;
  precision: ModelPrecision;
  /** The multilingual text model behind `use_mclip`, when there is one. */
  multilingualModel: string | undefined;
}

export interface IndexModelChoice {
  model?: string;
  multilingualModel?: string;
}

export async function resolveIndexModels(
  name: string,
  storage: DatasetStorage,
  chosen: IndexModelChoice,
): Promise<IndexModels> {
  const config = (await readConfig(storage))?.embed;
  const recorded = await recordedModel(storage);
  const precision = config?.precision ?? recorded?.precision ?? "fp32";
  const baseDir = configBaseDir(storage);
  const model =
    given(chosen.model) ??
    given(config?.model, baseDir) ??
    recorded?.folder ??
    ((await storage.exists(`${DEMO_MODEL_FOLDER}/onnx/vision_model.onnx`))
      ? await storage.localPath(DEMO_MODEL_FOLDER)
      : undefined);
  if (model === undefined) {
    throw new ConfigError(
      `index ${name}: no CLIP model to embed queries with; give --model DIR (the model ${storage.root} was embedded with) or set embed.model in its clipcrawl.json`,
    );
  }
  const multilingualModel =
    given(chosen.multilingualModel) ??
    given(config?.multilingualModel, baseDir) ??
    ((await storage.exists(`${DEMO_MULTILINGUAL_FOLDER}/onnx/text_model.onnx`))
      ? await storage.localPath(DEMO_MULTILINGUAL_FOLDER)
      : undefined);
  return { model, precision, multilingualModel };
}

/**
 * A configured path; relative paths in a root's config are relative to `base`: the root, or the
 * working directory for an object-storage root (config-paths.ts).
 */
function given(path: string | undefined, base?: string): string | undefined {
  if (path === undefined || path.trim() === "") return undefined;
  return isAbsolute(path) || base === undefined ? resolve(path) : resolve(base, path);
}

/** The model folder embed wrote in the stats of its first shard. */
async function recordedModel(
  storage: DatasetStorage,
): Promise<{ folder: string; precision: ModelPrecision } | undefined> {
  const names = (await storage.list(layout.embeddingsFolder()))
    .filter((name) => name.endsWith("_stats.json"))
    .sort();
  for (const name of names) {
    try {
      const stats = JSON.parse(await storage.readText(`${layout.embeddingsFolder()}/${name}`)) as {
        model?: { folder?: unknown; precision?: unknown };
      };
      if (typeof stats.model?.folder === "string" && stats.model.folder !== "") {
        return {
          folder: stats.model.folder,
          precision: (stats.model.precision as ModelPrecision | undefined) ?? "fp32",
        };
      }
    } catch {
      // a damaged stats file says nothing about the model; try the next
    }
  }
  return undefined;
}
