/**
 * DataComp's image-based filter (arXiv 2304.14108, §3.4), with the user's target set in place of
 * ImageNet-1k: each target embedding is assigned to its nearest k-means centroid of the pool, and
 * those centroids are the clusters a pair's image must fall in to be kept.
 *
 * The target file is an `.npy` matrix of image embeddings made with the dataset's model. One
 * whose width differs from the dataset's is refused in one line; so is one whose model is
 * recorded and differs: recorded beside it (`FILE.json` with `model.digest` or `model`, or, for
 * an `embeddings/img_emb/img_emb_NNNNN.npy` of another clipcrawl root, that root's embed stats).
 */
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ClipcrawlError } from "../../errors.js";
import { decodeNpy, NpyFormatError } from "../../io/npy.js";
import type { DotProducts } from "../../models/dot-products.js";
import { fromFloat16Bits } from "../../models/float16.js";
import { assignToCentroids } from "./spherical-kmeans.js";

export interface TargetEmbeddings {
  /** rows × dim, each row normalised. */
  values: Float32Array;
  rows: number;
  dim: number;
}

/** What the dataset's embeddings are: their width and, when embed recorded it, the model. */
export interface DatasetEmbeddingIdentity {
  dim: number;
  modelDigest: string | null;
}

export async function readTargetEmbeddings(
  path: string,
  dataset: DatasetEmbeddingIdentity,
): Promise<TargetEmbeddings> {
  const bytes = await readFile(path).catch(() => {
    throw new ClipcrawlError("CC_RECIPE_TARGETS", `${path}: cannot read the target embeddings`);
  });
  let array: ReturnType<typeof decodeNpy>;
  try {
    array = decodeNpy(bytes);
  } catch (error) {
    const reason = error instanceof NpyFormatError ? error.message : "not a .npy file";
    throw new ClipcrawlError("CC_RECIPE_TARGETS", `${path}: ${reason}`);
  }
  const [rows = 0, dim = 0] = array.shape;
  if (array.shape.length !== 2 || rows === 0) {
    throw new ClipcrawlError(
      "CC_RECIPE_TARGETS",
      `${path}: expected a matrix of target embeddings (rows × dimension), got shape [${array.shape.join(", ")}]`,
    );
  }
  if (dim !== dataset.dim) {
    throw new ClipcrawlError(
      "CC_RECIPE_TARGETS",
      `${path}: target embeddings of dimension ${dim}, the dataset's are ${dataset.dim}: embed the targets with the dataset's model`,
    );
  }
  const recorded = await recordedModel(path);
  if (recorded !== null && dataset.modelDigest !== null && recorded !== dataset.modelDigest) {
    throw new ClipcrawlError(
      "CC_RECIPE_TARGETS",
      `${path}: target embeddings made with model ${recorded.slice(0, 12)}, the dataset's is ${dataset.modelDigest.slice(0, 12)}: embed the targets with the dataset's model`,
    );
  }
  const values =
    array.dtype === "<f2"
      ? fromFloat16Bits(array.data)
      : array.dtype === "<f4"
        ? array.data
        : Float32Array.from(array.data);
  for (let row = 0; row < rows; row++) {
    const vector = values.subarray(row * dim, (row + 1) * dim);
    let norm = 0;
    for (const value of vector) norm += value * value;
    norm = Math.sqrt(norm);
    if (!(norm > 0) || !Number.isFinite(norm)) {
      throw new ClipcrawlError(
        "CC_RECIPE_TARGETS",
        `${path}: row ${row} is not an embedding (zero or not finite)`,
      );
    }
    for (let index = 0; index < dim; index++) vector[index] = (vector[index] as number) / norm;
  }
  return { values, rows, dim };
}

/** The clusters the targets fall in: each target's nearest centroid. */
export async function clusterTargets(
  targets: TargetEmbeddings,
  centroids: Float32Array,
  clusters: number,
  dot: DotProducts,
): Promise<Set<number>> {
  const { cluster } = await assignToCentroids(
    targets.values,
    targets.rows,
    centroids,
    clusters,
    targets.dim,
    dot,
  );
  return new Set(cluster);
}

/** The model digest recorded for a target file, or null when none is. */
async function recordedModel(path: string): Promise<string | null> {
  const sidecar = await readJson(path.replace(/\.npy$/i, ".json"));
  const fromSidecar = modelOf(sidecar);
  if (fromSidecar !== null) return fromSidecar;
  const shard = /^img_emb_(\d{5})\.npy$/.exec(basename(path))?.[1];
  if (shard === undefined || basename(dirname(path)) !== "img_emb") return null;
  return modelOf(await readJson(join(dirname(dirname(path)), `${shard}_stats.json`)));
}

function modelOf(json: unknown): string | null {
  if (json === null || typeof json !== "object") return null;
  const model = (json as { model?: unknown }).model;
  if (typeof model === "string" && model !== "") return model;
  if (model !== null && typeof model === "object") {
    const digest = (model as { digest?: unknown }).digest;
    if (typeof digest === "string" && digest !== "") return digest;
  }
  return null;
}

async function readJson(path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, "utf8"));
  } catch {
    return null;
  }
}
