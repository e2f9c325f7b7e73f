/**
 * The whole pipeline (`clipcrawl run`) on a generated crawl of ≥ 20,000 candidate pairs whose
 * images come from the demo's local web (HTTP and HTTPS on 127.0.0.1, deterministic answers,
 * ~40 % pictures), with the tiny CLIP model:
 *
 * - wall time and samples/s of the local runner with 1 and with 2 download workers, and the
 *   download stage's own rate in each (target: 2 workers ≥ 1.8× 1 worker);
 * - the distributed runner's per-job queue overhead: jobs that do everything a shard job does
 *   around its stage (read the root's current run, add the next stage's job, complete) but no
 *   stage work, one worker, end to end from add to completion (target < 5 ms a job);
 * - with `--distributed`, the same pipeline through Redis with two in-process workers.
 *
 * The web runs in this process and renders pictures with sharp, so it shares the cores with the
 * pipeline; on a shared machine the load average is printed with the figures.
 *
 * The coordinator's cost as a run grows is `npm run bench -- scale` (bench/scale.ts).
 *
 *   npm run bench -- run [--pairs 20000] [--samples-per-shard 1000] [--jobs 2000]
 *     [--redis redis://127.0.0.1:6379] [--distributed] [--only local,queue]
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { startDemoImageServer } from "../src/demo/image-server.js";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { RunKeys, redisOptions } from "../src/runner/distributed/queue-names.js";
import { jobOptions, startShardWorker } from "../src/runner/distributed/shard-worker.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { extract } from "../src/stages/extract/extract.js";
import { type BenchRow, benchDataPath, printTable } from "./support.js";

/** Candidate pairs a generated page yields, about (seed 7: 13,868 from 400 pages). */
const PAIRS_PER_PAGE = 34;
const PAGES_PER_FILE = 100;

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      pairs: { type: "string", default: "20000" },
      "samples-per-shard": { type: "string", default: "1000" },
      jobs: { type: "string", default: "2000" },
      redis: { type: "string", default: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" },
      distributed: { type: "boolean", default: false },
      only: { type: "string", default: "local,queue" },
    },
    allowPositionals: true,
  });
  const only = new Set(values.only.split(","));
  const load = () =>
    loadavg()
      .map((value) => value.toFixed(2))
      .join(" ");
  console.log(`machine: ${cpus().length} cores, load average ${load()}`);

  const headline: BenchRow[] = [];
  if (only.has("queue")) headline.push(await queueOverhead(values.redis, Number(values.jobs)));
  if (!only.has("local") && !values.distributed) return headline;

  const work = await benchDataPath("run");
  const pages = Math.ceil(Number(values.pairs) / PAIRS_PER_PAGE);
  const inputs = await sampleCrawl(work, pages);
  const model = join(work, "tiny-clip");
  await generateTinyClipModel(model);
  // The web answers for the hosts the candidates name: learn them from one extract.
  const hostsRoot = join(work, "hosts");
  await rm(hostsRoot, { recursive: true, force: true });
  const extracted = await extract({ root: hostsRoot, inputs });
  const hosts = await candidateHosts(hostsRoot);
  const web = await startDemoImageServer(hosts);
  const certificate = join(work, "web-ca.pem");
  await writeFile(certificate, web.certificatePem);
  console.log(
    `sample: ${inputs.length} WAT files, ${extracted.totals.kept} candidate pairs, ${hosts.size} hosts; ${values["samples-per-shard"]} samples a shard`,
  );

  const makeRoot = async (name: string) => {
    const root = join(work, name);
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    const config = {
      download: {
        samplesPerShard: Number(values["samples-per-shard"]),
        allowPrivateNetwork: true,
        connectTo: web.connectTo,
        caCertificates: certificate,
        retries: 0,
      },
      embed: { model },
    };
    await writeFile(join(root, "clipcrawl.json"), `${JSON.stringify(config, null, 2)}\n`);
    return root;
  };

  try {
    const rows: (string | number)[][] = [
      ["runner", "wall s", "pairs/s", "download s", "download samples/s", "CPU busy", "ok", "load"],
    ];
    const rates: number[] = [];
    if (only.has("local")) {
      for (const workers of [1, 2]) {
        const root = await makeRoot(`local-${workers}`);
        const started = performance.now();
        const cpu = process.cpuUsage();
        const summary = await runPipeline({ root, inputs, workers });
        const wall = (performance.now() - started) / 1000;
        const busy = cpuBusy(cpu, wall);
        const download = summary.stages.download;
        const downloadRate = download.samples / Math.max(download.seconds, 0.001);
        rates.push(downloadRate);
        rows.push([
          `local, ${workers} download worker${workers === 1 ? "" : "s"}`,
          wall.toFixed(1),
          (extracted.totals.kept / wall).toFixed(0),
          download.seconds.toFixed(1),
          downloadRate.toFixed(0),
          busy,
          String(summary.ok),
          load(),
        ]);
      }
    }
    if (values.distributed) {
      const prefix = `bench-run-${Date.now().toString(36)}`;
      const queue = { url: values.redis, prefix };
      const workers = await Promise.all(
        ["a", "b"].map((name) => startShardWorker({ queue, name: `bench-${name}` })),
      );
      try {
        const root = await makeRoot("distributed-2");
        const started = performance.now();
        const cpu = process.cpuUsage();
        const summary = await runDistributed({ root, inputs, queue, pollMs: 200 });
        const wall = (performance.now() - started) / 1000;
        const busy = cpuBusy(cpu, wall);
        rows.push([
          "distributed, 2 workers",
          wall.toFixed(1),
          (extracted.totals.kept / wall).toFixed(0),
          "",
          "",
          busy,
          String(summary.ok),
          load(),
        ]);
      } finally {
        await Promise.all(workers.map((worker) => worker.close()));
        await deletePrefix(values.redis, prefix);
      }
    }
    printTable(rows);
    if (rates.length === 2) {
      const speedup = (rates[1] as number) / Math.max(rates[0] as number, 0.001);
      console.log(
        `download stage, 2 workers vs 1: ${speedup.toFixed(2)}× (target ≥ 1.8×; ${cpus().length} cores, the web on the same cores)`,
      );
      headline.push({
        stage: "run, download stage with 2 workers",
        unit: "samples/s",
        clipcrawl: rates[1] as number,
        peer: { name: "1 worker", value: rates[0] as number },
        ratio: speedup,
        target: "≥ 1.8× 1 worker",
        met: speedup >= 1.8,
      });
    }
  } finally {
    await web.close();
  }
  return headline;
}

/**
 * The share of the machine's cores this process kept busy (the runner, sharp's threads and the
 * web it downloads from all run in it): near 100 % with one worker means the cores, not the
 * workers, bound the download stage.
 */
function cpuBusy(since: NodeJS.CpuUsage, wallSeconds: number): string {
  const used = process.cpuUsage(since);
  const share = (used.user + used.system) / 1e6 / (wallSeconds * cpus().length);
  return `${(share * 100).toFixed(0)} %`;
}

/** Generated WAT files with about `pages` pages in all, written once. */
async function sampleCrawl(work: string, pages: number): Promise<string[]> {
  const files = Math.max(1, Math.ceil(pages / PAGES_PER_FILE));
  const inputs: string[] = [];
  for (let index = 0; index < files; index++) {
    const path = join(work, "crawl", `bench-${pages}-${index}.warc.wat.gz`);
    await mkdir(join(work, "crawl"), { recursive: true });
    const { existsSync } = await import("node:fs");
    if (!existsSync(path)) {
      await writeWatFile(path, {
        seed: 7,
        fileIndex: index,
        pages: Math.ceil(pages / files),
      });
    }
    inputs.push(path);
  }
  return inputs;
}

async function candidateHosts(root: string): Promise<Set<string>> {
  const storage = new LocalStorage(root);
  const hosts = new Set<string>();
  for (const name of await storage.list(layout.candidatesFolder())) {
    if (!name.endsWith(".parquet")) continue;
    for (const row of await readParquet(storage, `candidates/${name}`, ["url"])) {
      hosts.add(new URL(String(row.url)).hostname);
    }
  }
  return hosts;
}

/**
 * What the distributed runner adds per job, without any stage work: the job is added, taken by a
 * worker (one, concurrency 1, as a shard job is), its processor reads the root's current run and
 * adds the next stage's job, and the job completes. Measured over `count` jobs end to end.
 */
async function queueOverhead(url: string, count: number): Promise<BenchRow> {
  const prefix = `bench-queue-${Date.now().toString(36)}`;
  const connection = redisOptions(url);
  const redis = new Redis(connection);
  const first = new Queue("download", { connection, prefix });
  const next = new Queue("embed", { connection, prefix });
  const root = "/bench/root";
  await redis.set(RunKeys.currentRun(prefix, root), "r1");
  let completed = 0;
  let finish: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const worker = new Worker(
    "download",
    async (job) => {
      await redis.get(RunKeys.currentRun(prefix, root));
      await next.add(
        "embed",
        { ...job.data, stage: "embed" },
        jobOptions("r1", "embed", job.data.shard, 3),
      );
      return { samples: 0, successes: 0, skipped: 0, seconds: 0 };
    },
    { connection, prefix, concurrency: 1, lockDuration: 30_000, autorun: false },
  );
  // Queue every job first (one bulk add, as the coordinator does), then let the worker at them.
  const jobs = Array.from({ length: count }, (_, index) => {
    const shard = String(index).padStart(5, "0");
    return {
      name: "download",
      data: { root, runId: "r1", stage: "download", shard, attempts: 3 },
      opts: jobOptions("r1", "download", shard, 3),
    };
  });
  let started = performance.now();
  for (let at = 0; at < jobs.length; at += 1000) await first.addBulk(jobs.slice(at, at + 1000));
  const perAdd = (performance.now() - started) / count;
  worker.on("completed", () => {
    completed++;
    if (completed === count) finish();
  });
  started = performance.now();
  worker.run().catch(() => {});
  await done;
  const perJob = (performance.now() - started) / count;
  await worker.close();
  await Promise.all([first.close(), next.close()]);
  redis.disconnect();
  await deletePrefix(url, prefix);
  console.log(
    `queue overhead: ${perJob.toFixed(2)} ms a job over ${count} jobs (take, current-run check, next job added, complete; one worker, one at a time) — target < 5 ms; queueing: ${perAdd.toFixed(2)} ms a job (bulk)`,
  );
  return {
    stage: "run --queue, overhead a shard job (Redis)",
    unit: "ms",
    clipcrawl: perJob,
    target: "< 5 ms a job",
    met: perJob < 5,
  };
}

async function deletePrefix(url: string, prefix: string): Promise<void> {
  const redis = new Redis(redisOptions(url));
  let cursor = "0";
  do {
    const [nextCursor, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = nextCursor;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
  redis.disconnect();
}
