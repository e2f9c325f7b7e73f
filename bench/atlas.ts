/**
 * `npm run bench -- atlas [--points 1000000] [--no-browser] [--no-peer] [--no-projection]
 * [--renderers regl-scatterplot,deck-gl,embedding-atlas]`: the Atlas map at a million points.
 *
 * 1. Projection: N synthetic 512-d embeddings from a mixture of clusters (each cluster with its
 *    own caption words), stored as index segments (float16 `.npy` + metadata parquet), mapped by
 *    the index stage's atlas step (`ensureAtlas`: PCA → UMAP of a 10,000-point sample → every
 *    other point placed from its nearest laid-out neighbours → regions and labels). The peer,
 *    in the same run on the same files: numpy doing the same steps but UMAP (read, PCA fit on
 *    the same rows, projection of every point, placement from the 8 nearest by exact search).
 * 2. Browser: N rows through the real index stage (16-d vectors, so the graphs build in
 *    minutes; the map's cost does not depend on the width), served by `clipcrawl serve`, the
 *    Atlas page opened in Debian's Chromium (WebGL through SwiftShader, the GPU off): time from
 *    navigation to the map's first paint, and frames per second while the map is dragged.
 * 3. Renderers, in the same browser on the same points from the same server answer, rounds
 *    interleaved with the Atlas page's: regl-scatterplot (the page's), deck.gl (ScatterplotLayer
 *    over binary attributes) and embedding-atlas (its EmbeddingView alone), each a page of
 *    bench/atlas-renderers/ built by vite: time from navigation to points on screen (the first
 *    frame whose canvas holds drawn points, sampled the same way for all three), frames per
 *    second while dragged, and the gzipped size of what the page loads.
 *    `--no-projection` runs parts 2 and 3 alone and keeps part 1's rows of the last full run.
 */
import { spawnSync } from "node:child_process";
import { mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { build } from "vite";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { errorMessage } from "../src/errors.js";
import type { IndexManifest, IndexSegment } from "../src/formats/index/index-manifest.js";
import { layout, shardName } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { encodeNpy } from "../src/io/npy.js";
import { writeParquet } from "../src/io/parquet.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { serve } from "../src/server/serve.js";
import { ensureAtlas } from "../src/stages/index/atlas-build.js";
import { buildIndex } from "../src/stages/index/build-index.js";
import { CHROMIUM, WEBGL_CHROMIUM_ARGS } from "../test/support/chromium.js";
import { type BenchRow, benchDataPath, parseResults, printTable, RESULTS_FILE } from "./support.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const ROWS_PER_SHARD = 100_000;
const CLUSTERS = 200;
const SETTINGS = { layoutSample: 10_000, clusters: 24, pcaDimensions: 32 };
const VOCABULARY = (
  "beach mountain city street car dog cat bird flower tree forest river boat plane train food " +
  "pizza cake coffee wine shoe dress shirt watch phone laptop chair table sofa bed kitchen " +
  "garden house church bridge tower map logo poster book guitar piano football tennis horse " +
  "cow fish snow desert sunset night portrait wedding baby child woman man team crowd stage"
).split(" ");
const LANGUAGES = ["en", "de", "fr", "es", "ja", "sw"];

export async function main(args: string[]): Promise<BenchRow[]> {
  const { values } = parseArgs({
    args,
    options: {
      points: { type: "string", default: "1000000" },
      "no-browser": { type: "boolean", default: false },
      "no-peer": { type: "boolean", default: false },
      "no-projection": { type: "boolean", default: false },
      renderers: { type: "string", default: RENDERERS.join(",") },
    },
  });
  const points = Number(values.points);
  const renderers = values.renderers === "" ? [] : values.renderers.split(",");
  for (const renderer of renderers) {
    if (!(RENDERERS as readonly string[]).includes(renderer)) {
      throw new Error(`--renderers: unknown renderer ${renderer}; known: ${RENDERERS.join(", ")}`);
    }
  }
  console.log(`${cpus().length} cores; ${points.toLocaleString("en")} points`);
  const folder = await benchDataPath(`atlas-${points}`);
  const rows: BenchRow[] = values["no-projection"]
    ? await earlierProjectionRows()
    : await measureProjection(folder, points, values["no-peer"]);
  if (!values["no-browser"]) rows.push(...(await measureBrowser(folder, points, renderers)));
  printTable([
    ["measure", "unit", "clipcrawl", "peer", "target", "met"],
    ...rows.map((row) => [
      row.stage,
      row.unit,
      row.clipcrawl,
      row.peer === undefined ? "" : `${row.peer.value} (${row.peer.name})`,
      row.target,
      row.met === undefined ? "" : row.met ? "yes" : "no",
    ]),
  ]);
  return rows;
}

/**
 * With --no-projection the projection rows of the last full run stay in bench/RESULTS.md, marked
 * with that run's date (this run's machine line is the browser part's).
 */
async function earlierProjectionRows(): Promise<BenchRow[]> {
  const earlier = parseResults(await readFile(RESULTS_FILE, "utf8").catch(() => "")).find(
    (result) => result.bench === "atlas",
  );
  if (earlier === undefined) return [];
  const carried = / \(run of [^)]*\)$/;
  return earlier.rows
    .filter((row) => row.stage.startsWith("atlas "))
    .map((row) => ({
      ...row,
      stage: carried.test(row.stage) ? row.stage : `${row.stage} (run of ${earlier.machine.date})`,
    }));
}

/** The projection of N 512-d embeddings by the index stage's atlas step, and its numpy peer. */
async function measureProjection(
  folder: string,
  points: number,
  noPeer: boolean,
): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const projectionRoot = join(folder, "projection");
  const manifest = await ensureSegments(projectionRoot, points, 512);
  const storage = new LocalStorage(projectionRoot);
  await rm(join(projectionRoot, "_atlas"), { recursive: true, force: true });
  const peakBefore = process.memoryUsage().rss;
  let peak = peakBefore;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 200);
  const started = performance.now();
  const summary = await ensureAtlas(storage, manifest, {
    points,
    ...SETTINGS,
    threads: cpus().length,
  });
  const seconds = (performance.now() - started) / 1000;
  clearInterval(sampler);
  const parts = summary.seconds;
  if (parts === null) throw new Error("the atlas was not built");
  const withoutUmap = parts.read + parts.pca + parts.placement;
  console.log(
    `clipcrawl atlas, ${points} × 512-d: ${seconds.toFixed(1)} s (read ${parts.read.toFixed(1)}, PCA ${parts.pca.toFixed(1)}, UMAP of ${SETTINGS.layoutSample} ${parts.umap.toFixed(1)}, placement ${parts.placement.toFixed(1)}, regions and labels ${parts.clusters.toFixed(1)}); peak RSS ${(peak / 1e6).toFixed(0)} MB`,
  );
  const peer = noPeer ? undefined : runPeer(projectionRoot, manifest);
  if (peer !== undefined) {
    console.log(
      `numpy peer, the same steps but UMAP: ${peer.toFixed(1)} s; clipcrawl's: ${withoutUmap.toFixed(1)} s`,
    );
  }
  rows.push({
    stage: `atlas projection, ${points.toLocaleString("en")} × 512-d (all steps)`,
    unit: "s",
    clipcrawl: round(seconds),
    target: "< 600 s (inside a clipcrawl index run)",
    met: seconds < 600,
  });
  rows.push({
    stage: "atlas projection without UMAP (read, PCA, placement)",
    unit: "s",
    clipcrawl: round(withoutUmap),
    ...(peer === undefined
      ? {}
      : { peer: { name: "numpy", value: round(peer) }, ratio: round(withoutUmap / peer) }),
    target: "≤ 3× numpy",
    ...(peer === undefined ? {} : { met: withoutUmap <= 3 * peer }),
  });
  rows.push({
    stage: `atlas UMAP (umap-js) of the ${SETTINGS.layoutSample.toLocaleString("en")}-point sample`,
    unit: "s",
    clipcrawl: round(parts.umap),
    target: "< 120 s",
    met: parts.umap < 120,
  });

  return rows;
}

/** The root `clipcrawl serve` serves in the browser part: N embedded rows, indexed, with an atlas. */
export async function ensureServedIndex(folder: string, points: number): Promise<string> {
  const root = join(folder, "served");
  await ensureEmbeddings(root, points, 16);
  const indexStarted = performance.now();
  const indexed = await buildIndex({
    root,
    config: {
      connectivity: 8,
      expansionAdd: 32,
      duplicateNeighbors: 2,
      atlasPoints: points,
      atlasLayoutSample: SETTINGS.layoutSample,
      atlasClusters: SETTINGS.clusters,
      atlasPcaDimensions: 16,
    },
  });
  if (!indexed.ok) throw new Error(`index failed: ${JSON.stringify(indexed)}`);
  console.log(
    `clipcrawl index of ${points} × 16-d: ${((performance.now() - indexStarted) / 1000).toFixed(1)} s, of which the atlas ${indexed.timings.atlas.toFixed(1)} s`,
  );
  return root;
}

/** A page the browser part opens: the product's Atlas page, or a renderer page of the comparison. */
interface MapPage {
  name: string;
  path: string;
  /** A script that is "" until the map has painted, then the time since navigation in ms. */
  painted: string;
  /** What the mouse drags to pan. */
  drag: string;
  /** Opened in a Chromium with WebGPU on SwiftShader as well (embedding-atlas draws only so). */
  webgpu: boolean;
}

/** WebGPU through SwiftShader's Vulkan, the only WebGPU a Chromium with the GPU off can have. */
const WEBGPU_CHROMIUM_ARGS = ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader"];

/** The renderers compared on the same points (bench/atlas-renderers/, one page each). */
const RENDERERS = ["regl-scatterplot", "deck-gl", "embedding-atlas"] as const;

async function measureBrowser(
  folder: string,
  points: number,
  renderers: readonly string[],
): Promise<BenchRow[]> {
  const root = await ensureServedIndex(folder, points);
  const webRoot = join(folder, "web");
  await build({
    configFile: join(REPO, "web", "vite.config.ts"),
    logLevel: "warn",
    build: { outDir: webRoot, emptyOutDir: true },
  });
  const bundles = new Map<string, number>();
  for (const renderer of renderers) {
    bundles.set(renderer, await buildRendererPage(renderer, join(webRoot, "renderers", renderer)));
  }
  const pages: MapPage[] = [
    {
      name: "Atlas page",
      path: "/?view=atlas&safe=off",
      painted: "document.querySelector('.atlas-map')?.dataset.drawnMs ?? ''",
      drag: ".atlas-map canvas",
      webgpu: false,
    },
    ...renderers.map((renderer) => ({
      name: renderer,
      path: `/renderers/${renderer}/${renderer}.html?index=atlas`,
      painted: "document.body.dataset.paintedMs ?? ''",
      drag: "#map",
      webgpu: renderer === "embedding-atlas",
    })),
  ];
  const server = await serve({
    indices: [{ name: "atlas", root, model: null }],
    config: { port: 0 },
    webRoot,
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: WEBGL_CHROMIUM_ARGS });
  const webgpuBrowser = pages.some((page) => page.webgpu)
    ? await chromium.launch({
        executablePath: CHROMIUM,
        args: [...WEBGL_CHROMIUM_ARGS, ...WEBGPU_CHROMIUM_ARGS],
      })
    : undefined;
  const paints = new Map<string, number[]>(pages.map((page) => [page.name, []]));
  const rates = new Map<string, number[]>(pages.map((page) => [page.name, []]));
  const failures = new Map<string, string>();
  try {
    // Rounds interleave the pages, so that a slower minute of this shared machine falls on all.
    for (let round = 0; round < 3; round++) {
      for (const mapPage of pages) {
        if (failures.has(mapPage.name)) continue;
        const page = await (mapPage.webgpu && webgpuBrowser !== undefined
          ? webgpuBrowser
          : browser
        ).newPage({ viewport: { width: 1280, height: 900 } });
        try {
          await page.goto(new URL(mapPage.path, server.url).href);
          await page.waitForFunction(
            `(${mapPage.painted}) !== '' || (document.body.dataset.failed ?? '') !== ''`,
            undefined,
            { timeout: 120_000 },
          );
          const failed = String(await page.evaluate("document.body.dataset.failed ?? ''"));
          if (failed !== "") throw new Error(failed);
          paints.get(mapPage.name)?.push(Number(await page.evaluate(mapPage.painted)));
          if (round === 0) {
            // What each renderer drew, to look at: the figures mean little if one drew nothing.
            await page.screenshot({
              path: join(folder, `${mapPage.name.replace(/\W+/g, "-")}.png`),
            });
          }
          rates.get(mapPage.name)?.push(await panFramesPerSecond(page, mapPage.drag));
        } catch (error) {
          failures.set(mapPage.name, errorMessage(error).split("\n")[0] ?? "");
          console.log(`${mapPage.name}: ${failures.get(mapPage.name)}`);
        } finally {
          await page.close();
        }
      }
    }
  } finally {
    await browser.close();
    await webgpuBrowser?.close();
    await server.close();
  }
  for (const mapPage of pages) {
    console.log(
      `Chromium (SwiftShader), ${points} points, ${mapPage.name}: first paint ${(paints.get(mapPage.name) ?? []).map((value) => value.toFixed(0)).join(", ")} ms; panning ${(rates.get(mapPage.name) ?? []).map((value) => value.toFixed(1)).join(", ")} fps${bundles.has(mapPage.name) ? `; ${((bundles.get(mapPage.name) ?? 0) / 1024).toFixed(0)} KB gzipped` : ""}`,
    );
  }
  const count = points.toLocaleString("en");
  const paint = median(paints.get("Atlas page") ?? []);
  const fps = median(rates.get("Atlas page") ?? []);
  const rows: BenchRow[] = [
    {
      stage: `Atlas page, ${count} points: navigation → map painted (Chromium, software WebGL)`,
      unit: "ms",
      clipcrawl: Math.round(paint),
      target: "< 5000 ms",
      met: paint < 5000,
    },
    {
      stage: `Atlas page, ${count} points: frames per second while panning`,
      unit: "fps",
      clipcrawl: round(fps),
      target: "≥ 20 fps",
      met: fps >= 20,
    },
  ];
  for (const renderer of renderers) {
    const failure = failures.get(renderer);
    if (failure !== undefined) {
      rows.push({
        stage: `renderer ${renderer}, ${count} points: failed (${failure})`,
        unit: "",
        clipcrawl: Number.NaN,
        target: "draws the map",
        met: false,
      });
      continue;
    }
    rows.push(
      {
        stage: `renderer ${renderer}, ${count} points: navigation → points on screen`,
        unit: "ms",
        clipcrawl: Math.round(median(paints.get(renderer) ?? [])),
        target: "lowest of the three",
      },
      {
        stage: `renderer ${renderer}, ${count} points: frames per second while panning`,
        unit: "fps",
        clipcrawl: round(median(rates.get(renderer) ?? [])),
        target: "highest of the three",
      },
      {
        stage: `renderer ${renderer}: its page's JavaScript (and wasm, css), gzipped`,
        unit: "KB",
        clipcrawl: Math.round((bundles.get(renderer) ?? 0) / 1024),
        target: "smallest of the three",
      },
    );
  }
  return rows;
}

/** Builds one renderer page with vite into `outDir`; returns its emitted files' gzipped bytes. */
async function buildRendererPage(renderer: string, outDir: string): Promise<number> {
  const pageRoot = join(REPO, "bench", "atlas-renderers");
  await build({
    root: pageRoot,
    base: "./",
    configFile: false,
    logLevel: "warn",
    build: {
      outDir,
      emptyOutDir: true,
      target: "es2022",
      chunkSizeWarningLimit: 100_000,
      rollupOptions: { input: join(pageRoot, `${renderer}.html`) },
    },
  });
  let bytes = 0;
  for (const entry of await readdir(outDir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || entry.name.endsWith(".html")) continue;
    bytes += gzipSync(await readFile(join(entry.parentPath, entry.name))).length;
  }
  return bytes;
}

/** Drags the map in circles for three seconds, counting the frames the page paints meanwhile. */
async function panFramesPerSecond(
  page: import("playwright-core").Page,
  drag: string,
): Promise<number> {
  const box = await page.locator(drag).boundingBox();
  if (box === null) throw new Error("no map canvas");
  const centreX = box.x + box.width / 2;
  const centreY = box.y + box.height / 2;
  // A string: this file is type-checked for Node, without the DOM's names.
  await page.evaluate(`(() => {
    const state = { frames: 0, running: true };
    window.panFrames = state;
    const tick = () => {
      if (!state.running) return;
      state.frames++;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  })()`);
  await page.mouse.move(centreX, centreY);
  await page.mouse.down();
  const started = performance.now();
  let step = 0;
  while (performance.now() - started < 3000) {
    const angle = step++ * 0.2;
    await page.mouse.move(centreX + 150 * Math.cos(angle), centreY + 150 * Math.sin(angle));
  }
  await page.mouse.up();
  const frames = Number(
    await page.evaluate("window.panFrames.running = false, window.panFrames.frames"),
  );
  return frames / ((performance.now() - started) / 1000);
}

/** Cluster centres in `dimensions`, each with three caption words. */
function mixture(dimensions: number) {
  const next = seededUniform(20261206);
  const centres = Float32Array.from({ length: CLUSTERS * dimensions }, () => gaussian(next));
  const spreads = Float32Array.from({ length: CLUSTERS }, () => 0.6 + 0.8 * next());
  const words = Array.from({ length: CLUSTERS }, () =>
    Array.from(
      { length: 3 },
      () => VOCABULARY[Math.floor(next() * VOCABULARY.length)] as string,
    ).join(" "),
  );
  return { centres, spreads, words };
}

/** Writes `rows` vectors of one shard and returns each row's cluster. */
function sampleShard(
  random: () => number,
  model: ReturnType<typeof mixture>,
  rows: number,
  dimensions: number,
): { vectors: Float32Array; clusters: Uint16Array } {
  const vectors = new Float32Array(rows * dimensions);
  const clusters = new Uint16Array(rows);
  for (let row = 0; row < rows; row++) {
    const cluster = Math.floor(random() * CLUSTERS);
    clusters[row] = cluster;
    const spread = model.spreads[cluster] as number;
    let norm = 0;
    for (let dim = 0; dim < dimensions; dim++) {
      const value =
        (model.centres[cluster * dimensions + dim] as number) + spread * gaussian(random);
      vectors[row * dimensions + dim] = value;
      norm += value * value;
    }
    const scale = 1 / Math.sqrt(norm);
    for (let dim = 0; dim < dimensions; dim++) {
      vectors[row * dimensions + dim] = (vectors[row * dimensions + dim] as number) * scale;
    }
  }
  return { vectors, clusters };
}

function caption(model: ReturnType<typeof mixture>, cluster: number, id: number): string {
  return `${model.words[cluster]} photo number ${id}`;
}

/** Index segments (vectors + metadata) written directly, and the manifest that names them. */
async function ensureSegments(
  root: string,
  points: number,
  dimensions: number,
): Promise<IndexManifest> {
  const storage = new LocalStorage(root);
  const shards = Math.ceil(points / ROWS_PER_SHARD);
  const segments: IndexSegment[] = [];
  const complete = join(root, `complete-${points}`);
  const done = await stat(complete).then(
    () => true,
    () => false,
  );
  const model = mixture(dimensions);
  const random = seededUniform(11);
  let firstId = 0;
  for (let shard = 0; shard < shards; shard++) {
    const rows = Math.min(ROWS_PER_SHARD, points - firstId);
    const name = `g000001-${shardName(shard)}`;
    segments.push({ shard: shardName(shard), digest: "", name, firstId, rows });
    if (!done) {
      const { vectors, clusters } = sampleShard(random, model, rows, dimensions);
      await storage.writeAtomic(
        layout.indexSegmentVectors(name, "image"),
        encodeNpy({ dtype: "<f2", shape: [rows, dimensions], data: toFloat16Bits(vectors) }),
      );
      const ids = Array.from({ length: rows }, (_, row) => row);
      await writeParquet(
        storage,
        layout.indexSegmentMetadata(name),
        [
          {
            name: "key",
            type: "VARCHAR",
            value: (row: number) => String(firstId + row).padStart(9, "0"),
          },
          {
            name: "TEXT",
            type: "VARCHAR",
            value: (row: number) => caption(model, clusters[row] as number, firstId + row),
          },
        ] as const,
        ids,
      );
      process.stdout.write(`\rgenerating ${firstId + rows}/${points} 512-d vectors`);
    }
    firstId += rows;
  }
  if (!done) {
    process.stdout.write("\n");
    await writeFile(complete, "");
  }
  return {
    format: 1,
    generation: 1,
    source: "embeddings",
    dimensions,
    rows: points,
    identity: "bench",
    params: {
      quantization: "f32",
      connectivity: 16,
      expansionAdd: 128,
      expansionSearch: 64,
      flatMaxVectors: 1000,
      duplicateThreshold: 0.96,
      duplicateNeighbors: 10,
    },
    segments,
    files: { graphs: { image: "", text: "" }, duplicateGroups: "" },
    duplicateGroups: points,
    graphBytes: 0,
    createdWith: "bench",
    builtAt: new Date().toISOString(),
  };
}

/** Embedding shards (what `clipcrawl embed` writes) for the index stage to build from. */
async function ensureEmbeddings(root: string, points: number, dimensions: number): Promise<void> {
  const complete = join(root, `complete-${points}`);
  if (
    await stat(complete).then(
      () => true,
      () => false,
    )
  )
    return;
  await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true });
  await writeFile(join(root, "clipcrawl.json"), "{}\n");
  const storage = new LocalStorage(root);
  const model = mixture(dimensions);
  const random = seededUniform(13);
  let firstId = 0;
  for (let shard = 0; firstId < points; shard++) {
    const rows = Math.min(ROWS_PER_SHARD, points - firstId);
    const name = shardName(shard);
    const { vectors, clusters } = sampleShard(random, model, rows, dimensions);
    const bits = toFloat16Bits(vectors);
    const npy = encodeNpy({ dtype: "<f2", shape: [rows, dimensions], data: bits });
    await storage.writeAtomic(layout.imageEmbeddings(name), npy);
    await storage.writeAtomic(layout.textEmbeddings(name), npy);
    const scores = Array.from({ length: rows }, () => ({
      punsafe: random() ** 3,
      aesthetic: 3 + 5 * random() ** 1.5,
      similarity: 0.2 + 0.2 * random(),
      language: random() < 0.01 ? "sw" : (LANGUAGES[Math.floor(random() * 5)] as string),
    }));
    const base = firstId;
    await writeParquet(
      storage,
      layout.embeddingMetadata(name),
      [
        {
          name: "key",
          type: "VARCHAR",
          value: (row: number) => String(base + row).padStart(9, "0"),
        },
        {
          name: "url",
          type: "VARCHAR",
          value: (row: number) => `https://img.example/${base + row}.jpg`,
        },
        {
          name: "caption",
          type: "VARCHAR",
          value: (row: number) => caption(model, clusters[row] as number, base + row),
        },
        {
          name: "similarity",
          type: "DOUBLE",
          value: (row: number) => scores[row]?.similarity ?? null,
        },
        { name: "language", type: "VARCHAR", value: (row: number) => scores[row]?.language ?? "" },
        { name: "punsafe", type: "DOUBLE", value: (row: number) => scores[row]?.punsafe ?? null },
        {
          name: "AESTHETIC_SCORE",
          type: "DOUBLE",
          value: (row: number) => scores[row]?.aesthetic ?? null,
        },
      ] as const,
      Array.from({ length: rows }, (_, row) => row),
    );
    firstId += rows;
    process.stdout.write(`\rgenerating ${firstId}/${points} 16-d embedded rows`);
  }
  process.stdout.write("\n");
  await writeFile(complete, "");
}

/**
 * numpy: read, PCA on the same strided sample, projection of every point, and placement from
 * the 8 nearest laid-out points by exact search (BLAS products in blocks; faiss is not installed
 * here, and exact search in BLAS is what numpy users reach for).
 */
function runPeer(root: string, manifest: IndexManifest): number | undefined {
  const script = `
import sys, time, json, numpy as np
root, spec = sys.argv[1], json.loads(sys.argv[2])
start = time.perf_counter()
allv = np.concatenate([np.load(f"{root}/index/segments/{name}/image_emb.npy").astype(np.float32) for name in spec["segments"]])
n = allv.shape[0]
sample_rows = (np.arange(spec["sample"]) * n) // spec["sample"]
sample = allv[sample_rows]
fit = sample[(np.arange(min(len(sample), 4000)) * len(sample)) // min(len(sample), 4000)]
mean = fit.mean(axis=0)
values, vectors = np.linalg.eigh(np.cov((fit - mean).T))
basis = vectors[:, ::-1][:, :spec["components"]].astype(np.float32)
projected = ((allv - mean) @ basis).astype(np.float32)
layout = projected[sample_rows, :2].copy()
def unit(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
keys = unit(projected[sample_rows])
out = np.empty((n, 2), np.float32)
for s in range(0, n, 5000):
    sims = unit(projected[s:s+5000]) @ keys.T
    ids = np.argpartition(-sims, 8, axis=1)[:, :8]
    w = np.maximum(np.take_along_axis(sims, ids, axis=1), 0.01) ** 4
    out[s:s+5000] = (layout[ids] * w[..., None]).sum(axis=1) / w.sum(axis=1, keepdims=True)
print(time.perf_counter() - start)
`;
  const spec = {
    segments: manifest.segments.map((segment) => segment.name),
    sample: SETTINGS.layoutSample,
    components: SETTINGS.pcaDimensions,
  };
  const result = spawnSync("python3", ["-c", script, root, JSON.stringify(spec)], {
    encoding: "utf8",
    maxBuffer: 1 << 20,
  });
  if (result.status !== 0) {
    console.log(`peer failed: ${result.stderr.trim().split("\n").at(-1)}`);
    return undefined;
  }
  return Number(result.stdout.trim().split("\n").at(-1));
}

function gaussian(next: () => number): number {
  return Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next());
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
