/**
 * download → embed with the dataset root on object storage against the same on the local disk,
 * on the demo sample, in one run with the rounds interleaved.
 *
 * The store is s3rver on 127.0.0.1 (the S3-compatible server the tests start), reached through
 * the SDK with an endpoint override, as MinIO or R2 would be; the root's files that readers need
 * as paths go through the bounded local cache. Each round makes two fresh roots, one on each,
 * extracts the demo's sample WAT files into both (not timed), then times download (the demo's
 * stand-in web on 127.0.0.1, resize to 256) and embed (the tiny fixture CLIP model) on each.
 *
 *   npm run bench -- s3 [--rounds 2]
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { candidateHosts } from "../src/demo/demo.js";
import { startDemoImageServer } from "../src/demo/image-server.js";
import { ensureSampleWatFiles } from "../src/demo/sample-wat.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { generateTinyMultilingualTextModel } from "../src/demo/tiny-clip/generate-multilingual.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { openRoot } from "../src/io/open-root.js";
import { silentReporter } from "../src/shard/reporter.js";
import { downloadStage } from "../src/stages/download/stage.js";
import { embedStage } from "../src/stages/embed/stage.js";
import { extractStage } from "../src/stages/extract/stage.js";
import { startS3Server } from "../test/support/s3-server.js";
import { type BenchRow, benchDataPath, printTable } from "./support.js";

interface Timing {
  download: number;
  embed: number;
  samples: number;
  embedded: number;
}

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({ args, options: { rounds: { type: "string", default: "2" } } });
  const rounds = Number(values.rounds);
  const work = await benchDataPath("s3");
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const inputs = await ensureSampleWatFiles(new LocalStorage(join(work, "sample")));
  const model = join(work, "tiny-clip");
  const multilingualModel = join(work, "tiny-multilingual");
  await generateTinyClipModel(model);
  await generateTinyMultilingualTextModel(multilingualModel);

  const store = await startS3Server("clipcrawl-bench");
  process.env.AWS_ENDPOINT_URL = store.endpoint;
  process.env.CLIPCRAWL_CACHE_DIR = join(work, "cache");
  let web: Awaited<ReturnType<typeof startDemoImageServer>> | undefined;
  const timings: Record<"local" | "s3", Timing[]> = { local: [], s3: [] };
  try {
    for (let round = 0; round < rounds; round++) {
      for (const where of round % 2 === 0
        ? (["local", "s3"] as const)
        : (["s3", "local"] as const)) {
        const storage = openRoot(
          where === "local" ? join(work, `local-${round}`) : `s3://${store.bucket}/round-${round}`,
        );
        await extractStage.run({ storage, inputs, reporter: silentReporter });
        if (web === undefined) {
          web = await startDemoImageServer(await candidateHosts(storage));
          await writeFile(join(work, "web-ca.pem"), web.certificatePem);
        }
        const started = performance.now();
        const downloaded = await downloadStage.run({
          storage,
          reporter: silentReporter,
          config: {
            download: {
              samplesPerShard: 256,
              allowPrivateNetwork: true,
              connectTo: web.connectTo,
              caCertificates: join(work, "web-ca.pem"),
            },
          },
        });
        const downloadSeconds = (performance.now() - started) / 1000;
        const embedStarted = performance.now();
        const embedded = await embedStage.run({
          storage,
          reporter: silentReporter,
          config: { embed: { model, multilingualModel } },
        });
        if (!downloaded.ok || !embedded.ok) {
          throw new Error(
            `${where}: ${JSON.stringify([downloaded.failedShards, embedded.failedShards])}`,
          );
        }
        timings[where].push({
          download: downloadSeconds,
          embed: (performance.now() - embedStarted) / 1000,
          samples: downloaded.samples,
          embedded: embedded.samples,
        });
      }
    }
  } finally {
    await web?.close();
    await store.close();
  }

  const best = (where: "local" | "s3") =>
    timings[where].reduce((a, b) => (a.download + a.embed <= b.download + b.embed ? a : b));
  const local = best("local");
  const s3 = best("s3");
  const rate = (timing: Timing) => timing.samples / (timing.download + timing.embed);
  printTable([
    ["root", "candidates", "download s", "embedded", "embed s", "samples/s (both stages)"],
    ...(
      [
        ["local disk", local],
        ["s3rver on 127.0.0.1", s3],
      ] as const
    ).map(([name, timing]) => [
      name,
      String(timing.samples),
      timing.download.toFixed(2),
      String(timing.embedded),
      timing.embed.toFixed(2),
      rate(timing).toFixed(0),
    ]),
  ]);
  return [
    {
      stage: `download → embed on the demo sample (${local.samples} candidates), root on s3rver (best of ${rounds})`,
      unit: "samples/s",
      clipcrawl: rate(s3),
      peer: { name: "the same on the local disk", value: rate(local) },
      ratio: rate(s3) / rate(local),
      target: "none (report)",
    },
  ];
}
