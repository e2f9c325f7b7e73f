import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { test } from "node:test";
import { LocalStorage } from "../src/io/local-storage.js";
import type { ShardEvent, StageReporter } from "../src/shard/reporter.js";
import { type LoopShard, runShardLoop, type ShardRunner } from "../src/shard/shard-loop.js";
import { ShardSelection } from "../src/shard/shard-selection.js";
import { ShardState } from "../src/shard/shard-state.js";
import { tempDir } from "./support/temp.js";

/** A stage whose shard writes `out/NAME.txt` and fails for the names in `failing`. */
function textStage(storage: LocalStorage, failing: ReadonlySet<string> = new Set()) {
  const opened = { count: 0, closed: 0, running: 0, mostAtOnce: 0 };
  const open = async (): Promise<ShardRunner<LoopShard, number>> => {
    opened.count++;
    return {
      run: async (shard) => {
        opened.running++;
        opened.mostAtOnce = Math.max(opened.mostAtOnce, opened.running);
        try {
          await new Promise((resolve) => setImmediate(resolve));
          if (failing.has(shard.name)) throw new Error(`${shard.name} is unreadable`);
          const path = `out/${shard.name}.txt`;
          await storage.writeAtomic(path, shard.digest);
          return {
            outputs: [{ path, bytes: (await storage.stat(path))?.bytes ?? -1 }],
            counts: { rows: shard.name.length },
            samples: shard.name.length,
            passedOn: shard.name.length,
            result: shard.name.length,
          };
        } finally {
          opened.running--;
        }
      },
      close: async () => {
        opened.closed++;
      },
    };
  };
  return { opened, open };
}

function recordingReporter(): StageReporter & { events: ShardEvent[]; warnings: string[] } {
  const events: ShardEvent[] = [];
  const warnings: string[] = [];
  return {
    events,
    warnings,
    warn: (line) => warnings.push(line),
    progress: () => {},
    shardFinished: (event) => events.push(event),
  };
}

const plan = (names: string[], digest = "d1"): LoopShard[] =>
  names.map((name) => ({ name, digest }));

test("a re-run skips the shards whose marker matches and opens nothing", async () => {
  const root = await tempDir("shard-loop");
  try {
    const storage = new LocalStorage(root);
    const state = new ShardState(storage, "test");
    const run = async (digest: string) => {
      const stage = textStage(storage);
      const reporter = recordingReporter();
      let total = 0;
      const outcome = await runShardLoop({
        stage: "test",
        shards: plan(["00000", "00001", "00002"], digest),
        planned: 3,
        selection: ShardSelection.of(undefined),
        state,
        overwrite: false,
        reporter,
        progress: () => ({ counters: { rows: total } }),
        open: stage.open,
        written: (rows) => {
          total += rows;
        },
      });
      return { outcome, stage, reporter, total };
    };

    const first = await run("d1");
    assert.deepEqual(first.outcome, {
      shardsTotal: 3,
      shardsWritten: 3,
      shardsSkipped: 0,
      failedShards: [],
    });
    assert.equal(first.total, 15);
    assert.deepEqual(first.stage.opened, { count: 1, closed: 1, running: 0, mostAtOnce: 1 });
    assert.deepEqual((await state.read("00001"))?.counts, { rows: 5 });

    const second = await run("d1");
    assert.equal(second.outcome.shardsSkipped, 3);
    assert.equal(second.stage.opened.count, 0, "nothing opened when every shard is done");
    assert.deepEqual(
      second.reporter.events.map((event) => event.outcome),
      ["skipped", "skipped", "skipped"],
    );

    const changed = await run("d2");
    assert.equal(changed.outcome.shardsWritten, 3, "a changed digest redoes every shard");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a failing shard is reported with its reason and the others are written", async () => {
  const root = await tempDir("shard-loop");
  try {
    const storage = new LocalStorage(root);
    const state = new ShardState(storage, "test");
    const stage = textStage(storage, new Set(["00002"]));
    const reporter = recordingReporter();
    const outcome = await runShardLoop({
      stage: "test",
      shards: plan(["00000", "00001", "00002", "00003", "00004"]),
      planned: 5,
      selection: ShardSelection.of(["00002", "00003", "00004", "00007"]),
      state,
      overwrite: false,
      reporter,
      progress: () => ({ counters: {} }),
      open: stage.open,
      written: () => {},
      concurrency: 2,
    });
    assert.equal(outcome.shardsTotal, 4);
    assert.equal(outcome.shardsWritten, 2);
    assert.deepEqual(outcome.failedShards, [
      { shard: "00002", error: "00002 is unreadable" },
      { shard: "00007", error: "not among the 5 shards test planned (its input is missing)" },
    ]);
    assert.deepEqual(reporter.warnings, ["test shard 00002 failed: 00002 is unreadable"]);
    assert.equal(await state.read("00002"), undefined, "no marker for a failed shard");
    assert.notEqual(await state.read("00004"), undefined);
    assert.ok(stage.opened.mostAtOnce <= 2, `at most 2 at once, saw ${stage.opened.mostAtOnce}`);
    assert.equal(stage.opened.closed, 1);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
