/**
 * SemDeDup (arXiv 2303.09540), as its code and NeMo Curator's run it: within each k-means
 * cluster, the members are ordered by their cosine to the cluster's centroid, lowest first
 * ("keep hard": the member farthest from the centroid is the one kept); member j is a duplicate
 * when some member before it in that order has cosine above 1 − ε with it (`M > 1 − eps`, M the
 * column maxima of the strictly upper triangle of the cluster's similarity matrix). So from each
 * group of near-duplicates the member least similar to its centroid stays.
 *
 * At dataset scale: the work is per cluster (quadratic in a cluster's size, never in the
 * dataset's), the similarity matrix is computed a block of columns at a time, and the vectors
 * are spilled once, by cluster, into bucket files of at most `memoryMb` each, which are then
 * read back one at a time. Memory: the per-row assignment (8 bytes a row), one bucket, one
 * block of products.
 */
import { mkdtemp, open, rm } from "node:fs/promises";
import { join } from "node:path";
import type { DotProducts } from "../../models/dot-products.js";
import type { EmbeddingPool } from "./embedding-pool.js";
import type { Assignment } from "./spherical-kmeans.js";

/** Products computed in one call while scanning a cluster (bounds that matrix to 64 MB). */
const PRODUCT_BLOCK_VALUES = 16 * 1024 * 1024;
/** Shard number and row before each spilled vector. */
const RECORD_HEADER_BYTES = 8;

export interface SemanticDedupOptions {
  epsilon: number;
  memoryMb: number;
  /** A folder for the bucket files (removed afterwards). */
  scratchFolder: string;
}

export interface SemanticDedupResult {
  /** Per shard of the pool, 1 for each row removed as a duplicate. */
  removed: Uint8Array[];
  duplicates: number;
  largestCluster: number;
  buckets: number;
}

/**
 * Which members of one cluster are duplicates. `vectors` holds the `members` rows in keep order
 * (lowest cosine to the centroid first); the first row is never removed.
 */
export async function clusterDuplicates(
  vectors: Float32Array,
  members: number,
  dim: number,
  epsilon: number,
  dot: DotProducts,
): Promise<Uint8Array> {
  const removed = new Uint8Array(members);
  const threshold = 1 - epsilon;
  const columns = Math.max(1, Math.floor(PRODUCT_BLOCK_VALUES / Math.max(members, 1)));
  for (let first = 1; first < members; first += columns) {
    const end = Math.min(members, first + columns);
    // Columns first..end-1 against rows 0..end-1: each column's products with every earlier
    // member, contiguous in the result.
    const products = await dot.products(
      vectors.subarray(first * dim, end * dim),
      end - first,
      vectors.subarray(0, end * dim),
      end,
      dim,
    );
    for (let column = first; column < end; column++) {
      const offset = (column - first) * end;
      for (let row = 0; row < column; row++) {
        if ((products[offset + row] as number) > threshold) {
          removed[column] = 1;
          break;
        }
      }
    }
  }
  return removed;
}

/** Semantic duplicates over the whole pool, from its cluster assignment. */
export async function semanticDuplicates(
  pool: EmbeddingPool,
  assignment: readonly Assignment[],
  clusters: number,
  options: SemanticDedupOptions,
  dot: DotProducts,
): Promise<SemanticDedupResult> {
  const dim = pool.dim;
  const sizes = new Float64Array(clusters);
  for (const shard of assignment) {
    for (const cluster of shard.cluster) sizes[cluster] = (sizes[cluster] as number) + 1;
  }
  const { bucketOf, buckets } = packClusters(sizes, dim, options.memoryMb);
  const removed = pool.shardRows.map((rows) => new Uint8Array(rows));
  let duplicates = 0;
  const folder = await mkdtemp(join(options.scratchFolder, "semdedup-"));
  try {
    const files = await spillByBucket(pool, assignment, bucketOf, buckets, folder, options);
    for (const file of files) {
      duplicates += await dedupBucket(file, pool, assignment, options.epsilon, removed, dot);
    }
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
  return {
    removed,
    duplicates,
    largestCluster: sizes.reduce((a, b) => Math.max(a, b), 0),
    buckets,
  };
}

/** Whole clusters into buckets of at most the memory budget (a larger cluster is one bucket). */
function packClusters(
  sizes: Float64Array,
  dim: number,
  memoryMb: number,
): { bucketOf: Int32Array; buckets: number } {
  const budget = memoryMb * 1024 * 1024;
  const rowBytes = dim * 4 + RECORD_HEADER_BYTES;
  const bucketOf = new Int32Array(sizes.length);
  let buckets = 0;
  let filled = 0;
  for (let cluster = 0; cluster < sizes.length; cluster++) {
    const bytes = (sizes[cluster] as number) * rowBytes;
    if (buckets === 0 || (filled > 0 && filled + bytes > budget)) {
      buckets++;
      filled = 0;
    }
    bucketOf[cluster] = buckets - 1;
    filled += bytes;
  }
  return { bucketOf, buckets };
}

/** One pass over the pool: each row's shard, row and vector appended to its bucket's file. */
async function spillByBucket(
  pool: EmbeddingPool,
  assignment: readonly Assignment[],
  bucketOf: Int32Array,
  buckets: number,
  folder: string,
  options: SemanticDedupOptions,
): Promise<string[]> {
  const dim = pool.dim;
  const recordBytes = RECORD_HEADER_BYTES + dim * 4;
  // The buffers together stay within a quarter of the budget.
  const bufferBytes = Math.max(
    recordBytes,
    Math.min(
      4 * 1024 * 1024,
      Math.floor((options.memoryMb * 1024 * 1024) / 4 / buckets / recordBytes) * recordBytes,
    ),
  );
  const paths = Array.from({ length: buckets }, (_, bucket) => join(folder, `${bucket}.bin`));
  const handles = await Promise.all(paths.map((path) => open(path, "w")));
  const buffers = paths.map(() => Buffer.alloc(bufferBytes));
  const used = new Int32Array(buckets);
  try {
    for (let shard = 0; shard < pool.shards.length; shard++) {
      const cluster = (assignment[shard] as Assignment).cluster;
      for await (const block of pool.blocks(shard)) {
        const bytes = new Uint8Array(block.values.buffer, block.values.byteOffset);
        for (let row = 0; row < block.rows; row++) {
          const poolRow = block.first + row;
          const bucket = bucketOf[cluster[poolRow] as number] as number;
          if ((used[bucket] as number) + recordBytes > bufferBytes) {
            await handles[bucket]?.write(buffers[bucket] as Buffer, 0, used[bucket]);
            used[bucket] = 0;
          }
          const buffer = buffers[bucket] as Buffer;
          const at = used[bucket] as number;
          buffer.writeUInt32LE(shard, at);
          buffer.writeUInt32LE(poolRow, at + 4);
          buffer.set(bytes.subarray(row * dim * 4, (row + 1) * dim * 4), at + RECORD_HEADER_BYTES);
          used[bucket] = at + recordBytes;
        }
      }
    }
    for (let bucket = 0; bucket < buckets; bucket++) {
      if ((used[bucket] as number) > 0) {
        await handles[bucket]?.write(buffers[bucket] as Buffer, 0, used[bucket]);
      }
    }
  } finally {
    await Promise.all(handles.map((handle) => handle.close()));
  }
  return paths;
}

/** Reads one bucket file and dedups each of its clusters; returns the duplicates found. */
async function dedupBucket(
  path: string,
  pool: EmbeddingPool,
  assignment: readonly Assignment[],
  epsilon: number,
  removed: Uint8Array[],
  dot: DotProducts,
): Promise<number> {
  const dim = pool.dim;
  const recordBytes = RECORD_HEADER_BYTES + dim * 4;
  const handle = await open(path, "r");
  let bytes: Buffer;
  try {
    bytes = await handle.readFile();
  } finally {
    await handle.close();
  }
  const records = bytes.length / recordBytes;
  const shardOf = new Uint32Array(records);
  const rowOf = new Uint32Array(records);
  const clusterOf = new Int32Array(records);
  const similarityOf = new Float32Array(records);
  for (let record = 0; record < records; record++) {
    const shard = bytes.readUInt32LE(record * recordBytes);
    const row = bytes.readUInt32LE(record * recordBytes + 4);
    const assigned = assignment[shard] as Assignment;
    shardOf[record] = shard;
    rowOf[record] = row;
    clusterOf[record] = assigned.cluster[row] as number;
    similarityOf[record] = assigned.similarity[row] as number;
  }
  // By cluster, then lowest cosine to the centroid first; ties in pool order.
  const order = Array.from({ length: records }, (_, record) => record).sort(
    (a, b) =>
      (clusterOf[a] as number) - (clusterOf[b] as number) ||
      (similarityOf[a] as number) - (similarityOf[b] as number) ||
      (shardOf[a] as number) - (shardOf[b] as number) ||
      (rowOf[a] as number) - (rowOf[b] as number),
  );
  let duplicates = 0;
  for (let start = 0; start < records; ) {
    let end = start + 1;
    while (end < records && clusterOf[order[end] as number] === clusterOf[order[start] as number]) {
      end++;
    }
    const members = end - start;
    if (members > 1) {
      const vectors = new Float32Array(members * dim);
      for (let member = 0; member < members; member++) {
        const offset = (order[start + member] as number) * recordBytes + RECORD_HEADER_BYTES;
        vectors.set(floatsAt(bytes, offset, dim), member * dim);
      }
      const flags = await clusterDuplicates(vectors, members, dim, epsilon, dot);
      for (let member = 0; member < members; member++) {
        if (flags[member] === 0) continue;
        const record = order[start + member] as number;
        (removed[shardOf[record] as number] as Uint8Array)[rowOf[record] as number] = 1;
        duplicates++;
      }
    }
    start = end;
  }
  return duplicates;
}

/** `count` float32 values of `bytes` from `offset`, without a copy when they are aligned. */
function floatsAt(bytes: Buffer, offset: number, count: number): Float32Array {
  const at = bytes.byteOffset + offset;
  if (at % 4 === 0) return new Float32Array(bytes.buffer, at, count);
  return new Float32Array(bytes.buffer.slice(at, at + count * 4));
}
