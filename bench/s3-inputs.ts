/**
 * extract reading its WAT file from S3 against the same file on the local disk, in one run with
 * the rounds interleaved: one web-caption WAT file (bench/README.md), one worker, each run a
 * `clipcrawl extract` process of its own so that its peak RSS is its own. The store is s3rver on
 * 127.0.0.1 reached through `--s3-endpoint`, as MinIO would be; the object is streamed
 * (io/s3-objects.ts), never copied to disk, so memory must not grow with the file.
 *
 *   npm run bench -- s3-inputs [--size-mb 120] [--rounds 2]
 */
import { spawnSync } from "node:child_process";
import { copyFile, readFile, rm } from "node:fs/promises";
import { parseArgs } from "node:util";
import { writeWatFile } from "../src/demo/sample/wat-generator.js";
import { openRoot } from "../src/io/open-root.js";
import { startS3Server } from "../test/support/s3-server.js";
import { type BenchRow, benchDataPath, fileBytes, megabytes, printTable } from "./support.js";

const MIB = 1024 * 1024;
const CLI = new URL("../src/cli/main.ts", import.meta.url).pathname;
const MAX_RSS = new URL("../test/support/max-rss.ts", import.meta.url).pathname;

interface Timing {
  seconds: number;
  rssBytes: number;
}

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      "size-mb": { type: "string", default: "120" },
      rounds: { type: "string", default: "2" },
    },
  });
  const sizeMb = Number(values["size-mb"]);
  const rounds = Number(values.rounds);
  const name = `web-${sizeMb}mb.warc.wat.gz`;
  const file = await benchDataPath(name);
  if ((await fileBytes(file)) === undefined) {
    console.log(`generating ${name} (${sizeMb} MiB, once; kept in bench/.data/)`);
    await writeWatFile(file, { seed: 1, minBytes: sizeMb * MIB, captions: "web" });
  }
  const bytes = (await fileBytes(file)) ?? 0;

  const store = await startS3Server("clipcrawl-bench-inputs");
  const timings: Record<"local" | "s3", Timing[]> = { local: [], s3: [] };
  try {
    process.env.AWS_ENDPOINT_URL = store.endpoint;
    await openRoot(`s3://${store.bucket}`).writeAtomicWith(`wat/${name}`, (local) =>
      copyFile(file, local),
    );
    delete process.env.AWS_ENDPOINT_URL;
    const inputs = { local: file, s3: `s3://${store.bucket}/wat/${name}` };
    for (let round = 0; round < rounds; round++) {
      for (const where of round % 2 === 0
        ? (["local", "s3"] as const)
        : (["s3", "local"] as const)) {
        timings[where].push(await runExtract(inputs[where], store.endpoint));
      }
    }
  } finally {
    await store.close();
  }

  const best = (where: "local" | "s3") =>
    timings[where].reduce((a, b) => (a.seconds <= b.seconds ? a : b));
  const peakRss = (where: "local" | "s3") => Math.max(...timings[where].map((t) => t.rssBytes));
  const local = best("local");
  const s3 = best("s3");
  const rate = (timing: Timing) => megabytes(bytes) / timing.seconds;
  printTable([
    ["input", "MB", "seconds (best)", "MB/s compressed", "peak RSS MiB (worst)"],
    ...(
      [
        ["local disk", "local"],
        ["s3rver on 127.0.0.1", "s3"],
      ] as const
    ).map(([label, where]) => [
      label,
      megabytes(bytes).toFixed(0),
      best(where).seconds.toFixed(2),
      rate(best(where)).toFixed(1),
      (peakRss(where) / MIB).toFixed(0),
    ]),
  ]);
  return [
    {
      stage: `extract, 1 worker, ${megabytes(bytes).toFixed(0)} MB WAT read from s3rver (best of ${rounds}, a process each; peak RSS ${(peakRss("s3") / MIB).toFixed(0)} MiB against ${(peakRss("local") / MIB).toFixed(0)} MiB)`,
      unit: "MB/s",
      clipcrawl: rate(s3),
      peer: { name: "the same file on the local disk", value: rate(local) },
      ratio: rate(s3) / rate(local),
      target: "none (report)",
    },
  ];
}

/** One `clipcrawl extract` process on a fresh root: its wall seconds and peak RSS. */
async function runExtract(input: string, endpoint: string): Promise<Timing> {
  const root = await benchDataPath("s3-inputs-root");
  const rssFile = await benchDataPath("s3-inputs-rss");
  await rm(root, { recursive: true, force: true });
  const started = performance.now();
  const result = spawnSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "--import",
      MAX_RSS,
      CLI,
      "extract",
      input,
      "--root",
      root,
      "--workers",
      "1",
      "--s3-endpoint",
      endpoint,
      "--json",
    ],
    {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, CLIPCRAWL_MAX_RSS_FILE: rssFile },
    },
  );
  const seconds = (performance.now() - started) / 1000;
  await rm(root, { recursive: true, force: true });
  if (result.status !== 0) throw new Error(`extract ${input} exited with ${result.status}`);
  return { seconds, rssBytes: Number(await readFile(rssFile, "utf8")) };
}
