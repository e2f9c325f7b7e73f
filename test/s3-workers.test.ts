/**
 * Workers that share nothing but Redis and the store: three `clipcrawl worker` processes, each in
 * its own empty working directory with its own HOME, TMPDIR and cache, take a run whose root is an
 * s3:// prefix on s3rver and whose WAT files are http:// URLs. One worker is killed with SIGKILL
 * mid-job and the test's own Redis (no persistence) is restarted once, emptied; the coordinator
 * queues the phase again. The dataset must equal a single-process run on a local root.
 *
 * What the workers do read from this machine's disk is what every machine installs for itself:
 * the CLIP model folder and the CA certificate of the test's image web, named by the config.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { openRoot } from "../src/io/open-root.js";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { redisOptions } from "../src/runner/distributed/queue-names.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { PrivateRedis, redisSkipReason } from "./support/redis.js";
import { type PipelineWorld, pipelineOutput, pipelineWorld } from "./support/run-root.js";
import { startS3Server, type TestS3Server } from "./support/s3-server.js";
import { tempDir } from "./support/temp.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
// Resolved here: a worker's own empty working directory has no node_modules to find tsx in.
const TSX = import.meta.resolve("tsx");
const skip = await redisSkipReason();

let s3: TestS3Server;
let dir: string;
let world: PipelineWorld;
let watServer: Server;
let inputs: string[];
let reference: Record<string, unknown>;

before(async () => {
  if (skip !== undefined) return;
  s3 = await startS3Server();
  dir = await tempDir("s3-workers");
  process.env.AWS_ENDPOINT_URL = s3.endpoint;
  process.env.CLIPCRAWL_CACHE_DIR = join(dir, "coordinator-cache");
  world = await pipelineWorld(dir, { files: 3, pages: 3 });
  const files = new Map(world.inputs.map((path) => [`/${basename(path)}`, path]));
  watServer = createServer((request, response) => {
    const path = files.get(request.url ?? "");
    if (path === undefined) return response.writeHead(404).end();
    response.writeHead(200, { "content-type": "application/octet-stream" });
    createReadStream(path).pipe(response);
  });
  await new Promise<void>((resolve) => watServer.listen(0, "127.0.0.1", resolve));
  const { port } = watServer.address() as AddressInfo;
  inputs = [...files.keys()].map((name) => `http://127.0.0.1:${port}${name}`);
  const local = join(dir, "single-process");
  await world.makeRoot(local, { extract: { allowPrivateNetwork: true } });
  const summary = await runPipeline({ root: local, inputs });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  reference = await pipelineOutput(local);
});

after(async () => {
  if (skip !== undefined) return;
  await world?.close();
  await new Promise((resolve) => watServer?.close(resolve));
  await s3?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface WorkerProcess {
  name: string;
  child: ChildProcess;
  exited: Promise<void>;
}

/** A worker with nothing of its own but an empty home: no root path, no shared folder. */
async function startWorker(queue: string, prefix: string, name: string): Promise<WorkerProcess> {
  const home = join(dir, `machine-${name}`);
  for (const folder of ["cwd", "home", "tmp", "cache"]) {
    await mkdir(join(home, folder), { recursive: true });
  }
  const child = spawn(
    process.execPath,
    [
      "--import",
      TSX,
      MAIN,
      "worker",
      "--queue",
      queue,
      "--prefix",
      prefix,
      "--name",
      name,
      "--lock-seconds",
      "5",
      "--log",
      join(home, "worker.log"),
    ],
    {
      cwd: join(home, "cwd"),
      stdio: "ignore",
      env: {
        PATH: process.env.PATH,
        HOME: join(home, "home"),
        TMPDIR: join(home, "tmp"),
        CLIPCRAWL_CACHE_DIR: join(home, "cache"),
        AWS_ENDPOINT_URL: s3.endpoint,
        AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID,
        AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY,
        AWS_REGION: process.env.AWS_REGION,
      },
    },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return { name, child, exited };
}

test("three share-nothing workers on an s3:// root, one killed mid-job and Redis restarted empty: the dataset equals a single-process run", {
  skip,
  timeout: 180_000,
}, async () => {
  const redis = await PrivateRedis.start();
  const prefix = "s3w";
  const url = `s3://${s3.bucket}/distributed`;
  await world.makeRoot(url, { extract: { allowPrivateNetwork: true } });
  const storage = openRoot(url);
  const workers = await Promise.all(
    ["w1", "w2", "w3"].map((name) => startWorker(redis.url, prefix, name)),
  );
  const downloads = new Queue("download", { connection: redisOptions(redis.url), prefix });
  let killedJob: string | undefined;
  let restarted = false;
  let busy = false;
  const faults = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      if (killedJob === undefined) {
        const active = await downloads.getJobs(["active"]).catch(() => []);
        const victim = active.find((job) => job?.processedBy === "w1");
        if (victim !== undefined) {
          killedJob = victim.id;
          workers[0]?.child.kill("SIGKILL");
        }
      } else if (!restarted && (await storage.list("_state/download")).length >= 1) {
        restarted = true;
        await redis.stop();
        await new Promise((resolve) => setTimeout(resolve, 500));
        await redis.start();
      }
    } finally {
      busy = false;
    }
  }, 50);
  try {
    const summary = await runDistributed({
      root: url,
      inputs,
      queue: { url: redis.url, prefix },
      attempts: 3,
      pollMs: 200,
    });
    clearInterval(faults);
    assert.equal(summary.ok, true, JSON.stringify(summary.failed));
    assert.ok(killedJob !== undefined, "w1 was killed while it ran a download job");
    assert.equal(restarted, true, "Redis was restarted mid-run");
    assert.ok(summary.requeues >= 1, "the coordinator saw the emptied Redis and queued again");
    assert.ok(
      workers.slice(1).every((worker) => worker.child.exitCode === null),
      "the other workers outlived the restart",
    );
    for (const worker of workers.slice(1)) {
      const log = await readFile(join(dir, `machine-${worker.name}`, "worker.log"), "utf8");
      assert.match(log, /"event":"job completed"/, `${worker.name} took jobs`);
    }
    assert.deepEqual(await pipelineOutput(url), reference);
  } finally {
    clearInterval(faults);
    await downloads.close();
    for (const worker of workers) if (worker.child.exitCode === null) worker.child.kill("SIGKILL");
    await Promise.all(workers.map((worker) => worker.exited));
    await redis.stop();
  }
});
