/**
 * The coordinator of one scale-bench run, in a process of its own so its CPU time and peak
 * memory are its own: `clipcrawl run --queue`'s runDistributed over the bench's two tiny stages.
 * Prints one JSON line: wall ms, CPU ms, peak RSS, and the heap left after a full garbage
 * collection when 25, 50 and 75 % of the jobs are over — what it holds, without the garbage V8
 * has not collected yet (which peak RSS counts). Three collections a run, whatever its size, so
 * they barely touch its CPU time or its RSS. With SNAPSHOT_DIR, a heap snapshot is written there
 * at each of those points too (to find what a grown heap holds).
 *
 *   node --expose-gc --import tsx bench/scale/scale-coordinator.ts ROOT REDIS_URL PREFIX INPUTS_LIST [SNAPSHOT_DIR]
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { writeHeapSnapshot } from "node:v8";
import { runDistributed } from "../../src/runner/distributed/coordinator.js";
import { SCALE_PIPELINE } from "./scale-stages.js";

const [root = "", url = "", prefix = "", list = "", snapshots] = process.argv.slice(2);
const collect = (globalThis as { gc?: () => void }).gc;
if (collect === undefined) throw new Error("run with node --expose-gc");
const inputs = (await readFile(list, "utf8")).split("\n").filter((line) => line !== "");
/** Each input is one job of each of the two stages. */
const jobs = inputs.length * 2;
const points = [0.25, 0.5, 0.75];
const heapAfterGc: number[] = [];
let gcMs = 0;
const cpu = process.cpuUsage();
const started = performance.now();
const summary = await runDistributed({
  root,
  inputs,
  queue: { url, prefix },
  pipeline: SCALE_PIPELINE,
  pollMs: 500,
  observer: {
    warn: () => {},
    update: (stages) => {
      const point = points[heapAfterGc.length];
      if (point === undefined) return;
      const over = stages.reduce((sum, stage) => sum + stage.shardsDone + stage.shardsFailed, 0);
      if (over < jobs * point) return;
      const before = performance.now();
      collect();
      gcMs += performance.now() - before;
      heapAfterGc.push(process.memoryUsage().heapUsed / 2 ** 20);
      if (snapshots !== undefined) {
        writeHeapSnapshot(join(snapshots, `coordinator-${jobs}-${point}.heapsnapshot`));
      }
    },
  },
});
const wallMs = performance.now() - started;
const used = process.cpuUsage(cpu);
process.stdout.write(
  `${JSON.stringify({
    ok: summary.ok,
    jobs: Object.values(summary.stages).reduce((sum, stage) => sum + (stage?.jobs ?? 0), 0),
    wallMs,
    cpuMs: (used.user + used.system) / 1000,
    gcMs,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    heapAfterGcMb: heapAfterGc,
  })}\n`,
);
process.exit(0);
