import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { initRoot } from "../src/config/init-root.js";
import {
  renderShapeImage,
  type ShapeColour,
  type ShapeName,
} from "../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { readTarEntries } from "../src/io/tar-reader.js";
import { download } from "../src/stages/download/download.js";
import { embed } from "../src/stages/embed/embed.js";
import { filter } from "../src/stages/filter/filter.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { subset } from "../src/stages/subset/subset.js";
import { runCli } from "./support/cli.js";
import { type GeneratedSample, writeDatasetRoot } from "./support/dataset-root.js";
import { tempDir } from "./support/temp.js";

let work: string;
let root: string;
let samples: GeneratedSample[];

before(async () => {
  work = await tempDir("subset");
  root = join(work, "root");
  samples = await writeDatasetRoot(root, { shards: 3, perShard: 20 });
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

const punsafe = (sample: GeneratedSample) => (sample.n % 10) / 10;

test("--where selects the dataset's rows: url, caption and the chosen columns, in parquet, CSV and JSONL", async () => {
  const expected = samples.filter(
    (sample) => sample.kept && sample.language === "en" && punsafe(sample) < 0.5,
  );
  assert.ok(expected.length >= 4, `${expected.length} rows expected`);
  const where = "LANGUAGE = 'en' AND punsafe < 0.5";
  const summary = await subset({
    root,
    where,
    output: join(work, "en.parquet"),
    columns: ["key", "PUNSAFE", "language"],
  });
  assert.equal(summary.rows, expected.length);
  assert.deepEqual(summary.columns, ["url", "caption", "key", "punsafe", "LANGUAGE"]);
  assert.equal(summary.shards, 3);
  assert.equal(summary.rowsScanned, samples.filter((sample) => sample.kept).length);
  assert.deepEqual(summary.languages, { en: expected.length });
  assert.deepEqual(summary.ranges.punsafe, {
    min: Math.min(...expected.map(punsafe)),
    max: Math.max(...expected.map(punsafe)),
    mean: expected.reduce((sum, sample) => sum + punsafe(sample), 0) / expected.length,
    nulls: 0,
  });
  assert.equal(summary.ranges.pwatermark?.nulls, expected.length, "no watermark head ran");
  const rows = await readParquet(new LocalStorage(work), "en.parquet");
  const wanted = expected.map((sample) => ({
    url: sample.url,
    caption: sample.caption,
    key: sample.key,
    punsafe: punsafe(sample),
    LANGUAGE: "en",
  }));
  assert.deepEqual(rows, wanted);

  await subset({
    root,
    where,
    output: join(work, "en.csv"),
    columns: ["key", "punsafe", "LANGUAGE"],
  });
  const csv = (await readFile(join(work, "en.csv"), "utf8")).trim().split("\n");
  assert.equal(csv[0], "url,caption,key,punsafe,LANGUAGE");
  assert.deepEqual(
    csv.slice(1),
    // DuckDB writes a DOUBLE with its decimal point: 0.0, 0.1.
    wanted.map((row) =>
      [row.url, row.caption, row.key, row.punsafe.toFixed(1), row.LANGUAGE].join(","),
    ),
  );
  await subset({
    root,
    where,
    output: join(work, "en.jsonl"),
    columns: ["key", "punsafe", "LANGUAGE"],
  });
  const jsonl = (await readFile(join(work, "en.jsonl"), "utf8")).trim().split("\n");
  assert.deepEqual(
    jsonl.map((line) => JSON.parse(line)),
    wanted,
  );
});

test("invalid SQL gets DuckDB's message with the position; an unknown column lists the valid ones", async () => {
  const output = join(work, "bad.parquet");
  await assert.rejects(
    subset({ root, output, where: "LANGUAGE = 'en' AND punsafe <" }),
    (error: Error) => {
      assert.equal(
        error.message,
        "--where, character 30 (the end): Parser Error: syntax error at or near \")\"\n  LANGUAGE = 'en' AND punsafe <\n                               ^",
      );
      return true;
    },
  );
  await assert.rejects(
    subset({ root, output, where: "LANGUAGE = 'en'\n  AND AESTHETIC > 5" }),
    (error: Error) => {
      assert.match(
        error.message,
        /^--where, character 23: unknown column "AESTHETIC" \(did you mean "AESTHETIC_SCORE"\?\); the dataset's columns are URL, TEXT, WIDTH, HEIGHT, similarity, punsafe, pwatermark, ptoxic, AESTHETIC_SCORE, LANGUAGE, hash, key, sha256, page_url, source\n {4}AND AESTHETIC > 5\n {8}\^$/,
      );
      return true;
    },
  );
  await assert.rejects(
    subset({ root, output, where: "TRUE) UNION ALL (SELECT * FROM read_parquet('x.parquet')" }),
    /--where/,
  );
  await assert.rejects(
    subset({ root, output, where: "TRUE) ORDER BY (TRUE" }),
    /--where must be one condition on the dataset's columns/,
  );
  await assert.rejects(
    subset({ root, output, columns: ["url", "nsfw"] }),
    /--columns: unknown column "nsfw"; the dataset's columns are URL, TEXT, WIDTH/,
  );
  await assert.rejects(
    subset({ root, output: join(work, "out.txt") }),
    /end it in \.parquet, \.csv or \.jsonl/,
  );
  await assert.rejects(subset({ root: work, output }), /not a clipcrawl dataset root/);
  const unfiltered = join(work, "unfiltered");
  await initRoot(new LocalStorage(unfiltered));
  await assert.rejects(subset({ root: unfiltered, output }), /no dataset shards/);
  await assert.rejects(subset({ root, output, queries: ["x"] }), /run clipcrawl index first/);
});

test("the CLI prints the error with its caret and exits 1", async () => {
  const result = await runCli([
    "subset",
    "--root",
    root,
    "--where",
    "simlarity > 0.3",
    "-o",
    join(work, "cli.parquet"),
  ]);
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /clipcrawl: --where, character 1: unknown column "simlarity" \(did you mean "similarity"\?\)/,
  );
  assert.match(result.stderr, /clipcrawl: {3}simlarity > 0\.3\nclipcrawl: {3}\^\n/);
});

test("--webdataset copies the selected samples out of the root's tars, byte for byte", async () => {
  const chosen = samples.filter((sample) => sample.kept && sample.language === "de");
  const folder = join(work, "wds");
  const summary = await subset({
    root,
    where: "LANGUAGE = 'de'",
    output: join(work, "de.parquet"),
    webdataset: folder,
    webdatasetShardSize: 4,
  });
  assert.equal(summary.webdataset?.samples, chosen.length);
  assert.equal(summary.webdataset?.missing, 0);
  assert.equal(summary.webdataset?.shards, Math.ceil(chosen.length / 4));
  const copied = new Map<string, Buffer>();
  for (let shard = 0; shard < (summary.webdataset?.shards ?? 0); shard++) {
    const path = join(folder, `${String(shard).padStart(5, "0")}.tar`);
    for await (const entry of readTarEntries(createReadStream(path))) {
      if (entry.kind === "file") copied.set(entry.name, entry.data);
    }
  }
  const source = new Map<string, Buffer>();
  for (const shard of ["00000", "00001", "00002"]) {
    for await (const entry of readTarEntries(
      createReadStream(join(root, layout.imageTar(shard))),
    )) {
      if (entry.kind === "file") source.set(entry.name, entry.data);
    }
  }
  assert.deepEqual(
    [...copied.keys()],
    chosen.flatMap((sample) => [`${sample.key}.jpg`, `${sample.key}.json`, `${sample.key}.txt`]),
  );
  for (const [name, data] of copied) assert.deepEqual(data, source.get(name), name);
  await assert.rejects(
    subset({
      root,
      where: "LANGUAGE = 'de'",
      output: join(work, "de.parquet"),
      webdataset: folder,
    }),
    new RegExp(`already holds ${summary.webdataset?.shards} tar files`),
  );
});

// Coloured shapes over HTTP, as a crawl would find them; /mirror/ serves /img/'s bytes.
const server = createServer((request, response) => {
  const match = /^\/(img|mirror)\/(\w+)-(\w+)-(\d+)\.jpg$/.exec(request.url ?? "");
  if (match === null) {
    response.writeHead(404).end();
    return;
  }
  const [, , colour, shape, index] = match;
  void renderShapeImage(colour as ShapeColour, shape as ShapeName, Number(index)).then((image) => {
    response.writeHead(200, { "content-type": "image/jpeg" }).end(image);
  });
});
before(() => new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve)));
after(() => new Promise((resolve) => server.close(resolve)));

test("kNN queries go through the index: the k nearest rows, with --where, --dedup and an image query; clipcrawl download fetches the result", async () => {
  const knnRoot = join(work, "knn");
  const model = join(work, "model");
  await generateTinyClipModel(model);
  const port = (server.address() as AddressInfo).port;
  const images: [string, string, string][] = [
    ["img/red-circle-1", "a red circle", "en"],
    ["mirror/red-circle-1", "red circle", "de"],
    ["img/red-circle-7", "another red circle", "en"],
    ["img/blue-square-2", "a blue square", "en"],
    ["img/green-star-3", "a green star", "de"],
    ["img/yellow-triangle-4", "a yellow triangle", "en"],
    ["img/blue-circle-5", "a blue circle", "en"],
    ["img/green-square-6", "a green square", "de"],
  ];
  await writeFile(
    join(work, "shapes.csv"),
    `url,caption,language\n${images.map(([path, caption, language]) => `http://shapes.test/${path}.jpg,${caption},${language}`).join("\n")}\n`,
  );
  const fetchConfig = {
    captionCol: "caption",
    allowPrivateNetwork: true,
    connectTo: [`shapes.test:80:127.0.0.1:${port}`],
    retries: 0,
    workers: 1,
    imageSize: 64,
  };
  await download({
    root: knnRoot,
    inputs: [join(work, "shapes.csv")],
    config: { ...fetchConfig, saveAdditionalColumns: ["language"] },
  });
  await embed({ root: knnRoot, config: { model, threads: 1 } });
  await filter({
    root: knnRoot,
    config: { minSimilarityEn: -1, minSimilarityMulti: -1, minSimilarityNolang: -1 },
  });
  assert.equal((await buildIndex({ root: knnRoot })).rows, images.length);

  const urlsOf = async (file: string) =>
    (await readParquet(new LocalStorage(work), file, ["url"])).map((row) =>
      String(row.url).replace("http://shapes.test/", ""),
    );
  const knn = await subset({
    root: knnRoot,
    queries: ["a red circle"],
    k: 3,
    output: join(work, "red.parquet"),
    columns: ["query", "query_similarity"],
    model,
  });
  assert.equal(knn.rows, 3);
  assert.deepEqual((await urlsOf("red.parquet")).sort(), [
    "img/red-circle-1.jpg",
    "img/red-circle-7.jpg",
    "mirror/red-circle-1.jpg",
  ]);
  const ranked = await readParquet(new LocalStorage(work), "red.parquet", [
    "query",
    "query_similarity",
  ]);
  assert.deepEqual(
    ranked.map((row) => row.query),
    ["a red circle", "a red circle", "a red circle"],
  );
  const similarities = ranked.map((row) => row.query_similarity as number);
  assert.deepEqual(
    similarities,
    [...similarities].sort((a, b) => b - a),
    "best first",
  );

  // The k nearest rows that pass the condition.
  await subset({
    root: knnRoot,
    queries: ["a red circle"],
    k: 2,
    where: "LANGUAGE = 'de'",
    output: join(work, "red-de.parquet"),
    model,
  });
  const redDe = await urlsOf("red-de.parquet");
  assert.equal(redDe.length, 2);
  assert.equal(redDe[0], "mirror/red-circle-1.jpg");
  const german = images
    .filter(([, , language]) => language === "de")
    .map(([path]) => `${path}.jpg`);
  assert.ok(
    redDe.every((url) => german.includes(url)),
    `${redDe}`,
  );

  // The tiny model sees colour and shape only: its three red circles are one near-duplicate
  // group, so --dedup keeps one of them.
  const deduplicated = await subset({
    root: knnRoot,
    queries: ["a red circle"],
    k: 3,
    dedup: true,
    output: join(work, "red-dedup.parquet"),
    model,
  });
  const dedupUrls = await urlsOf("red-dedup.parquet");
  assert.equal(deduplicated.rows, 3);
  assert.equal(dedupUrls.filter((url) => url.includes("red-circle")).length, 1, `${dedupUrls}`);
  const sqlDedup = await subset({
    root: knnRoot,
    dedup: true,
    output: join(work, "all-dedup.parquet"),
  });
  assert.equal(sqlDedup.rows, images.length - 2);
  assert.equal(sqlDedup.duplicatesDropped, 2);
  assert.deepEqual(
    (await urlsOf("all-dedup.parquet")).filter((url) => url.includes("red-circle")),
    ["img/red-circle-1.jpg"],
  );

  // An image as the query.
  await writeFile(join(work, "query.jpg"), await renderShapeImage("blue", "square", 9));
  await subset({
    root: knnRoot,
    imageQueries: [join(work, "query.jpg")],
    k: 1,
    output: join(work, "blue.parquet"),
    model,
  });
  assert.deepEqual(await urlsOf("blue.parquet"), ["img/blue-square-2.jpg"]);

  // The subset is a URL list `clipcrawl download` fetches as it is.
  const fetched = await download({
    root: join(work, "refetched"),
    inputs: [join(work, "red.parquet")],
    config: fetchConfig,
  });
  assert.equal(fetched.totals.successes, 3);
});
