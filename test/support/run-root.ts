/**
 * Dataset roots for the `clipcrawl run` tests: a few small generated WAT files, the demo's local
 * web answering for every host their image URLs name (HTTP and HTTPS, deterministic answers),
 * the tiny CLIP model, and a clipcrawl.json that points download at that web and cuts small
 * image shards, so a whole pipeline runs in seconds and has several shards in every stage.
 */
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type DemoImageServer, startDemoImageServer } from "../../src/demo/image-server.js";
import { writeWatFile } from "../../src/demo/sample/wat-generator.js";
import { generateTinyClipModel } from "../../src/demo/tiny-clip/generate.js";
import { layout } from "../../src/io/layout.js";
import { LocalStorage } from "../../src/io/local-storage.js";
import { openRoot } from "../../src/io/open-root.js";
import { readParquet } from "../../src/io/parquet.js";
import type { DatasetStorage } from "../../src/io/storage.js";
import { extract } from "../../src/stages/extract/extract.js";

export interface PipelineWorld {
  inputs: string[];
  web: DemoImageServer;
  model: string;
  certificate: string;
  /** Writes a root's clipcrawl.json for this world. */
  makeRoot(root: string, extra?: Record<string, Record<string, unknown>>): Promise<void>;
  close(): Promise<void>;
}

export async function pipelineWorld(
  dir: string,
  options: { files?: number; pages?: number; seed?: number } = {},
): Promise<PipelineWorld> {
  const inputs: string[] = [];
  for (let index = 0; index < (options.files ?? 3); index++) {
    const path = join(dir, `in-${index}.warc.wat.gz`);
    await writeWatFile(path, {
      seed: options.seed ?? 11,
      fileIndex: index,
      pages: options.pages ?? 30,
    });
    inputs.push(path);
  }
  // The web must answer for the hosts the candidates name: learn them from a scratch extract.
  const scratch = join(dir, "hosts");
  await extract({ root: scratch, inputs, config: { workers: 1 } });
  const hosts = new Set<string>();
  const storage = new LocalStorage(scratch);
  for (const name of await storage.list(layout.candidatesFolder())) {
    if (!name.endsWith(".parquet")) continue;
    for (const row of await readParquet(storage, `candidates/${name}`, ["url"])) {
      hosts.add(new URL(String(row.url)).hostname);
    }
  }
  const web = await startDemoImageServer(hosts);
  const certificate = join(dir, "web-ca.pem");
  await writeFile(certificate, web.certificatePem);
  const model = join(dir, "tiny-clip");
  await generateTinyClipModel(model);

  return {
    inputs,
    web,
    model,
    certificate,
    makeRoot: async (root, extra = {}) => {
      const config = {
        extract: { bloomCapacity: 20_000, workers: 1, ...extra.extract },
        download: {
          samplesPerShard: 12,
          allowPrivateNetwork: true,
          connectTo: web.connectTo,
          caCertificates: certificate,
          // One retry: a keep-alive connection the busy local web closes as it is reused is not
          // the image's fault (the web's answers are the same every time).
          retries: 1,
          retryBackoffSeconds: 0.1,
          timeoutSeconds: 5,
          concurrency: 16,
          ...extra.download,
        },
        embed: { model, batchSize: 16, threads: 1, preprocessWorkers: 1, ...extra.embed },
        filter: { ...extra.filter },
        index: { threads: 1, ...extra.index },
      };
      await openRoot(root).writeAtomic("clipcrawl.json", `${JSON.stringify(config, null, 2)}\n`);
    },
    close: () => web.close(),
  };
}

/** Every row of every parquet file under `folder` of the root, as JSON lines, by file. */
export async function parquetRows(
  root: string | DatasetStorage,
  folder: string,
): Promise<Record<string, string[]>> {
  const storage = openRoot(root);
  const rows: Record<string, string[]> = {};
  const names = (await storage.list(folder)).filter((name) => name.endsWith(".parquet"));
  for (const name of names.sort()) {
    rows[name] = (await readParquet(storage, `${folder}/${name}`)).map((row) =>
      JSON.stringify(row, (_, value) => (typeof value === "bigint" ? value.toString() : value)),
    );
  }
  return rows;
}

/**
 * What a finished pipeline produced, for comparing two runs: the rows of every candidate, image,
 * embedding-metadata and dataset shard (per-sample timings left out) and the bytes of every
 * tar and embedding file.
 */
export async function pipelineOutput(
  root: string | DatasetStorage,
): Promise<Record<string, unknown>> {
  const storage = openRoot(root);
  const bytes = async (folder: string, ending: string) => {
    const found: Record<string, string> = {};
    const names = await storage.list(folder);
    for (const name of names.filter((item) => item.endsWith(ending)).sort()) {
      found[name] = createHash("sha256")
        .update(await storage.read(`${folder}/${name}`))
        .digest("hex");
    }
    return found;
  };
  return {
    candidates: await parquetRows(storage, "candidates"),
    images: await parquetRows(storage, "images"),
    tars: await bytes("images", ".tar"),
    imageEmbeddings: await bytes("embeddings/img_emb", ".npy"),
    textEmbeddings: await bytes("embeddings/text_emb", ".npy"),
    metadata: await parquetRows(storage, "embeddings/metadata"),
    dataset: await parquetRows(storage, "dataset"),
  };
}
