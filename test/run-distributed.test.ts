import assert from "node:assert/strict";
import { existsSync, readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { Queue } from "bullmq";
import { runDistributed } from "../src/runner/distributed/coordinator.js";
import { startDashboard } from "../src/runner/distributed/dashboard.js";
import { jobId, redisOptions } from "../src/runner/distributed/queue-names.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { runStatus } from "../src/runner/run-status.js";
import { runCli } from "./support/cli.js";
import {
  logEvents,
  startWorker as startQueueWorker,
  stopWorkers,
  type WorkerProcess,
} from "./support/queue-workers.js";
import {
  deletePrefix,
  PrivateRedis,
  REDIS_URL,
  redisSkipReason,
  uniquePrefix,
} from "./support/redis.js";
import { type PipelineWorld, pipelineOutput, pipelineWorld } from "./support/run-root.js";
import { tempDir } from "./support/temp.js";

const skip = await redisSkipReason();

let dir: string;
let world: PipelineWorld;
let reference: Record<string, unknown>;
const prefixes: string[] = [];

before(async () => {
  if (skip !== undefined) return;
  dir = await tempDir("run-distributed");
  world = await pipelineWorld(dir, { files: 3, pages: 3 });
  const root = join(dir, "single-process");
  await world.makeRoot(root);
  const summary = await runPipeline({ root, inputs: world.inputs });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  reference = await pipelineOutput(root);
});

after(async () => {
  if (skip !== undefined) return;
  await world?.close();
  for (const prefix of prefixes) await deletePrefix(REDIS_URL, prefix);
});

function startWorker(
  url: string,
  prefix: string,
  name: string,
  args: string[] = [],
): WorkerProcess {
  return startQueueWorker(dir, url, prefix, name, args);
}

const markers = (root: string, stage: string) =>
  existsSync(join(root, "_state", stage))
    ? readdirSync(join(root, "_state", stage)).filter((name) => name.endsWith(".json")).length
    : 0;

test("three workers, one killed mid-job: its job is retried elsewhere and the dataset equals a single-process run", {
  skip,
  timeout: 600_000,
}, async () => {
  const prefix = uniquePrefix("three");
  prefixes.push(prefix);
  const root = join(dir, "three-workers");
  await world.makeRoot(root);
  const workers = ["w1", "w2", "w3"].map((name) => startWorker(REDIS_URL, prefix, name));
  const downloads = new Queue("download", { connection: redisOptions(REDIS_URL), prefix });
  let killedJob: string | undefined;
  const killer = setInterval(async () => {
    if (killedJob !== undefined) return;
    const active = await downloads.getJobs(["active"]).catch(() => []);
    const victim = active.find((job) => job?.processedBy === "w1");
    if (victim !== undefined && killedJob === undefined) {
      killedJob = victim.id;
      workers[0]?.child.kill("SIGKILL");
    }
  }, 50);
  try {
    const summary = await runDistributed({
      root,
      inputs: world.inputs,
      queue: { url: REDIS_URL, prefix },
      attempts: 3,
      pollMs: 200,
    });
    clearInterval(killer);
    assert.equal(summary.ok, true, JSON.stringify(summary.failed));
    assert.ok(killedJob !== undefined, "w1 was killed while it ran a download job");
    const retried = await downloads.getJob(killedJob);
    assert.equal(await retried?.getState(), "completed");
    assert.notEqual(retried?.processedBy, "w1", "another worker finished the killed worker's job");
    for (const worker of workers.slice(1)) {
      const events = await logEvents(worker);
      assert.ok(
        events.some((event) => event.event === "job completed"),
        `${worker.name} took jobs`,
      );
    }
    assert.deepEqual(await pipelineOutput(root), reference);
  } finally {
    clearInterval(killer);
    await downloads.close();
    await stopWorkers(workers);
  }
});

test("Redis restarted (and emptied) mid-run: workers reconnect, the coordinator queues again, the run completes", {
  skip,
  timeout: 600_000,
}, async () => {
  const redis = await PrivateRedis.start();
  const prefix = uniquePrefix("restart");
  const root = join(dir, "redis-restart");
  await world.makeRoot(root);
  const workers = ["r1", "r2"].map((name) => startWorker(redis.url, prefix, name));
  let restarted = false;
  const restarter = setInterval(async () => {
    if (restarted || markers(root, "download") < 1) return;
    restarted = true;
    await redis.stop();
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await redis.start();
  }, 50);
  try {
    const summary = await runDistributed({
      root,
      inputs: world.inputs,
      queue: { url: redis.url, prefix },
      attempts: 3,
      pollMs: 200,
    });
    clearInterval(restarter);
    assert.equal(restarted, true);
    assert.equal(summary.ok, true, JSON.stringify(summary.failed));
    assert.ok(summary.requeues >= 1, "the coordinator saw the emptied Redis");
    assert.ok(
      workers.every((worker) => worker.child.exitCode === null),
      "the workers outlived the restart",
    );
    assert.deepEqual(await pipelineOutput(root), reference);
  } finally {
    clearInterval(restarter);
    await stopWorkers(workers);
    await redis.stop();
  }
});

test("a poison input fails its job (reason in status and in clipcrawl status), not the worker; the rest completes", {
  skip,
  timeout: 600_000,
}, async () => {
  const prefix = uniquePrefix("poison");
  prefixes.push(prefix);
  const root = join(dir, "poison");
  await world.makeRoot(root);
  const poison = join(dir, "poison.warc.wat.gz");
  await writeFile(poison, "this is not a gzip file at all\n");
  const workers = [startWorker(REDIS_URL, prefix, "p1")];
  try {
    const inputs = [world.inputs[0] as string, poison];
    const summary = await runDistributed({
      root,
      inputs,
      queue: { url: REDIS_URL, prefix },
      attempts: 2,
      pollMs: 200,
    });
    assert.equal(summary.ok, false);
    assert.deepEqual(
      summary.failed.map((failed) => [failed.stage, failed.shard]),
      [["extract", "00001"]],
    );
    assert.match(summary.failed[0]?.error ?? "", /poison\.warc\.wat\.gz/);
    assert.ok(summary.stages.filter.completed >= 1, "the other shards went through");
    assert.equal(workers[0]?.child.exitCode, null, "the worker is still running");

    const extractQueue = new Queue("extract", { connection: redisOptions(REDIS_URL), prefix });
    const failedJob = await extractQueue.getJob(jobId(summary.runId, "extract", "00001"));
    assert.equal(failedJob?.attemptsMade, 2);
    await extractQueue.close();

    const status = await runStatus(root);
    assert.equal(status.run?.mode, "distributed");
    const extractStatus = status.stages.find((stage) => stage.stage === "extract");
    assert.match(extractStatus?.failed[0]?.error ?? "", /poison/);
    const text = await runCli(["status", root]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /last run: distributed/);
    assert.match(text.stdout, /failed 00001 after 2 tries: .*poison/);
  } finally {
    await stopWorkers(workers);
  }
});

test("the dashboard lists the stage queues and their jobs", { skip }, async () => {
  const prefix = uniquePrefix("dashboard");
  prefixes.push(prefix);
  const queue = new Queue("download", { connection: redisOptions(REDIS_URL), prefix });
  await queue.add("download", { root: "/data", runId: "r1", stage: "download", shard: "00000" });
  const dashboard = await startDashboard({ queue: { url: REDIS_URL, prefix }, port: 0 });
  try {
    const page = await fetch(dashboard.url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const api = await fetch(new URL("api/queues", dashboard.url));
    assert.equal(api.status, 200);
    const body = (await api.json()) as { queues: { name: string; counts: { waiting: number } }[] };
    const names = body.queues.map((item) => item.name).sort();
    assert.deepEqual(names, ["download", "embed", "extract", "filter", "index"]);
    assert.equal(body.queues.find((item) => item.name === "download")?.counts.waiting, 1);
  } finally {
    await dashboard.close();
    await queue.close();
  }
});
