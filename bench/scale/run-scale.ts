/**
 * `npm run bench -- scale`: what a distributed run costs the coordinator, Redis and each
 * job as the run grows — 1,000, 10,000 and 100,000 shard jobs (half in each of two tiny chained
 * stages, scale-stages.ts), two worker processes with 8 jobs each at once, a redis-server of its
 * own for each size (so its memory is the run's), the coordinator in a process of its own.
 *
 * Reported per size: wall ms a job (end to end, over every job), the coordinator's CPU ms a job
 * and peak RSS, the heap it holds (after a full GC) when 25, 50 and 75 % of the jobs are over,
 * and Redis's peak memory. Targets: the time a job at 100,000 within 1.2× of the figure at
 * 1,000, and coordinator memory that does not grow with finished jobs: peak RSS and held heap at
 * 100,000 within 1.2× of 1,000's. `SCALE_HEAP_SNAPSHOTS=DIR` writes the coordinator's heap
 * snapshots at those three points into DIR.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { type BenchRow, benchDataPath, loadAverage, printTable } from "../support.js";

const HERE = fileURLToPath(new URL(".", import.meta.url));
const snapshots = process.env.SCALE_HEAP_SNAPSHOTS;
const WORKERS = 2;
const CONCURRENCY = 8;

interface CoordinatorFigures {
  ok: boolean;
  jobs: number;
  wallMs: number;
  cpuMs: number;
  maxRssMb: number;
  /** Heap used after a full GC when 25, 50 and 75 % of the jobs were over. */
  heapAfterGcMb: number[];
}

export async function scaleBench(sizes: readonly number[]): Promise<BenchRow[]> {
  const work = await benchDataPath("run-scale");
  const table: (string | number)[][] = [
    [
      "jobs",
      "wall s",
      "ms a job",
      "coordinator CPU ms a job",
      "coordinator peak RSS MB",
      "coordinator heap after GC MB at 25/50/75 % of jobs",
      "Redis peak MB",
      "ok",
      "load",
    ],
  ];
  const perJob = new Map<number, number>();
  const peakRss = new Map<number, number>();
  /** The heap held at 75 % of the jobs: most finished, so what grows with them shows. */
  const heldHeap = new Map<number, number>();
  const heldHeapOverRun = new Map<number, number[]>();
  const rows: BenchRow[] = [];
  for (const jobs of sizes) {
    const figures = await runSize(work, jobs);
    const msPerJob = figures.wallMs / figures.jobs;
    perJob.set(jobs, msPerJob);
    peakRss.set(jobs, figures.maxRssMb);
    const held = figures.heapAfterGcMb.at(-1);
    if (held !== undefined) heldHeap.set(jobs, held);
    heldHeapOverRun.set(jobs, figures.heapAfterGcMb);
    table.push([
      figures.jobs,
      (figures.wallMs / 1000).toFixed(1),
      msPerJob.toFixed(2),
      (figures.cpuMs / figures.jobs).toFixed(3),
      figures.maxRssMb.toFixed(0),
      figures.heapAfterGcMb.map((mb) => mb.toFixed(1)).join(" / "),
      figures.redisPeakMb.toFixed(0),
      String(figures.ok),
      loadAverage(),
    ]);
    rows.push({
      stage: `run --queue, ${figures.jobs.toLocaleString("en")} shard jobs: time a job`,
      unit: "ms",
      clipcrawl: msPerJob,
      target: "none (see the ratio row)",
    });
  }
  printTable(table);
  const largest = sizes.at(-1) as number;
  const finishing = heapAsJobsFinish(largest, heldHeapOverRun.get(largest) ?? []);
  if (finishing !== undefined) rows.push(finishing);
  if (sizes.length > 1) {
    for (const [what, figures, unit] of [
      ["time a job", perJob, "ms"],
      ["coordinator peak RSS", peakRss, "MB"],
      ["coordinator heap after GC", heldHeap, "MB"],
    ] as const) {
      const row = largestVsSmallest(what, figures, unit, sizes);
      if (row !== undefined) rows.push(row);
    }
  }
  return rows;
}

/**
 * The issue's own memory target within one run: the heap held after a GC when 75 % of the jobs
 * are over ÷ when 25 % are, at most 1× (memory does not grow as jobs finish).
 */
function heapAsJobsFinish(jobs: number, heldMb: readonly number[]): BenchRow | undefined {
  const [early, late] = [heldMb[0], heldMb.at(-1)];
  if (early === undefined || late === undefined || heldMb.length < 2) return undefined;
  const ratio = late / early;
  console.log(
    `heap after GC at 75 % of ${jobs} jobs ÷ at 25 %: ${ratio.toFixed(2)}× (target ≤ 1×)`,
  );
  return {
    stage: `run --queue, coordinator heap after GC at 75 % of ${jobs.toLocaleString("en")} jobs vs at 25 %`,
    unit: "MB",
    clipcrawl: late,
    peer: { name: "at 25 % of the jobs", value: early },
    ratio,
    target: "≤ 1× (does not grow with finished jobs)",
    met: ratio <= 1,
  };
}

/** `what` at the largest size ÷ at the smallest, against the target of at most 1.2×. */
function largestVsSmallest(
  what: string,
  figures: ReadonlyMap<number, number>,
  unit: string,
  sizes: readonly number[],
): BenchRow | undefined {
  const [first, last] = [sizes[0] as number, sizes.at(-1) as number];
  const smallest = figures.get(first);
  const largest = figures.get(last);
  if (smallest === undefined || largest === undefined) return undefined;
  const ratio = largest / smallest;
  console.log(`${what} at ${last} jobs ÷ at ${first}: ${ratio.toFixed(2)}× (target ≤ 1.2×)`);
  return {
    stage: `run --queue, ${what} at ${last.toLocaleString("en")} jobs vs ${first.toLocaleString("en")}`,
    unit,
    clipcrawl: largest,
    peer: { name: `${first.toLocaleString("en")} jobs`, value: smallest },
    ratio,
    target: "≤ 1.2×",
    met: ratio <= 1.2,
  };
}

async function runSize(
  work: string,
  jobs: number,
): Promise<CoordinatorFigures & { redisPeakMb: number }> {
  const shards = Math.ceil(jobs / 2);
  const inputs = await ensureInputs(work, shards);
  const root = join(work, `root-${jobs}`);
  await rm(root, { recursive: true, force: true });
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const redisDir = join(work, `redis-${jobs}`);
  await rm(redisDir, { recursive: true, force: true });
  await mkdir(redisDir, { recursive: true });
  const redisServer = spawn(
    "redis-server",
    [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      redisDir,
    ],
    { stdio: "ignore" },
  );
  const workers: ChildProcess[] = [];
  try {
    await waitForRedis(url);
    const prefix = `scale${jobs}`;
    for (let index = 0; index < WORKERS; index++) {
      workers.push(await startWorker(url, prefix, `w${index}`));
    }
    const output = execFileSync(
      process.execPath,
      [
        "--expose-gc",
        "--import",
        "tsx",
        join(HERE, "scale-coordinator.ts"),
        root,
        url,
        prefix,
        inputs,
        ...(snapshots === undefined ? [] : [snapshots]),
      ],
      { encoding: "utf8", maxBuffer: 64 * 2 ** 20 },
    );
    const figures = JSON.parse(output.trim().split("\n").at(-1) ?? "{}") as CoordinatorFigures;
    const redis = new Redis(url);
    const info = await redis.info("memory");
    redis.disconnect();
    const peak = Number(/used_memory_peak:(\d+)/.exec(info)?.[1] ?? 0);
    return { ...figures, redisPeakMb: peak / 2 ** 20 };
  } finally {
    for (const worker of workers) worker.kill("SIGKILL");
    redisServer.kill("SIGKILL");
  }
}

const WRITE_BATCH = 1000;

/** `shards` tiny input files (a line of text each) and a file listing them. */
async function ensureInputs(work: string, shards: number): Promise<string> {
  const folder = join(work, `inputs-${shards}`);
  const list = join(work, `inputs-${shards}.txt`);
  await mkdir(folder, { recursive: true });
  const paths: string[] = [];
  for (let index = 0; index < shards; index++) {
    const path = join(folder, `${String(index).padStart(6, "0")}.txt`);
    paths.push(path);
  }
  // In batches: tens of thousands of files opened at once run out of file descriptors.
  for (let first = 0; first < paths.length; first += WRITE_BATCH) {
    const batch = paths.slice(first, first + WRITE_BATCH);
    await Promise.all(batch.map((path, i) => writeFile(path, `input ${first + i}\n`)));
  }
  await writeFile(list, `${paths.join("\n")}\n`);
  return list;
}

function startWorker(url: string, prefix: string, name: string): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(HERE, "scale-worker.ts"), url, prefix, String(CONCURRENCY), name],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  return new Promise((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("ready")) resolve(child);
    });
    child.once("exit", (code) => reject(new Error(`worker ${name} exited (${code})`)));
  });
}

async function waitForRedis(url: string): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    const client = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    client.on("error", () => {});
    try {
      await client.connect();
      await client.ping();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      client.disconnect();
    }
  }
  throw new Error(`redis-server did not start at ${url}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}
