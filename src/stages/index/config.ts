/**
 * The `index` section of clipcrawl.json: the memory budget and the graph index's parameters, and
 * the near-duplicate grouping. Composed into the root schema by src/config/schema.ts; the CLI
 * derives index's flags from it.
 */
import * as z from "zod";

/**
 * What `clipcrawl index` builds (see src/stages/index/README.md). The engine's parameters are
 * chosen from the number of vectors and the memory budget as autofaiss chooses faiss's (exact
 * search for small sets, a graph index above), unless set here.
 */
export const indexConfigSchema = z
  .object({
    memoryBudgetMb: z
      .number()
      .gt(0)
      .default(4096)
      .describe(
        "memory the image and text indices may take together, in MB; picks the tier, quantization and connectivity when they are auto",
      ),
    tier: z
      .enum(["auto", "memory", "compressed"])
      .default("auto")
      .describe(
        "memory: an HNSW graph a modality; compressed: IVF-PQ (≤ 150 bytes a vector) re-ranked with float16 rows read from disk; auto: memory while the smallest graph fits memoryBudgetMb",
      ),
    shardSize: z
      .number()
      .int()
      .min(1)
      .default(1_000_000)
      .describe(
        "most rows one index shard (its own image and text graphs) holds; new rows fill the last shard, then start new ones",
      ),
    flatMaxVectors: z
      .number()
      .int()
      .min(0)
      .default(1000)
      .describe(
        "indices of up to this many vectors are searched exactly (autofaiss's Flat threshold); above, through the HNSW graph",
      ),
    quantization: z
      .enum(["auto", "f32", "f16", "i8"])
      .default("auto")
      .describe(
        "how the graph index stores vectors; auto: the most precise that fits memoryBudgetMb",
      ),
    connectivity: z
      .number()
      .int()
      .min(0)
      .max(128)
      .default(0)
      .describe("HNSW links per node (faiss's M); 0: chosen from the memory budget (8 to 16)"),
    expansionAdd: z
      .number()
      .int()
      .min(0)
      .default(192)
      .describe("HNSW candidate list while adding (faiss's efConstruction); 0: the engine's"),
    expansionSearch: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "HNSW candidate list while searching (faiss's efSearch); 0: chosen from the index size for recall@10 ≥ 0.95",
      ),
    duplicateThreshold: z
      .number()
      .min(0)
      .max(1)
      .default(0.96)
      .describe("image embeddings at least this cosine-similar share a near-duplicate group"),
    duplicateNeighbors: z
      .number()
      .int()
      .min(1)
      .max(256)
      .default(10)
      .describe("nearest neighbours of each image looked at for its near-duplicates"),
    duplicateExpansion: z
      .number()
      .int()
      .min(1)
      .max(4096)
      .default(32)
      .describe(
        "HNSW candidate list of the near-duplicate search in the graphs of the rows an index held before a memory-tier build extends it (a build's own rows, a queue build's across its shards too, are compared through lists instead): shorter is faster and misses a few more pairs",
      ),
    atlasPoints: z
      .number()
      .int()
      .min(0)
      .max(16_000_000)
      .default(1_000_000)
      .describe(
        "points on the web UI's Atlas map, an even sample of the rows; 0: no atlas (_atlas/ is written after the index)",
      ),
    atlasLayoutSample: z
      .number()
      .int()
      .min(1)
      .default(10_000)
      .describe(
        "atlas points laid out by UMAP; the others are placed at the weighted mean of their nearest laid-out neighbours",
      ),
    atlasClusters: z
      .number()
      .int()
      .min(1)
      .max(1000)
      .default(24)
      .describe("regions of the atlas map, each labelled by its most frequent caption words"),
    atlasPcaDimensions: z
      .number()
      .int()
      .min(2)
      .max(1024)
      .default(32)
      .describe("PCA components the atlas layout runs on (UMAP's input and the placement's space)"),
    threads: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe(
        "threads that build the graph and look for near-duplicates; 0 means one per CPU core",
      ),
  })
  .strict();

export type IndexConfig = z.infer<typeof indexConfigSchema>;
