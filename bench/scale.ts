/**
 * `npm run bench -- scale [--jobs 1000,10000,100000]`: what a distributed run costs the
 * coordinator, Redis and each job as the number of shard jobs grows (scale/run-scale.ts).
 * Targets: at the largest size, the time a job, the coordinator's peak RSS and the heap it holds
 * after a GC at most 1.2× those at the smallest.
 */
import { parseArgs } from "node:util";
import { scaleBench } from "./scale/run-scale.js";
import type { BenchRow } from "./support.js";

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: { jobs: { type: "string", default: "1000,10000,100000" } },
  });
  return scaleBench(values.jobs.split(",").map(Number));
}
