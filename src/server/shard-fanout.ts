/**
 * Fan-out over index shards held by other serve processes (`serve --shard URL …`): a
 * `/knn-service` query is embedded here once, sent as its embedding to every remote shard with
 * the filters it carries, answered by the shards held here at the same time, and the answers are
 * merged by similarity. Each shard applies the filters inside its own search and returns the
 * query's whole depth (offset + count), so the merge holds k rows whenever k rows pass anywhere.
 *
 * A shard that fails, answers something else than a list, or is slower than `shardDeadlineMs`
 * is left out: the answer is partial, never a 5xx, and names the missing shards (remote URLs, or
 * local shard names whose files could not be opened) in the `X-Clipcrawl-Partial` header.
 */
import { errorMessage } from "../errors.js";
import type { MetadataValue } from "../formats/index/clip-index.js";
import { runKnnQuery } from "./knn-query.js";
import type { KnnQuery } from "./knn-request.js";
import { queryEmbedding } from "./query-embedding.js";
import { knnAnswer } from "./result-rows.js";
import type { ServedIndex } from "./served-index.js";
import type { ServerContext } from "./server-context.js";

export const PARTIAL_HEADER = "x-clipcrawl-partial";

type AnswerRow = Record<string, MetadataValue>;

export interface ShardedAnswer {
  rows: AnswerRow[];
  /** Shards whose rows the answer may lack; empty: complete. */
  missing: string[];
}

/** The query's fields a shard does not need once it has the embedding. */
const EMBEDDED_FIELDS = [
  "text",
  "image",
  "image_url",
  "like_id",
  "like_modality",
  "use_mclip",
  "aesthetic_score",
  "aesthetic_weight",
  "indice_name",
];

export async function answerKnnQuery(
  served: ServedIndex,
  query: KnnQuery,
  body: unknown,
  context: ServerContext,
): Promise<ShardedAnswer> {
  const local = served.index.unavailableShards.map((shard) => shard.name);
  const remotes = served.source.remoteShards ?? [];
  if (remotes.length === 0) {
    const results = await runKnnQuery(served, query, context.embedding);
    const rows = context.metrics.timeSync("metadata", served.name, () =>
      knnAnswer(served, results, query.numImages),
    );
    return { rows, missing: local };
  }
  const vector = await queryEmbedding(served, query, context.embedding);
  const depth = query.offset + query.numResultIds;
  const deep: KnnQuery = { ...query, offset: 0, numResultIds: depth, numImages: depth };
  const forwarded: Record<string, unknown> = {
    ...(body as Record<string, unknown>),
    embedding_input: Array.from(vector),
    offset: 0,
    num_images: depth,
    num_result_ids: depth,
  };
  for (const field of EMBEDDED_FIELDS) delete forwarded[field];
  const deadline = context.config.shardDeadlineMs;
  const missing = [...local];
  const answers = await Promise.all([
    served.index.heldShards.length === 0
      ? Promise.resolve<AnswerRow[]>([])
      : timedShard(context, served.name, "local", async () => {
          const results = await runKnnQuery(served, deep, context.embedding, depth, vector);
          return knnAnswer(served, results, depth);
        }).catch((error: unknown) => {
          missing.push(`local: ${errorMessage(error)}`);
          return [];
        }),
    ...remotes.map((url) =>
      timedShard(context, served.name, url, () => askShard(url, forwarded, deadline)).then(
        (answer) => {
          missing.push(...answer.missing.map((shard) => `${url} ${shard}`));
          return answer.rows;
        },
        () => {
          missing.push(url);
          return [];
        },
      ),
    ),
  ]);
  const merged = mergeAnswers(answers, query.deduplicate).slice(query.offset, depth);
  for (const [position, row] of merged.entries()) {
    if (position >= query.numImages) {
      merged[position] = { id: row.id ?? null, similarity: row.similarity ?? null };
    }
  }
  return { rows: merged, missing };
}

/** The rows of several shards' answers, best first; one a row, and one a group when deduplicating. */
export function mergeAnswers(answers: readonly AnswerRow[][], deduplicate: boolean): AnswerRow[] {
  const all = answers.flat();
  all.sort((a, b) => Number(b.similarity) - Number(a.similarity) || Number(a.id) - Number(b.id));
  const ids = new Set<unknown>();
  const groups = new Set<unknown>();
  const urls = new Set<unknown>();
  return all.filter((row) => {
    if (ids.has(row.id)) return false;
    ids.add(row.id);
    if (!deduplicate) return true;
    if (row.dup_group !== undefined && row.dup_group !== null) {
      if (groups.has(row.dup_group)) return false;
      groups.add(row.dup_group);
    }
    if (typeof row.url === "string") {
      if (urls.has(row.url)) return false;
      urls.add(row.url);
    }
    return true;
  });
}

async function timedShard<T>(
  context: ServerContext,
  index: string,
  shard: string,
  work: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  let outcome = "error";
  try {
    const result = await work();
    outcome = "ok";
    return result;
  } catch (error) {
    if ((error as Error).name === "TimeoutError") outcome = "timeout";
    throw error;
  } finally {
    context.metrics.observeShard(index, shard, outcome, (performance.now() - started) / 1000);
  }
}

async function askShard(
  url: string,
  body: Record<string, unknown>,
  deadlineMs: number,
): Promise<ShardedAnswer> {
  const response = await fetch(new URL("knn-service", withSlash(url)), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(deadlineMs),
  });
  const answer = (await response.json()) as unknown;
  if (!response.ok || !Array.isArray(answer)) {
    throw new Error(`${url} answered ${response.status}`);
  }
  const partial = response.headers.get(PARTIAL_HEADER);
  return { rows: answer as AnswerRow[], missing: partial === null ? [] : partial.split(",") };
}

function withSlash(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

/**
 * Refuses, with one line, a remote shard that serves an index of another width than this one
 * (another model); one that does not answer yet is only reported: it is asked again with every
 * query and marked missing until it answers.
 */
export async function checkRemoteShards(
  served: ServedIndex,
  warn: (line: string) => void,
): Promise<void> {
  for (const url of served.source.remoteShards ?? []) {
    let indices: unknown;
    try {
      const response = await fetch(new URL("api/indices", withSlash(url)), {
        signal: AbortSignal.timeout(5_000),
      });
      indices = await response.json();
    } catch (error) {
      warn(
        `shard ${url} of index ${served.name} does not answer (${errorMessage(error)}); its rows are missing from answers until it does`,
      );
      continue;
    }
    const first = Array.isArray(indices) ? (indices[0] as { dimensions?: unknown }) : undefined;
    if (first?.dimensions !== served.index.dimensions) {
      throw new Error(
        `shard ${url} serves ${String(first?.dimensions)}-d embeddings, index ${served.name} is ${served.index.dimensions}-d: built with another model`,
      );
    }
  }
}
