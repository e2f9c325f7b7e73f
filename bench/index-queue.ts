/**
 * The index build on the queue (`clipcrawl run --queue`: one job an index shard, on 1 and on W
 * worker processes, then the commit in the coordinator) against one local process (`clipcrawl index`),
 * on the same vectors as `npm run bench -- index` (clustered 512-d, web-like metadata, kept in
 * bench/.data/index-N-v2/). Both builds write the index from scratch with the same settings; the
 * compressed tier's shard files must come out byte for byte the same, which the bench checks.
 *
 * Each worker builds with one thread (`index.threads` 1: W workers on W cores), the local build
 * with every core; the shared training before the jobs and the commit after them (near-duplicates
 * across shards, manifest) run in the coordinator on every core. The workers are started, and their code loaded, before the
 * clock starts. Redis is the one at --redis (the machine's), under a prefix of this run.
 *
 *   npm run bench -- index-queue [--vectors 200000] [--shard-size 100000] [--workers 2]
 *     [--tier compressed|memory] [--redis redis://127.0.0.1:6379]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { indexShards, readManifest } from "../src/formats/index/index-manifest.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { redisOptions } from "../src/runner/distributed/queue-names.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import type { IndexConfig } from "../src/stages/index/config.js";
import { indexStage } from "../src/stages/index/stage.js";
import { ensureData, indexDataFolder } from "./index.js";
import { type BenchRow, loadAverage, printTable } from "./support.js";

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      vectors: { type: "string", default: "200000" },
      "shard-size": { type: "string", default: "100000" },
      workers: { type: "string", default: String(cpus().length) },
      tier: { type: "string", default: "compressed" },
      redis: { type: "string", default: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" },
    },
  });
  if (values.tier !== "memory" && values.tier !== "compressed") {
    throw new Error(`--tier is memory or compressed, not ${values.tier}`);
  }
  const vectors = Number(values.vectors);
  const shardSize = Number(values["shard-size"]);
  const workerCount = Number(values.workers);
  const load = loadAverage;
  console.log(`${cpus().length} cores, load average at start: ${load()}`);
  const folder = await indexDataFolder(vectors);
  const root = join(folder, "root");
  await ensureData(root, folder, vectors, 1000);
  const settings: Partial<IndexConfig> = {
    tier: values.tier,
    shardSize,
    atlasPoints: 0,
    memoryBudgetMb: 1e6,
    quantization: "f32",
  };
  const clean = async () => {
    for (const path of ["index", "_state/index", "_state/index-build", "_atlas"]) {
      await rm(join(root, path), { recursive: true, force: true });
    }
  };

  await clean();
  const started = performance.now();
  const local = await buildIndex({ root, config: { ...settings, threads: cpus().length } });
  const localSeconds = (performance.now() - started) / 1000;
  if (!local.ok) throw new Error(`local build failed: ${JSON.stringify(local.failedShards)}`);
  const localFiles = await shardFileDigests(root);
  console.log(
    `local build: ${localSeconds.toFixed(1)} s (read ${local.timings.read.toFixed(1)}, graphs ${local.timings.graph.toFixed(1)}, near-duplicates ${local.timings.duplicates.toFixed(1)}, write ${local.timings.write.toFixed(1)}), ${local.duplicateGroups} groups; load ${load()}`,
  );

  const queued = async (workerCount: number) => {
    await clean();
    const prefix = `bench-index-queue-${process.pid}-${workerCount}`;
    const workers = await startWorkers(values.redis, prefix, workerCount, folder);
    let summary: Awaited<ReturnType<typeof runDistributed>>;
    const clock = performance.now();
    try {
      summary = await runDistributed({
        root,
        queue: { url: values.redis, prefix },
        pipeline: [indexStage],
        pollMs: 100,
        config: { index: { ...settings, threads: 1 } },
      });
    } finally {
      for (const worker of workers) worker.kill("SIGTERM");
      await deletePrefix(values.redis, prefix);
    }
    const seconds = (performance.now() - clock) / 1000;
    if (!summary.ok) throw new Error(`queued build failed: ${JSON.stringify(summary.failed)}`);
    const files = await shardFileDigests(root);
    const same =
      values.tier === "compressed"
        ? JSON.stringify(files) === JSON.stringify(localFiles)
        : files.length === localFiles.length;
    const steps = await commitSteps(root);
    console.log(
      `run --queue, ${workerCount} worker(s): ${seconds.toFixed(1)} s, ${summary.stages.index?.jobs} jobs (${steps}); shard files ${values.tier === "compressed" ? (same ? "identical to the local build's" : "DIFFERENT from the local build's") : "(HNSW: built by threads, not compared)"}; load ${load()}`,
    );
    if (!same) throw new Error("the queued build's shard files differ from the local build's");
    return { seconds, jobs: summary.stages.index?.jobs ?? 0 };
  };
  const one = await queued(1);
  const many = await queued(workerCount);

  const what = `index build, ${vectors.toLocaleString("en-US")} vectors, ${values.tier} tier, shards of ${shardSize.toLocaleString("en-US")} (${many.jobs} jobs)`;
  const rate = (seconds: number) => vectors / seconds;
  const rows: BenchRow[] = [
    {
      stage: `${what}: run --queue, ${workerCount} worker processes of 1 thread vs 1`,
      unit: "vectors/s",
      clipcrawl: rate(many.seconds),
      peer: { name: "1 worker process", value: rate(one.seconds) },
      ratio: one.seconds / many.seconds,
      target: "report (the same files as the local build)",
    },
    {
      stage: `${what}: run --queue, ${workerCount} worker processes of 1 thread vs one process of ${cpus().length} threads`,
      unit: "vectors/s",
      clipcrawl: rate(many.seconds),
      peer: { name: "clipcrawl index", value: rate(localSeconds) },
      ratio: localSeconds / many.seconds,
      target: "report (the same files as the local build)",
    },
  ];
  printTable([
    ["build", "seconds", "vectors/s"],
    [
      `clipcrawl index (${cpus().length} threads)`,
      localSeconds.toFixed(1),
      rate(localSeconds).toFixed(0),
    ],
    ["run --queue (1 worker)", one.seconds.toFixed(1), rate(one.seconds).toFixed(0)],
    [
      `run --queue (${workerCount} workers)`,
      many.seconds.toFixed(1),
      rate(many.seconds).toFixed(0),
    ],
  ]);
  return rows;
}

/** The commit's own timings, from the run report the run wrote. */
async function commitSteps(root: string): Promise<string> {
  const report = JSON.parse(await readFile(join(root, "_reports", "latest.json"), "utf8")) as {
    stages?: { stage: string; run?: { details?: Record<string, number> } }[];
  };
  const details = report.stages?.find((stage) => stage.stage === "index")?.run?.details;
  if (details === undefined) return "no commit details";
  return `commit ${Number(details.commitSeconds).toFixed(1)} s, of which near-duplicates across shards ${Number(details.crossShardDuplicateSeconds).toFixed(1)} s`;
}

/** Each shard graph file's name and sha256, in shard order. */
async function shardFileDigests(root: string): Promise<string[]> {
  const manifest = await readManifest(new LocalStorage(root));
  if (manifest === undefined) throw new Error("no index manifest");
  const digests: string[] = [];
  for (const shard of indexShards(manifest)) {
    for (const path of [shard.graphs.image, shard.graphs.text]) {
      const digest = createHash("sha256")
        .update(await readFile(join(root, path)))
        .digest("hex");
      digests.push(`${shard.name} ${shard.firstId} ${shard.rows} ${digest}`);
    }
  }
  return digests;
}

/** `clipcrawl worker --stages index` processes, once each has said it is ready. */
async function startWorkers(
  url: string,
  prefix: string,
  count: number,
  folder: string,
): Promise<ChildProcess[]> {
  const main = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
  const workers: ChildProcess[] = [];
  for (let index = 0; index < count; index++) {
    const log = join(folder, `${prefix}-w${index}.log`);
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        main,
        "worker",
        "--queue",
        url,
        "--prefix",
        prefix,
        "--stages",
        "index",
        "--name",
        `w${index}`,
        "--log",
        log,
      ],
      { stdio: "ignore" },
    );
    workers.push(child);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const text = await readFile(log, "utf8").catch(() => "");
      if (text.includes('"event":"worker started"')) break;
      if (Date.now() > deadline || child.exitCode !== null) {
        throw new Error(`worker w${index} did not start (log ${log})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return workers;
}

async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(redisOptions(url));
  try {
    const keys = await redis.keys(`${prefix}:*`);
    for (let at = 0; at < keys.length; at += 500) await redis.del(...keys.slice(at, at + 500));
  } finally {
    redis.disconnect();
  }
}
