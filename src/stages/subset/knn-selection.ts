/**
 * The kNN side of a subset: text and image queries are embedded with the CLIP model the dataset
 * was embedded with, and each is answered by the root's index (src/stages/index: `openIndex`,
 * `search`, `metadata`) — the k nearest rows, as clip-retrieval's text → image search does.
 *
 * With `--where` as well, the k must be k rows that pass it; the index filters only on its own
 * columns, so the passing keys are computed once (DuckDB over the dataset) and each query asks
 * the index for more candidates than k — k / (share of rows that pass) × 1.5 — and again for
 * twice as many, until k pass or the index has no more. With `--dedup` the index keeps one row
 * per near-duplicate group within a query (its `deduplicate` filter); across queries, subset.ts
 * keeps the best.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { ConfigError, InputError } from "../../errors.js";
import type { ClipIndex } from "../../formats/index/clip-index.js";
import type { Modality } from "../../formats/index/index-manifest.js";
import { ClipModel } from "../../models/clip-model.js";
import { ClipEmbedder, embeddingRow } from "../../models/embedder.js";

export interface SubsetQuery {
  /** The text, or the image file as given. */
  label: string;
  kind: "text" | "image";
}

export interface KnnHit {
  key: string;
  /** Position of the query in the list given. */
  query: number;
  similarity: number;
  dupGroup: number | null;
}

const OVERFETCH = 1.5;

/** Embeds the queries with the model folder (L2-normalised rows, in query order). */
export async function embedQueries(
  queries: readonly SubsetQuery[],
  modelFolder: string,
  cwd: string,
): Promise<Float32Array[]> {
  if (modelFolder.trim() === "") {
    throw new ConfigError(
      "kNN queries are embedded with the CLIP model the dataset was embedded with: set embed.model in clipcrawl.json or pass --model PATH",
    );
  }
  const model = await ClipModel.load(resolve(cwd, modelFolder));
  try {
    const embedder = new ClipEmbedder(model);
    const vectors: Float32Array[] = new Array(queries.length);
    const texts = queries.flatMap((query, index) => (query.kind === "text" ? [index] : []));
    if (texts.length > 0) {
      const embedded = await embedder.embedTexts(texts.map((index) => queries[index]?.label ?? ""));
      texts.forEach((index, row) => {
        vectors[index] = embeddingRow(embedded.embeddings, row);
      });
    }
    const images = queries.flatMap((query, index) => (query.kind === "image" ? [index] : []));
    if (images.length > 0) {
      const bytes = await Promise.all(
        images.map(async (index) => {
          const path = resolve(cwd, queries[index]?.label ?? "");
          return readFile(path).catch(() => {
            throw new InputError("CC_QUERY_IMAGE", path, "cannot read the image query");
          });
        }),
      );
      const embedded = await embedder.embedImages(bytes);
      const failure = embedded.failures[0];
      if (failure !== undefined) {
        const label = queries[images[failure.index] as number]?.label ?? "";
        throw new InputError("CC_QUERY_IMAGE", resolve(cwd, label), failure.message);
      }
      embedded.indices.forEach((position, row) => {
        vectors[images[position] as number] = embeddingRow(embedded.embeddings, row);
      });
    }
    return vectors;
  } finally {
    await model.release();
  }
}

/**
 * The k best rows of each query that are in `passing` (every row when undefined), best first;
 * `onQuery` is called after each query.
 */
export function searchQueries(
  index: ClipIndex,
  vectors: readonly Float32Array[],
  options: {
    k: number;
    modality: Modality;
    deduplicate: boolean;
    passing: ReadonlySet<string> | undefined;
    onQuery?: (done: number) => void;
  },
): KnnHit[] {
  const rows = index.size;
  const { k, passing } = options;
  const share = passing === undefined ? 1 : Math.max(passing.size, 1) / Math.max(rows, 1);
  const hits: KnnHit[] = [];
  vectors.forEach((vector, query) => {
    if (index.dimensions !== vector.length) {
      throw new ConfigError(
        `the model gives ${vector.length}-d embeddings, the index holds ${index.dimensions}-d: use the model the dataset was embedded with (--model)`,
      );
    }
    let fetch = Math.min(rows, passing === undefined ? k : Math.ceil((k / share) * OVERFETCH) + 10);
    for (;;) {
      const found = index.search({
        vector,
        k: Math.max(1, fetch),
        modality: options.modality,
        filters: { deduplicate: options.deduplicate },
      });
      const metadata = index.metadata(
        found.map((result) => result.id),
        ["key", "dup_group"],
      );
      const accepted: KnnHit[] = [];
      for (const [position, result] of found.entries()) {
        const key = metadata[position]?.key;
        if (typeof key !== "string" || (passing !== undefined && !passing.has(key))) continue;
        const group = metadata[position]?.dup_group;
        accepted.push({
          key,
          query,
          similarity: result.similarity,
          dupGroup: typeof group === "number" ? group : null,
        });
        if (accepted.length >= k) break;
      }
      if (accepted.length >= k || found.length < fetch || fetch >= rows) {
        hits.push(...accepted);
        break;
      }
      const passRate = Math.max(accepted.length, 1) / Math.max(found.length, 1);
      fetch = Math.min(rows, Math.max(fetch * 2, Math.ceil((k / passRate) * OVERFETCH)));
    }
    options.onQuery?.(query + 1);
  });
  return hits;
}
