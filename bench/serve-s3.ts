/**
 * `clipcrawl serve` with its index on an s3:// root, beside the same index on the local disk, in
 * one run: `/knn-service` with `embedding_input` queries under load (autocannon in a second
 * process, as in bench/serve.ts), the two roots taking turns.
 *
 * What differs on object storage: before every request the server lists the root's tombstones
 * (one LIST request), so that a removal is honoured from the moment `clipcrawl remove` returns
 * (docs/storage.md); the graph, the vectors and the metadata are read from the local cache as
 * they are from the disk. The store is s3rver on 127.0.0.1: a LIST here costs a loopback round
 * trip and s3rver's own work on this machine's cores, not a remote store's latency.
 *
 *   npm run bench -- serve-s3 [--vectors 20000] [--connections 16] [--seconds 10] [--rounds 2]
 */
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus, loadavg } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { openRoot } from "../src/io/open-root.js";
import { serve } from "../src/server/serve.js";
import { startS3Server } from "../test/support/s3-server.js";
import {
  clusterCentres,
  ensureIndex,
  type LoadFigures,
  mixtureVector,
  runLoadGenerator,
} from "./serve.js";
import { type BenchRow, benchDataPath, printTable } from "./support.js";

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      vectors: { type: "string", default: "20000" },
      queries: { type: "string", default: "300" },
      connections: { type: "string", default: "16" },
      seconds: { type: "string", default: "10" },
      rounds: { type: "string", default: "2" },
    },
  });
  const vectors = Number(values.vectors);
  const connections = Number(values.connections);
  const seconds = Number(values.seconds);
  const root = await benchDataPath(`serve-${vectors}`);
  await ensureIndex(root, vectors);
  const next = seededUniform(7);
  const centres = clusterCentres(seededUniform(1));
  const bodies = Array.from({ length: Number(values.queries) }, () =>
    JSON.stringify({
      embedding_input: Array.from(mixtureVector(centres, next), (value) =>
        Number(value.toFixed(6)),
      ),
      modality: "image",
      indice_name: "bench",
      num_images: 10,
    }),
  );
  const work = await benchDataPath("serve-s3");
  await rm(work, { recursive: true, force: true });
  const bodiesFile = `${work}-bodies.json`;
  await writeFile(bodiesFile, JSON.stringify(bodies));

  const store = await startS3Server("clipcrawl-bench");
  process.env.AWS_ENDPOINT_URL = store.endpoint;
  process.env.CLIPCRAWL_CACHE_DIR = join(work, "cache");
  const url = `s3://${store.bucket}/serve-${vectors}`;
  const runs: Record<"local" | "s3", LoadFigures[]> = { local: [], s3: [] };
  try {
    const remote = openRoot(url);
    const entries = await readdir(root, { recursive: true, withFileTypes: true });
    for (const entry of entries.filter((file) => file.isFile())) {
      const path = join(entry.parentPath, entry.name);
      await remote.writeAtomic(relative(root, path), await readFile(path));
    }
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const where of round % 2 === 0
        ? (["local", "s3"] as const)
        : (["s3", "local"] as const)) {
        const server = await serve({
          indices: [{ name: "bench", root: where === "local" ? root : url, model: null }],
          config: { port: 0, rateLimitPerMinute: 0 },
        });
        try {
          // Warm: the first requests fill the cache (on S3) and the page cache (both).
          for (const body of bodies.slice(0, 50)) {
            const response = await fetch(`${server.url}/knn-service`, { method: "POST", body });
            if (response.status !== 200) throw new Error(`${where}: HTTP ${response.status}`);
            await response.arrayBuffer();
          }
          runs[where].push(
            await runLoadGenerator(`${server.url}/knn-service`, bodiesFile, connections, seconds),
          );
        } finally {
          await server.close();
        }
      }
    }
  } finally {
    await store.close();
    await rm(bodiesFile, { force: true });
  }

  const best = (where: "local" | "s3") =>
    runs[where].reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
  const [one, five] = loadavg();
  console.log(
    `\nclipcrawl serve, /knn-service with embedding_input, ${vectors} × 512-d vectors, k = 10, ${connections} connections, ${seconds} s a run`,
  );
  console.log(
    `machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), load average ${one?.toFixed(1)} / ${five?.toFixed(1)} (1 / 5 min) at the end\n`,
  );
  printTable([
    ["root", "req/s (each run)", "p50 / p99 ms (best run)", "non-2xx / errors"],
    ...(["local", "s3"] as const).map((where) => [
      where === "local" ? "local disk" : "s3:// on s3rver",
      runs[where].map((run) => run.requestsPerSecond.toFixed(0)).join(", "),
      `${best(where).p50} / ${best(where).p99}`,
      runs[where].map((run) => `${run.non2xx} / ${run.errors + run.timeouts}`).join(", "),
    ]),
  ]);
  const s3 = best("s3");
  const local = best("local");
  return [
    {
      stage: `serve /knn-service on an s3:// root (s3rver; tombstones listed before each request), ${connections} connections, best of ${values.rounds}`,
      unit: "req/s",
      clipcrawl: s3.requestsPerSecond,
      peer: { name: "the same index on the local disk", value: local.requestsPerSecond },
      ratio: s3.requestsPerSecond / local.requestsPerSecond,
      target: "none (report)",
    },
    {
      stage: "serve /knn-service on an s3:// root, median latency (best run)",
      unit: "ms",
      clipcrawl: s3.p50,
      peer: { name: "the same index on the local disk", value: local.p50 },
      ratio: s3.p50 / Math.max(local.p50, 1),
      target: "none (report)",
    },
  ];
}
