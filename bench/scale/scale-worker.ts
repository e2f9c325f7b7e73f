/**
 * A worker process of the scale bench: `clipcrawl worker`'s startShardWorker over the bench's
 * two tiny stages. Runs until killed.
 *
 *   node --import tsx bench/scale/scale-worker.ts REDIS_URL PREFIX CONCURRENCY NAME
 */
import { startShardWorker } from "../../src/runner/distributed/shard-worker.js";
import { SCALE_PIPELINE } from "./scale-stages.js";

const [url = "redis://127.0.0.1:6379", prefix = "bench-scale", concurrency = "8", name = "w"] =
  process.argv.slice(2);
const worker = await startShardWorker({
  queue: { url, prefix },
  pipeline: SCALE_PIPELINE,
  concurrency: Number(concurrency),
  name,
});
process.on("SIGTERM", () => {
  worker.close().then(() => process.exit(0));
});
process.stdout.write("ready\n");
