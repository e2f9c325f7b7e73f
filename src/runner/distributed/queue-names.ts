/**
 * Names in Redis: one BullMQ queue per stage, job ids, and the keys a run keeps beside its jobs.
 * Everything lives under one key prefix (`--prefix`, default "clipcrawl"), so several clusters,
 * or parallel test runs, share a Redis without meeting. A job names its dataset root; a root is
 * known in Redis by a digest of its path, so one queue serves many roots.
 */
import { createHash } from "node:crypto";
import type { RedisOptions } from "bullmq";
import type { ConfigSections } from "../../shard/stage-definition.js";

export interface QueueOptions {
  /** redis://[user:password@]host:port[/db] */
  url: string;
  /** Key prefix of every queue and key (BullMQ's `prefix`). */
  prefix: string;
}

/** What a job carries: the root every worker sees at the same path, and the shard. */
export interface ShardJobData {
  root: string;
  runId: string;
  stage: string;
  shard: string;
  /** Tries each job of this run gets (the next stage's job is added with the same). */
  attempts: number;
  /** The shard's entry of its stage's plan, made once by the coordinator (StageCall.shardPlans). */
  plan?: unknown;
  /** The run's overrides of the root's config (`run --queue … --allow-private-network`). */
  config?: ConfigSections;
  /** `run --queue … --allow-private-network`: extract's and download's jobs may reach private addresses. */
  allowPrivateNetwork?: boolean;
}

export function queueName(stage: string): string {
  return stage;
}

/** Deterministic within a run: adding a job twice (a retry, a reconcile) adds it once. */
export function jobId(runId: string, stage: string, shard: string): string {
  return `${runId}.${stage}.${shard}`;
}

export function parseJobId(
  id: string,
): { runId: string; stage: string; shard: string } | undefined {
  const match = /^(.+)\.([a-z]+)\.([^.]+)$/.exec(id);
  return match === null
    ? undefined
    : { runId: match[1] as string, stage: match[2] as string, shard: match[3] as string };
}

export function rootId(root: string): string {
  return createHash("sha256").update(root).digest("hex").slice(0, 16);
}

export function newRunId(): string {
  return `r${Date.now().toString(36)}${Math.floor(Math.random() * 1296)
    .toString(36)
    .padStart(2, "0")}`;
}

/** Keys a run keeps besides BullMQ's, under the prefix. */
export class RunKeys {
  constructor(
    readonly prefix: string,
    readonly root: string,
    readonly runId: string,
  ) {}

  /** The root's current run id: jobs of an older run are superseded. */
  static currentRun(prefix: string, root: string): string {
    return `${prefix}:clipcrawl:${rootId(root)}:run`;
  }

  get base(): string {
    return `${this.prefix}:clipcrawl:${rootId(this.root)}:${this.runId}`;
  }

  /** Every key of the run (for clean-up), as a SCAN pattern. */
  get pattern(): string {
    return `${this.base}:*`;
  }

  extractCursor(): string {
    return `${this.base}:extract:cursor`;
  }
  extractPassed(): string {
    return `${this.base}:extract:passed`;
  }
  extractResults(index: number): string {
    return `${this.base}:extract:results:${index}`;
  }
  /** The leading shards whose pairs the filter was restored with (from a saved filter). */
  extractRestored(): string {
    return `${this.base}:extract:restored`;
  }
  /** A set: the shards that offered their pairs again. */
  extractReplayed(): string {
    return `${this.base}:extract:replayed`;
  }
  /** A hash: "layers" (filters in the growing series) and "items:<layer>". */
  bloomLayers(): string {
    return `${this.base}:bloom:layers`;
  }
  bloomSegment(layer: number, segment: number): string {
    return `${this.base}:bloom:${layer}:${segment}`;
  }
}

/**
 * ioredis options for a redis:// URL; BullMQ's blocking connections need maxRetriesPerRequest null.
 * `flag` names where the URL came from in the error of a malformed one.
 */
export function redisOptions(url: string, flag = "--queue"): RedisOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`${flag}: not a URL: ${url} (expected redis://host:6379)`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new Error(`${flag}: expected a redis:// or rediss:// URL, got ${redactedUrl(url)}`);
  }
  const db = parsed.pathname.replace(/^\//, "");
  return {
    host: parsed.hostname || "127.0.0.1",
    port: parsed.port === "" ? 6379 : Number(parsed.port),
    ...(parsed.username === "" ? {} : { username: decodeURIComponent(parsed.username) }),
    ...(parsed.password === "" ? {} : { password: decodeURIComponent(parsed.password) }),
    ...(db === "" ? {} : { db: Number(db) }),
    ...(parsed.protocol === "rediss:" ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
    // Reconnect for ever, quickly at first: a Redis restart must not end a worker.
    retryStrategy: (times: number) => Math.min(100 * times, 2000),
  };
}

export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.href.replace(/\/$/, "");
  } catch {
    return url;
  }
}
