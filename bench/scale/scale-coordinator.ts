/**
 * The coordinator of one scale-bench run, in a process of its own so its CPU time and peak
 * memory are its own: `clipcrawl run --queue`'s runDistributed over the bench's two tiny stages.
 * Prints one JSON line: wall ms, CPU ms, peak RSS, and heap samples taken while it ran.
 *
 *   node --import tsx bench/scale/scale-coordinator.ts ROOT REDIS_URL PREFIX INPUTS_LIST
 */
import { readFile } from "node:fs/promises";
import { runDistributed } from "../../src/runner/distributed/coordinator.js";
import { SCALE_PIPELINE } from "./scale-stages.js";

const [root = "", url = "", prefix = "", list = ""] = process.argv.slice(2);
const inputs = (await readFile(list, "utf8")).split("\n").filter((line) => line !== "");
const heap: number[] = [];
const sampler = setInterval(() => heap.push(process.memoryUsage().heapUsed), 1000);
const cpu = process.cpuUsage();
const started = performance.now();
const summary = await runDistributed({
  root,
  inputs,
  queue: { url, prefix },
  pipeline: SCALE_PIPELINE,
  pollMs: 500,
});
const wallMs = performance.now() - started;
clearInterval(sampler);
const used = process.cpuUsage(cpu);
process.stdout.write(
  `${JSON.stringify({
    ok: summary.ok,
    jobs: Object.values(summary.stages).reduce((sum, stage) => sum + (stage?.jobs ?? 0), 0),
    wallMs,
    cpuMs: (used.user + used.system) / 1000,
    maxRssMb: process.resourceUsage().maxRSS / 1024,
    heapMb: heap.map((bytes) => bytes / 2 ** 20),
  })}\n`,
);
process.exit(0);
