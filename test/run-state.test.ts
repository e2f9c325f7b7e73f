import assert from "node:assert/strict";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { LocalStorage } from "../src/io/local-storage.js";
import {
  RUN_INPUTS_FILE,
  RUN_STATE_FILE,
  RunStateRecorder,
  readRunState,
} from "../src/runner/run-state.js";
import { tempDir } from "./support/temp.js";

const INPUTS = Array.from({ length: 1000 }, (_, index) => `/crawl/wat/${index}.warc.wat.gz`);

test("the inputs are written once to their own file, not with each rewrite of run.json", async () => {
  const root = await tempDir("run-state");
  const storage = new LocalStorage(root);
  const recorder = new RunStateRecorder(storage, { mode: "local", inputs: INPUTS, queue: null });
  await recorder.flush();
  const state = JSON.parse(await readFile(join(root, RUN_STATE_FILE), "utf8"));
  assert.equal(state.inputs, undefined, "run.json holds no inputs");
  assert.deepEqual((await readRunState(storage))?.inputs, INPUTS);

  // Later rewrites (a shard started, one finished) leave the inputs file alone.
  await rm(join(root, RUN_INPUTS_FILE));
  recorder.started("extract", ["00000"]);
  recorder.finished("extract", [{ shard: "00000", ok: false, error: "bad gzip" }]);
  await recorder.close("failed");
  assert.equal(await storage.exists(RUN_INPUTS_FILE), false);
  const closed = await readRunState(storage);
  assert.equal(closed?.status, "failed");
  assert.deepEqual(
    closed?.failed.map((item) => item.error),
    ["bad gzip"],
  );
  assert.deepEqual(closed?.inputs, [], "no inputs file reads as none");
});

test("a run.json of an older version, with its inputs inside, still gives them", async () => {
  const root = await tempDir("run-state-old");
  const old = {
    mode: "local",
    status: "finished",
    host: "h",
    pid: 1,
    startedAt: "2026-12-01T00:00:00.000Z",
    updatedAt: "2026-12-01T00:00:00.000Z",
    finishedAt: "2026-12-01T00:00:00.000Z",
    inputs: ["a.wat.gz", "b.wat.gz"],
    shards: {},
    running: [],
    failed: [],
    queue: null,
  };
  await mkdir(join(root, "_state"), { recursive: true });
  await writeFile(join(root, RUN_STATE_FILE), JSON.stringify(old));
  // A newer run's inputs file does not override what the older run.json names itself.
  await writeFile(join(root, RUN_INPUTS_FILE), JSON.stringify({ inputs: ["c.wat.gz"] }));
  assert.deepEqual((await readRunState(new LocalStorage(root)))?.inputs, old.inputs);
});

test("a write that fails leaves the inputs to the next one, which still goes", async () => {
  const root = await tempDir("run-state-fail");
  const storage = new LocalStorage(root);
  // A folder where the inputs file goes: renaming the written file onto it fails.
  await mkdir(join(root, RUN_INPUTS_FILE), { recursive: true });
  const recorder = new RunStateRecorder(storage, { mode: "local", inputs: INPUTS, queue: null });
  await assert.rejects(recorder.flush());
  assert.equal(await storage.exists(RUN_STATE_FILE), false, "no run.json without its inputs");
  await rm(join(root, RUN_INPUTS_FILE), { recursive: true });
  await recorder.close("finished");
  const state = await readRunState(storage);
  assert.equal(state?.status, "finished");
  assert.deepEqual(state?.inputs, INPUTS);
});
