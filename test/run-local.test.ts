import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { LocalStorage } from "../src/io/local-storage.js";
import { runPipeline } from "../src/runner/local-runner.js";
import { readRunState } from "../src/runner/run-state.js";
import { runStatus } from "../src/runner/run-status.js";
import { runCli } from "./support/cli.js";
import { type PipelineWorld, pipelineOutput, pipelineWorld } from "./support/run-root.js";
import { tempDir } from "./support/temp.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));

let dir: string;
let world: PipelineWorld;
let reference: Record<string, unknown>;
let referenceRoot: string;

before(async () => {
  dir = await tempDir("run-local");
  world = await pipelineWorld(dir, { files: 3, pages: 3 });
  referenceRoot = join(dir, "reference");
  await world.makeRoot(referenceRoot);
  const summary = await runPipeline({ root: referenceRoot, inputs: world.inputs });
  assert.equal(summary.ok, true, JSON.stringify(summary.failed));
  reference = await pipelineOutput(referenceRoot);
});

after(async () => {
  await world?.close();
});

const markers = (root: string, stage: string) =>
  existsSync(join(root, "_state", stage))
    ? readdirSync(join(root, "_state", stage)).filter((name) => name.endsWith(".json")).length
    : 0;

/** Starts `clipcrawl run` and sends `signal` once `when` sees the root in a given state. */
function runUntil(
  args: string[],
  when: () => boolean,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; stopped: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, "run", ...args], {
      stdio: "ignore",
    });
    let stopped = false;
    const poll = setInterval(() => {
      if (!stopped && when()) {
        stopped = true;
        child.kill(signal);
      }
    }, 20);
    const timer = setTimeout(() => child.kill("SIGKILL"), 300_000);
    child.on("error", reject);
    child.on("exit", (code, exitSignal) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, signal: exitSignal, stopped });
    });
  });
}

test("a run takes the WAT files through every stage, with a log, a run state file and a clean status", async () => {
  const stages = ["candidates", "images", "tars", "imageEmbeddings", "metadata", "dataset"];
  for (const stage of stages) {
    const files = Object.keys(reference[stage] as object);
    assert.ok(files.length >= 2, `${stage}: ${files.length} files`);
  }
  const state = await readRunState(new LocalStorage(referenceRoot));
  assert.equal(state?.status, "finished");
  assert.deepEqual(state?.failed, []);
  const log = await readFile(join(referenceRoot, "_logs/run.log"), "utf8");
  const events = log
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { event: string; stage?: string });
  for (const stage of ["download", "embed", "filter", "index"]) {
    assert.ok(
      events.some((event) => event.event === "batch finished" && event.stage === stage),
      `the log records ${stage} batches`,
    );
  }
  const status = await runStatus(referenceRoot);
  assert.equal(status.run?.status, "finished");
  for (const stage of status.stages) {
    assert.equal(stage.failed.length, 0, stage.stage);
    assert.equal(stage.done, stage.shards, `${stage.stage}: every planned shard is done`);
  }
});

test("kill -9 at several points, then a re-run: the output is identical to an uninterrupted run", async () => {
  const killPoints: [string, (root: string) => boolean][] = [
    ["after extract", (root) => markers(root, "extract") === 3],
    ["mid-download, with a shard embedded", (root) => markers(root, "embed") >= 1],
    ["mid-filter", (root) => markers(root, "filter") >= 2],
  ];
  for (const [name, reached] of killPoints) {
    const root = join(dir, `killed-${name.replaceAll(" ", "-")}`);
    await world.makeRoot(root);
    const outcome = await runUntil(
      [...world.inputs, "--root", root],
      () => reached(root),
      "SIGKILL",
    );
    assert.equal(outcome.signal, "SIGKILL", `the run was killed ${name}`);
    const interrupted = await runStatus(root);
    assert.equal(interrupted.run?.status, "interrupted", `status after a kill ${name}`);

    // No inputs: the re-run reads the killed run's from the run state file.
    const resumed = await runPipeline({ root });
    assert.equal(resumed.ok, true, `${name}: ${JSON.stringify(resumed.failed)}`);
    assert.deepEqual(await pipelineOutput(root), reference, `killed ${name}, then resumed`);
  }
});

test("Ctrl-C stops the run cleanly (exit 130, status interrupted) and the next run finishes it", async () => {
  const root = join(dir, "interrupted");
  await world.makeRoot(root);
  const outcome = await runUntil(
    [...world.inputs, "--root", root],
    () => markers(root, "download") >= 1,
    "SIGINT",
  );
  assert.equal(outcome.code, 130);
  const status = await runStatus(root);
  assert.equal(status.run?.status, "interrupted");
  assert.ok(
    (status.stages.find((stage) => stage.stage === "download")?.done ?? 0) >= 1,
    "the shards that finished are done",
  );

  const cli = await runCli(["run", "--root", root, "--json"], { timeoutMs: 300_000 });
  assert.equal(cli.code, 0, cli.stderr);
  assert.equal(JSON.parse(cli.stdout).ok, true);
  assert.deepEqual(await pipelineOutput(root), reference);

  const text = await runCli(["status", root]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /last run: local, finished/);
  assert.match(text.stdout, /filter\s+\d+\/\d+ done/);
});

test("a shard that fails is reported by the run and by status, with its reason", async () => {
  const root = join(dir, "failing");
  // Every shard's model is missing: embed fails each one, with the reason.
  await world.makeRoot(root, { embed: { model: join(dir, "no-such-model") } });
  const summary = await runPipeline({ root, inputs: world.inputs.slice(0, 1) });
  assert.equal(summary.ok, false);
  assert.ok(summary.failed.some((failed) => failed.stage === "embed"));
  const status = await runStatus(root);
  assert.equal(status.run?.status, "failed");
  const embed = status.stages.find((stage) => stage.stage === "embed");
  assert.ok((embed?.failed.length ?? 0) > 0);
  assert.match(embed?.failed[0]?.error ?? "", /no-such-model/);
  const text = await runCli(["status", "--root", root]);
  assert.match(text.stdout, /embed .* failed/);
  assert.match(text.stdout, /no-such-model/);
});

test("run --allow-private-network reads WAT URLs on a private address (a local mirror); without it, the run names that flag", async () => {
  const mirror = createServer((request, response) => {
    readFile(join(dir, (request.url ?? "/").slice(1))).then(
      (bytes) => response.end(bytes),
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((listening) => mirror.listen(0, "127.0.0.1", listening));
  const url = `http://127.0.0.1:${(mirror.address() as AddressInfo).port}/in-0.warc.wat.gz`;
  try {
    const refusedRoot = join(dir, "mirror-refused");
    await world.makeRoot(refusedRoot);
    const refused = await runCli(["run", url, "--root", refusedRoot]);
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr.split("\n")[0],
      `${url}: private address 127.0.0.1 refused (loopback; --allow-private-network allows it)`,
    );
    const allowedRoot = join(dir, "mirror-allowed");
    await world.makeRoot(allowedRoot);
    const allowed = await runCli(["run", url, "--root", allowedRoot, "--allow-private-network"], {
      timeoutMs: 300_000,
    });
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.ok(markers(allowedRoot, "filter") >= 1, "the mirror's WAT went through the stages");
  } finally {
    mirror.close();
  }
});
