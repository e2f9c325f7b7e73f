import assert from "node:assert/strict";
import { after, test } from "node:test";
import { Queue, Worker } from "bullmq";
import { type JobOutcome, JobWatch } from "../src/runner/distributed/job-watch.js";
import { jobId, redisOptions } from "../src/runner/distributed/queue-names.js";
import { deletePrefix, REDIS_URL, redisSkipReason, uniquePrefix } from "./support/redis.js";

const skip = await redisSkipReason();
const prefixes: string[] = [];

after(async () => {
  for (const prefix of prefixes) await deletePrefix(REDIS_URL, prefix);
});

async function until(
  what: string,
  holds: () => boolean,
  ms = 10_000,
  read: () => Promise<void> = async () => {},
): Promise<void> {
  const deadline = performance.now() + ms;
  await read();
  while (!holds()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
    await read();
  }
}

test("events of jobs never watched are dropped after a while; a job watched late still ends", {
  skip,
}, async () => {
  const prefix = uniquePrefix("job-watch");
  prefixes.push(prefix);
  const connection = redisOptions(REDIS_URL);
  const runId = "run1";
  const queue = new Queue("copy", { connection, prefix });
  const queues = new Map([["copy", queue]]);
  const finished: JobOutcome[] = [];
  const watch = await JobWatch.open({
    runId,
    queues,
    connection,
    prefix,
    jobId: (stage, shard) => jobId(runId, stage, shard),
    listener: { started: () => {}, finished: (outcome) => finished.push(outcome) },
    earlyKeptMs: 300,
  });
  const worker = new Worker("copy", async (job) => ({ samples: 1, shard: job.data.shard }), {
    connection,
    prefix,
  });
  try {
    /** Adds a job and waits until a worker has done it. */
    const addAndComplete = async (shard: string) => {
      await queue.add("copy", { shard }, { jobId: jobId(runId, "copy", shard) });
      let state = "";
      await until(
        `${shard} completed`,
        () => state === "completed",
        10_000,
        async () => {
          state = await queue.getJobState(jobId(runId, "copy", shard));
        },
      );
    };
    const watchUntilFinished = async (shard: string) => {
      watch.watch({ stage: "copy", shard });
      await until(`${shard} finished`, () => finished.some((outcome) => outcome.shard === shard));
    };
    // A job of this run that ends before it is watched (a worker added it): its events wait.
    await addAndComplete("00000");
    await until("00000's events", () => watch.early === 1);
    await watchUntilFinished("00000");
    assert.equal(watch.early, 0);

    // One that is never watched (its end was read before its events came): its events go once
    // they are older than earlyKeptMs, when the next early event comes.
    await addAndComplete("00001");
    await until("00001's events", () => watch.early === 1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await addAndComplete("00002");
    await watchUntilFinished("00002");
    assert.equal(watch.early, 0, "00001's events are gone, 00002's were used");

    // A job watched after its events were dropped is found by reading its state.
    await addAndComplete("00003");
    await until("00003's events", () => watch.early === 1);
    await new Promise((resolve) => setTimeout(resolve, 400));
    await addAndComplete("00004");
    await watchUntilFinished("00004");
    assert.equal(watch.early, 0, "00003's events are gone");
    watch.watch({ stage: "copy", shard: "00003" });
    assert.equal(watch.unfinished, 1);
    await watch.untilOver({
      stop: () => false,
      everyMs: 50,
      tick: async () => {},
      requeue: async () => assert.fail("nothing is lost"),
    });
    assert.deepEqual(
      finished.map((outcome) => [outcome.shard, outcome.ok]),
      [
        ["00000", true],
        ["00002", true],
        ["00004", true],
        ["00003", true],
      ],
    );
  } finally {
    await worker.close();
    await watch.close();
    await queue.close();
  }
});
