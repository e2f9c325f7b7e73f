/**
 * Embed throughput: clipcrawl's embed path against PyTorch, on a ViT-B/32-shaped CLIP with the
 * same random weights, on this CPU, in one run.
 *
 * The model is made by the peer (bench/peers/clip_torch.py: Hugging Face's CLIP architecture in
 * PyTorch, weights from a seed, exported to onnx/vision_model.onnx and onnx/text_model.onnx in the
 * layout clipcrawl loads) and quantised by clipcrawl's own `model quantize`
 * (src/models/onnx-quantize.ts). The images are what `download` stores by default: photo-like
 * JPEGs of assorted shapes, fitted into 256 × 256 with a white border, JPEG q95.
 *
 * Measured, alternating round by round (medians), with the same batch size and thread count:
 * - images/s: clipcrawl's stage path (JPEG → decode + PIL-exact preprocessing on the stage's
 *   worker threads, overlapped with the vision tower on onnxruntime, as embed-shard.ts runs it),
 *   fp32 and int8; onnxruntime alone on preprocessed tensors; PyTorch eval (inference_mode) on the
 *   same tensors, and PyTorch with PIL + numpy preprocessing from the same JPEGs.
 * - texts/s: tokenise + text tower (context 77) against PyTorch on the same token ids.
 * - agreement: max abs diff between clipcrawl's and PyTorch's raw embeddings on the same pixel
 *   tensors and token ids; cosine of int8 embeddings to fp32 (with the cosine between different
 *   images of the fp32 model beside it, so the agreement can be read against it).
 * - the model's busy share: the vision tower's session.run time over the embed path's wall time
 *   (what is left is the tower waiting for preprocessed batches, or assembling them).
 * - where the time goes: each side's BLAS rate on the tower's largest MatMul (fc1's shape, the
 *   bench's batch and threads: onnxruntime's MLAS in a one-node graph, PyTorch's nn.Linear on
 *   OpenBLAS), beside the GFLOP/s each tower reaches (the multiply-adds of the graph as exported,
 *   the same count on both sides). The fp32 towers are 96 % MatMul by weights, so a tower cannot
 *   beat its BLAS, and a missed fp32 row names the onnxruntime rate 2× PyTorch would need.
 * Targets: clipcrawl fp32 ≥ 2× PyTorch images/s, int8 ≥ 3× with a mean cosine ≥ 0.99 to fp32
 * (the ratios are against PyTorch on ready tensors, the stricter peer; against PyTorch + PIL
 * beside them), busy share ≥ 95 %.
 *
 * PyTorch is Debian's python3-torch on OpenBLAS (the bench checks the loaded library and
 * refuses another BLAS, which would make the comparison void). It runs with glibc's malloc told
 * to keep freed memory: by default each large activation is handed back to the kernel when freed
 * and page-faulted in again by the next op, which on this VM more than halves PyTorch's speed;
 * `--peer-malloc default` measures it as installed.
 *
 *   npm run bench -- embed [--images 256] [--texts 128] [--batch 64] [--threads CORES]
 *     [--rounds 3] [--only vision,text] [--peer-malloc tuned|default] [--device cpu|cuda[:N]]
 *
 * `--device cuda[:N]` runs both sides on that GPU: clipcrawl's towers on onnxruntime's CUDA
 * provider (installed as docs/install.md says), PyTorch with the model and each batch moved to
 * the device (a CUDA build of PyTorch; the OpenBLAS check is then skipped, since no BLAS does the
 * work). Host tensors go in and embeddings come back on both sides. The headline rows are named
 * for the device, so a GPU run does not replace the CPU rows.
 */
import { type ChildProcessByStdio, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { createInterface, type Interface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import onnxProto from "onnx-proto";
import * as ort from "onnxruntime-node";
import sharp from "sharp";
import { CAPTIONS_BY_LANGUAGE } from "../src/demo/sample/sample-captions.js";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { ClipModel, type EmbeddingMatrix } from "../src/models/clip-model.js";
import { ClipEmbedder } from "../src/models/embedder.js";
import type { PixelBatch } from "../src/models/image-preprocessing.js";
import {
  assertDeviceAvailable,
  deviceName,
  type InferenceDevice,
  parseInferenceDevice,
} from "../src/models/inference-device.js";
import { quantizeClipModel } from "../src/models/onnx-quantize.js";
import { normaliseRows } from "../src/models/unit-rows.js";
import { downloadConfigSchema } from "../src/stages/download/config.js";
import { ImageResizer } from "../src/stages/download/resizer.js";
import { embedConfigSchema } from "../src/stages/embed/config.js";
import { type EncodedImages, PipelinedImageEncoder } from "../src/stages/embed/image-encoder.js";
import {
  type BenchRow,
  benchDataPath,
  loadAverage,
  photoLikePixels,
  printTable,
} from "./support.js";

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;
const PYTHON = "/usr/bin/python3";
const PEER = fileURLToPath(new URL("./peers/clip_torch.py", import.meta.url));
const INSTALL_HINT = "apt-get install -y python3-torch libopenblas0-pthread python3-pil";
const SEED = 0;
/** Bump when the peer's architecture or initialisation changes, to rebuild the cached model. */
const MODEL_VERSION = 2;
const CONTEXT_LENGTH = 77;
const IMAGE_SIZE = 224;
/** The peer's ViT-B/32 shape, for the multiply-adds an image takes (as exported). */
const PATCH_SIZE = 32;
const VISION_WIDTH = 768;
const VISION_LAYERS = 12;
const VISION_MLP = 4 * VISION_WIDTH;
const VISION_TOKENS = (IMAGE_SIZE / PATCH_SIZE) ** 2 + 1;
const PROJECTION_DIM = 512;
const TARGET_FP32 = 2;
const TARGET_INT8 = 3;
const TARGET_COSINE = 0.99;
/** Preprocessing never starves the model: its session.run covers this share of the wall time. */
const TARGET_BUSY = 0.95;
/** glibc keeps freed blocks instead of unmapping them (see the module comment). */
const TUNED_MALLOC = {
  MALLOC_MMAP_THRESHOLD_: "4294967296",
  MALLOC_TRIM_THRESHOLD_: "4294967296",
  MALLOC_TOP_PAD_: "268435456",
};

export async function main(args: string[]): Promise<BenchRow[] | undefined> {
  const { values } = parseArgs({
    args,
    options: {
      images: { type: "string", default: "256" },
      texts: { type: "string", default: "128" },
      batch: { type: "string", default: String(embedConfigSchema.parse({}).batchSize) },
      threads: { type: "string", default: String(cpus().length) },
      rounds: { type: "string", default: "3" },
      only: { type: "string", default: "vision,text" },
      "peer-malloc": { type: "string", default: "tuned" },
      device: { type: "string", default: "cpu" },
    },
  });
  const batch = Number(values.batch);
  const threads = Number(values.threads);
  const rounds = Number(values.rounds);
  const only = new Set(values.only.split(","));
  if (!["tuned", "default"].includes(values["peer-malloc"])) {
    console.error(`--peer-malloc takes tuned or default, got ${values["peer-malloc"]}`);
    process.exitCode = 2;
    return;
  }
  let device: InferenceDevice;
  try {
    device = parseInferenceDevice(values.device);
    assertDeviceAvailable(device, "--device");
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    process.exitCode = 2;
    return;
  }
  const peerProblem = checkPeer();
  if (peerProblem !== undefined) {
    console.error(`the PyTorch peer cannot run: ${peerProblem}\ninstall it with: ${INSTALL_HINT}`);
    process.exitCode = 1;
    return;
  }

  const model = await ensureModel();
  const scratch = await benchDataPath("embed", "scratch", "x");
  const scratchDir = join(scratch, "..");
  const peer = await PeerProcess.start(model.folder, {
    threads,
    tunedMalloc: values["peer-malloc"] === "tuned",
    device: deviceName(device),
  });
  try {
    const blas = (await peer.ask({ op: "blas" })) as { libraries: string[] };
    const openBlas = blas.libraries.filter((library) => /openblas/i.test(library));
    if (openBlas.length === 0 && device.kind === "cpu") {
      console.error(
        `PyTorch is not running on OpenBLAS (loaded: ${blas.libraries.join(", ") || "no BLAS library"}); the comparison would be void. Install libopenblas0-pthread and select it (update-alternatives --config libblas.so.3-x86_64-linux-gnu).`,
      );
      process.exitCode = 1;
      return;
    }
    const fp32 = await ClipModel.load(model.folder, { intraOpThreads: threads, device });
    const int8 = await ClipModel.load(model.folder, {
      intraOpThreads: threads,
      precision: "quantized",
      device,
    });
    console.log(
      `ViT-B/32-shaped CLIP, random weights (seed ${SEED}); batch ${batch}; ${threads} threads each side (PyTorch intra-op ${peer.threads}, onnxruntime intra-op ${threads}); ${cpus().length} cores (${cpus()[0]?.model ?? "?"}); ${device.kind === "cpu" ? "" : `on ${deviceName(device)}; `}PyTorch ${peer.version} on ${openBlas[0] ?? "no OpenBLAS"}${process.env.OPENBLAS_CORETYPE ? ` (OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE})` : ""}, malloc ${values["peer-malloc"]}; int8 towers ${model.quantizeNote}`,
    );
    console.log(`load average at start ${loadAverage()}`);
    const headline: BenchRow[] = [];
    try {
      if (only.has("vision")) {
        headline.push(
          ...(await benchVision(
            { fp32, int8, peer, scratchDir },
            { count: Number(values.images), batch, rounds, threads },
          )),
        );
      }
      if (only.has("text")) {
        await benchText(
          { fp32, int8, peer, scratchDir },
          { count: Number(values.texts), batch, rounds, threads },
        );
      }
    } finally {
      await Promise.all([fp32.release(), int8.release()]);
    }
    console.log(`load average at end ${loadAverage()}`);
    if (device.kind === "cpu") return headline;
    return headline.map((row) => ({ ...row, stage: `${row.stage}, ${deviceName(device)}` }));
  } finally {
    peer.stop();
  }
}

interface Sides {
  fp32: ClipModel;
  int8: ClipModel;
  peer: PeerProcess;
  scratchDir: string;
}

interface RunSettings {
  count: number;
  batch: number;
  rounds: number;
  /** Threads each side runs a batch on. */
  threads: number;
}

async function benchVision(sides: Sides, settings: RunSettings): Promise<BenchRow[]> {
  const { fp32, int8, peer, scratchDir } = sides;
  const { batch, rounds } = settings;
  const imagePaths = await ensureImages(settings.count);
  const images = await Promise.all(imagePaths.map((path) => readFile(path)));
  const count = images.length;

  // The same pixel tensors on both sides: clipcrawl's preprocessing (PIL-exact) of every image.
  const pixels = new Float32Array(count * 3 * IMAGE_SIZE * IMAGE_SIZE);
  const planeSize = 3 * IMAGE_SIZE * IMAGE_SIZE;
  for (const [index, image] of images.entries()) {
    const prepared = await fp32.preprocessor.preprocess(image);
    if (prepared.height !== IMAGE_SIZE || prepared.width !== IMAGE_SIZE) {
      throw new Error(`preprocessed image ${index} is ${prepared.height}×${prepared.width}`);
    }
    pixels.set(prepared.pixels, index * planeSize);
  }
  const pixelsPath = join(scratchDir, "pixels.f32");
  await writeFile(pixelsPath, new Uint8Array(pixels.buffer));
  const peerTensorsOut = join(scratchDir, "peer-image-embeds.f32");
  const peerPilOut = join(scratchDir, "peer-image-embeds-pil.f32");

  const encoders = {
    fp32: new PipelinedImageEncoder(fp32, preprocessWorkers(), decodeConcurrency()),
    int8: new PipelinedImageEncoder(int8, preprocessWorkers(), decodeConcurrency()),
  };
  const runs = {
    torch: [] as number[],
    torchPil: [] as number[],
    onnx: [] as number[],
    stageFp32: [] as number[],
    stageInt8: [] as number[],
    busyFp32: [] as number[],
    busyInt8: [] as number[],
    torchCpu: [] as number[],
    stageFp32Cpu: [] as number[],
  };
  let outputs:
    | {
        onnx: EmbeddingMatrix;
        stageFp32: EncodedImages;
        stageInt8: EncodedImages;
      }
    | undefined;
  try {
    // Warm-up: one batch on every side, untimed.
    await stagePath(encoders.fp32, images.slice(0, batch), batch);
    await stagePath(encoders.int8, images.slice(0, batch), batch);
    await onnxOnly(fp32, pixels, Math.min(batch, count), batch);
    await peer.ask({
      op: "vision",
      pixels: pixelsPath,
      count: Math.min(batch, count),
      batch,
      out: peerTensorsOut,
    });
    for (let round = 0; round < rounds; round++) {
      const torch = await peer.ask({
        op: "vision",
        pixels: pixelsPath,
        count,
        batch,
        out: peerTensorsOut,
      });
      runs.torch.push(rateOf(torch));
      runs.torchCpu.push((torch.cpu_seconds as number) / count);
      const torchPil = await peer.ask({
        op: "vision_pil",
        images: imagePaths,
        batch,
        out: peerPilOut,
      });
      runs.torchPil.push(rateOf(torchPil));
      const onnx = await timed(() => onnxOnly(fp32, pixels, count, batch));
      runs.onnx.push(count / onnx.seconds);
      const cpuBefore = process.cpuUsage();
      const stageFp32 = await timed(() => stagePath(encoders.fp32, images, batch));
      runs.stageFp32Cpu.push(cpuSeconds(process.cpuUsage(cpuBefore)) / count);
      runs.stageFp32.push(count / stageFp32.seconds);
      runs.busyFp32.push(stageFp32.value.towerSeconds / stageFp32.seconds);
      const stageInt8 = await timed(() => stagePath(encoders.int8, images, batch));
      runs.stageInt8.push(count / stageInt8.seconds);
      runs.busyInt8.push(stageInt8.value.towerSeconds / stageInt8.seconds);
      outputs = { onnx: onnx.value, stageFp32: stageFp32.value, stageInt8: stageInt8.value };
    }
  } finally {
    await Promise.all([encoders.fp32.close(), encoders.int8.close()]);
  }
  if (outputs === undefined) return [];

  const torchRaw = await readFloats(peerTensorsOut);
  const torchPilNormalised = normaliseRows(matrixOf(await readFloats(peerPilOut), count));
  const tensorDiff = maxAbsDiff(outputs.onnx.data, torchRaw);
  const pilDiff = maxAbsDiff(outputs.stageFp32.embeddings.data, torchPilNormalised.data);
  const agreement = cosines(outputs.stageFp32.embeddings, outputs.stageInt8.embeddings);
  const between = meanPairwiseCosine(outputs.stageFp32.embeddings);

  const torch = median(runs.torch);
  const torchPil = median(runs.torchPil);
  const rows: (string | number)[][] = [
    [
      `vision tower, ${count} images, batch ${batch} (median of ${rounds})`,
      "images/s",
      "vs PyTorch tensors",
      "vs PyTorch + PIL",
      "rounds",
    ],
    row("PyTorch eval, preprocessed tensors", runs.torch, torch, torchPil),
    row(
      "PyTorch eval + PIL/numpy preprocessing (JPEG → embedding)",
      runs.torchPil,
      torch,
      torchPil,
    ),
    row("clipcrawl onnxruntime alone, same tensors, fp32", runs.onnx, torch, torchPil),
    row("clipcrawl embed path (JPEG → embedding), fp32", runs.stageFp32, torch, torchPil),
    row("clipcrawl embed path (JPEG → embedding), int8", runs.stageInt8, torch, torchPil),
  ];
  printTable(rows);
  const busyFp32 = median(runs.busyFp32);
  const busyInt8 = median(runs.busyInt8);
  console.log(
    `model busy share (the vision tower's session.run over the embed path's wall time): fp32 ${percent(busyFp32)} (rounds ${runs.busyFp32.map(percent).join(" ")}), int8 ${percent(busyInt8)} (rounds ${runs.busyInt8.map(percent).join(" ")}); the fp32 tower ran at ${(median(runs.stageFp32) / busyFp32).toFixed(1)} images/s beside the preprocessing workers, ${median(runs.onnx).toFixed(1)} alone`,
  );
  // CPU time an image, over every thread of each process: other processes on the machine change
  // the wall-clock rates far more than these, so a spread between runs that these do not show
  // comes from the machine (PyTorch's OpenMP and OpenBLAS threads count their spin-waits too).
  console.log(
    `CPU time an image (all threads): PyTorch on tensors ${ms(median(runs.torchCpu))} (rounds ${runs.torchCpu.map(ms).join(" ")}), clipcrawl fp32 embed path, preprocessing included ${ms(median(runs.stageFp32Cpu))} (rounds ${runs.stageFp32Cpu.map(ms).join(" ")}); ratio ${(median(runs.torchCpu) / median(runs.stageFp32Cpu)).toFixed(2)}×`,
  );
  const ceiling = await gemmCeiling(peer, settings);
  const towerRate = (imagesPerSecond: number) => (imagesPerSecond * visionFlops()) / 1e9;
  const limit = {
    onnxTower: towerRate(median(runs.onnx)),
    torchTower: towerRate(torch),
    ...ceiling,
  };
  console.log(
    `where the time goes: the tower is ${(visionFlops() / 1e9).toFixed(2)} GFLOP an image as exported (MatMuls ${percent(matMulShare())}); onnxruntime alone ran it at ${limit.onnxTower.toFixed(0)} GFLOP/s, ${percent(limit.onnxTower / limit.onnxGemm)} of its own MatMul rate on fc1's shape [${limit.m} × ${VISION_WIDTH}] × [${VISION_WIDTH} × ${VISION_MLP}] (${limit.onnxGemm.toFixed(0)} GFLOP/s, ${settings.threads} threads); PyTorch ${limit.torchTower.toFixed(0)} GFLOP/s, ${percent(limit.torchTower / limit.torchGemm)} of its nn.Linear rate on that shape (${limit.torchGemm.toFixed(0)} GFLOP/s); 2× PyTorch needs ${(2 * limit.torchTower).toFixed(0)} GFLOP/s, ${((2 * limit.torchTower) / limit.onnxGemm).toFixed(2)}× onnxruntime's MatMul rate`,
  );
  console.log(
    `agreement: image_embeds max abs diff onnxruntime vs PyTorch on the same tensors ${tensorDiff.max.toExponential(2)} (largest |value| ${tensorDiff.scale.toFixed(3)}); normalised embeddings, clipcrawl path vs PyTorch + PIL ${pilDiff.max.toExponential(2)}`,
  );
  console.log(
    `int8 vs fp32 cosine: min ${agreement.min.toFixed(4)}, mean ${agreement.mean.toFixed(4)} (fp32 cosine between different images: mean ${between.toFixed(3)})`,
  );
  const fp32Ratio = median(runs.stageFp32) / torch;
  const int8Ratio = median(runs.stageInt8) / torch;
  console.log(
    `targets: fp32 embed path ≥ ${TARGET_FP32}× PyTorch → ${fp32Ratio.toFixed(2)}× (${(median(runs.stageFp32) / torchPil).toFixed(2)}× PyTorch + PIL) ${verdict(fp32Ratio >= TARGET_FP32)}; int8 ≥ ${TARGET_INT8}× → ${int8Ratio.toFixed(2)}× (${(median(runs.stageInt8) / torchPil).toFixed(2)}×) ${verdict(int8Ratio >= TARGET_INT8)}; mean cosine ≥ ${TARGET_COSINE} → ${agreement.mean.toFixed(4)} (min ${agreement.min.toFixed(4)}) ${verdict(agreement.mean >= TARGET_COSINE)}`,
  );
  const pytorch = { name: "PyTorch eval", value: torch };
  return [
    {
      stage:
        fp32Ratio >= TARGET_FP32
          ? "embed, JPEG → image embedding, fp32"
          : `embed, JPEG → image embedding, fp32 (limit: the tower runs at ${percent(limit.onnxTower / limit.onnxGemm)} of onnxruntime's own MatMul rate, ${limit.onnxGemm.toFixed(0)} GFLOP/s; 2× PyTorch needs ${((2 * limit.torchTower) / limit.onnxGemm).toFixed(2)}× that)`,
      unit: "images/s",
      clipcrawl: median(runs.stageFp32),
      peer: pytorch,
      ratio: fp32Ratio,
      target: `≥ ${TARGET_FP32}× PyTorch`,
      met: fp32Ratio >= TARGET_FP32,
    },
    {
      stage: "embed, JPEG → image embedding, int8",
      unit: "images/s",
      clipcrawl: median(runs.stageInt8),
      peer: pytorch,
      ratio: int8Ratio,
      target: `≥ ${TARGET_INT8}× PyTorch`,
      met: int8Ratio >= TARGET_INT8,
    },
    {
      stage: "embed, vision tower busy share of the fp32 path's wall time",
      unit: "%",
      clipcrawl: busyFp32 * 100,
      target: `≥ ${TARGET_BUSY * 100} %`,
      met: busyFp32 >= TARGET_BUSY,
    },
    {
      stage: "embed, int8 vs fp32 mean cosine",
      unit: "",
      clipcrawl: agreement.mean,
      target: `≥ ${TARGET_COSINE}`,
      met: agreement.mean >= TARGET_COSINE,
    },
  ];
}

async function benchText(sides: Sides, settings: RunSettings): Promise<void> {
  const { fp32, int8, peer, scratchDir } = sides;
  const { batch, rounds } = settings;
  const english = CAPTIONS_BY_LANGUAGE.en;
  const captions = Array.from(
    { length: settings.count },
    (_, index) => english[index % english.length] as string,
  );
  const tokens = fp32.tokenizer.encodeBatch(captions, CONTEXT_LENGTH);
  const idsPath = join(scratchDir, "input-ids.i64");
  await writeFile(idsPath, new Uint8Array(tokens.inputIds.buffer));
  const peerOut = join(scratchDir, "peer-text-embeds.f32");
  const count = captions.length;
  const embedders = {
    fp32: new ClipEmbedder(fp32, { batchSize: batch }),
    int8: new ClipEmbedder(int8, { batchSize: batch }),
  };
  const runs = { torch: [] as number[], fp32: [] as number[], int8: [] as number[] };
  await embedders.fp32.embedTexts(captions.slice(0, batch));
  await embedders.int8.embedTexts(captions.slice(0, batch));
  await peer.ask({ op: "text", ids: idsPath, count: Math.min(batch, count), batch, out: peerOut });
  let last: { fp32: EmbeddingMatrix; int8: EmbeddingMatrix } | undefined;
  for (let round = 0; round < rounds; round++) {
    runs.torch.push(
      rateOf(await peer.ask({ op: "text", ids: idsPath, count, batch, out: peerOut })),
    );
    const ours = await timed(() => embedders.fp32.embedTexts(captions));
    runs.fp32.push(count / ours.seconds);
    const quantized = await timed(() => embedders.int8.embedTexts(captions));
    runs.int8.push(count / quantized.seconds);
    last = { fp32: ours.value.embeddings, int8: quantized.value.embeddings };
  }
  if (last === undefined) return;
  // Raw projections on the same ids, for the max abs diff.
  const ours = new Float32Array(count * fp32.embeddingSize);
  for (let start = 0; start < count; start += batch) {
    const slice = fp32.tokenizer.encodeBatch(captions.slice(start, start + batch), CONTEXT_LENGTH);
    ours.set((await fp32.encodeText(slice)).data, start * fp32.embeddingSize);
  }
  const diff = maxAbsDiff(ours, await readFloats(peerOut));
  const agreement = cosines(last.fp32, last.int8);
  const distinct = meanPairwiseCosine(last.fp32, english.length);
  const torch = median(runs.torch);
  printTable([
    [
      `text tower, ${count} captions, context ${CONTEXT_LENGTH}, batch ${batch} (median of ${rounds})`,
      "texts/s",
      "vs PyTorch",
      "rounds",
    ],
    textRow("PyTorch eval, token ids", runs.torch, torch),
    textRow("clipcrawl (tokenise + onnxruntime), fp32", runs.fp32, torch),
    textRow("clipcrawl (tokenise + onnxruntime), int8", runs.int8, torch),
  ]);
  console.log(
    `agreement: text_embeds max abs diff onnxruntime vs PyTorch on the same ids ${diff.max.toExponential(2)} (largest |value| ${diff.scale.toFixed(3)}); int8 vs fp32 cosine min ${agreement.min.toFixed(4)}, mean ${agreement.mean.toFixed(4)} (fp32 cosine between different captions: mean ${distinct.toFixed(3)})`,
  );
}

/** The stage's image path: batch k + 1 preprocessed on the workers while batch k is encoded. */
async function stagePath(
  encoder: PipelinedImageEncoder,
  images: readonly Uint8Array[],
  batch: number,
): Promise<EncodedImages> {
  const results: EncodedImages[] = [];
  let towerSeconds = 0;
  let preparing = encoder.prepare(images.slice(0, batch));
  for (let start = 0; start < images.length; start += batch) {
    const prepared = await preparing;
    if (start + batch < images.length) {
      preparing = encoder.prepare(images.slice(start + batch, start + 2 * batch));
    }
    results.push(await encoder.encode(prepared));
  }
  const dimensions = results[0]?.embeddings.dimensions ?? 0;
  const data = new Float32Array(images.length * dimensions);
  let row = 0;
  for (const result of results) {
    if (result.failures.length > 0)
      throw new Error(`images failed: ${result.failures[0]?.message}`);
    data.set(result.embeddings.data, row * dimensions);
    row += result.embeddings.rows;
    towerSeconds += result.towerSeconds;
  }
  return {
    embeddings: { rows: row, dimensions, data },
    indices: Array.from({ length: row }, (_, index) => index),
    failures: [],
    towerSeconds,
  };
}

async function onnxOnly(
  model: ClipModel,
  pixels: Float32Array,
  count: number,
  batch: number,
): Promise<EmbeddingMatrix> {
  const planeSize = 3 * IMAGE_SIZE * IMAGE_SIZE;
  let data = new Float32Array(0);
  let dimensions = 0;
  for (let start = 0; start < count; start += batch) {
    const rows = Math.min(batch, count - start);
    const input: PixelBatch = {
      batchSize: rows,
      height: IMAGE_SIZE,
      width: IMAGE_SIZE,
      pixels: pixels.subarray(start * planeSize, (start + rows) * planeSize),
    };
    const output = await model.encodeImages(input);
    if (data.length === 0) {
      dimensions = output.dimensions;
      data = new Float32Array(count * dimensions);
    }
    data.set(output.data, start * dimensions);
  }
  return { rows: count, dimensions, data };
}

/** Multiply-adds × 2 of one image through the vision tower as exported (what PyTorch runs). */
function visionFlops(): number {
  const patches = VISION_TOKENS - 1;
  const embedding = 2 * patches * 3 * PATCH_SIZE * PATCH_SIZE * VISION_WIDTH;
  const projections = 2 * VISION_TOKENS * VISION_WIDTH * (4 * VISION_WIDTH + 2 * VISION_MLP);
  const attention = 2 * 2 * VISION_TOKENS * VISION_TOKENS * VISION_WIDTH;
  return embedding + VISION_LAYERS * (projections + attention) + 2 * VISION_WIDTH * PROJECTION_DIM;
}

/** Share of the tower's FLOPs in MatMuls by a weight (the rest: the patch Conv, attention). */
function matMulShare(): number {
  const projections = 2 * VISION_TOKENS * VISION_WIDTH * (4 * VISION_WIDTH + 2 * VISION_MLP);
  return (VISION_LAYERS * projections) / visionFlops();
}

/**
 * The rate each side's BLAS reaches on the tower's largest MatMul (fc1: [batch × tokens, 768] ×
 * [768, 3072]) with the bench's threads, median of 5: onnxruntime's MatMul (MLAS) in a graph opened
 * with the embed path's session options, and PyTorch's nn.Linear (OpenBLAS). The towers cannot
 * run faster than this; their ratio bounds the embed ratio a faster graph could reach.
 */
async function gemmCeiling(
  peer: PeerProcess,
  { batch, rounds, threads }: { batch: number; rounds: number; threads: number },
): Promise<{ m: number; onnxGemm: number; torchGemm: number }> {
  const m = batch * VISION_TOKENS;
  const [k, n] = [VISION_WIDTH, VISION_MLP];
  const flop = 2 * m * k * n;
  const weight = new Float32Array(k * n).map((_, index) => Math.sin(index) * 0.03);
  const shape = (dims: number[]) => ({
    tensorType: { elemType: FLOAT, shape: { dim: dims.map((dimValue) => ({ dimValue })) } },
  });
  const graph = onnx.GraphProto.create({
    name: "fc1",
    // The product's first row is the output: reading back all of it would add a copy of
    // m × n floats into JavaScript that PyTorch's in-process product does not pay.
    node: [
      onnx.NodeProto.create({ opType: "MatMul", input: ["x", "w"], output: ["product"] }),
      onnx.NodeProto.create({
        opType: "Slice",
        input: ["product", "zero", "one", "zero"],
        output: ["y"],
      }),
    ],
    input: [onnx.ValueInfoProto.create({ name: "x", type: shape([m, k]) })],
    output: [onnx.ValueInfoProto.create({ name: "y", type: shape([1, n]) })],
    initializer: [
      ...[
        ["zero", 0n],
        ["one", 1n],
      ].map(([name, value]) =>
        onnx.TensorProto.create({
          name: name as string,
          dims: [1],
          dataType: onnx.TensorProto.DataType.INT64,
          rawData: new Uint8Array(new BigInt64Array([value as bigint]).buffer),
        }),
      ),
      onnx.TensorProto.create({
        name: "w",
        dims: [k, n],
        dataType: FLOAT,
        rawData: new Uint8Array(weight.buffer),
      }),
    ],
  });
  const bytes = onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: "", version: 14 }], graph }),
  ).finish();
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: threads,
    graphOptimizationLevel: "all",
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  });
  const repeats = Math.max(5, rounds);
  try {
    const feeds = { x: new ort.Tensor("float32", new Float32Array(m * k).fill(0.5), [m, k]) };
    await session.run(feeds);
    const onnxSeconds: number[] = [];
    for (let round = 0; round < repeats; round++) {
      onnxSeconds.push((await timed(() => session.run(feeds))).seconds);
    }
    const torch = await peer.ask({ op: "gemm", m, k, n, rounds: repeats });
    return {
      m,
      onnxGemm: flop / median(onnxSeconds) / 1e9,
      torchGemm: flop / median(torch.round_seconds as number[]) / 1e9,
    };
  } finally {
    await session.release();
  }
}

// ---------------------------------------------------------------------------------------------
// The model folder and the images, cached under bench/.data/embed/.

interface BenchModel {
  folder: string;
  quantizeNote: string;
}

async function ensureModel(): Promise<BenchModel> {
  const folder = join(await benchDataPath("embed", "model", "x"), "..");
  const stampPath = join(folder, "bench-model.json");
  const tiny = await readTinyTokenizer();
  const stamp = JSON.stringify({
    version: MODEL_VERSION,
    seed: SEED,
    vocabulary: tiny.vocabularySize,
  });
  const current = existsSync(stampPath) ? await readFile(stampPath, "utf8") : "";
  if (current !== stamp) {
    console.log("exporting the ViT-B/32-shaped CLIP from PyTorch (once; about a minute)…");
    await rm(folder, { recursive: true, force: true });
    await mkdir(join(folder, "onnx"), { recursive: true });
    await copyFile(tiny.tokenizer, join(folder, "tokenizer.json"));
    await copyFile(tiny.tokenizerConfig, join(folder, "tokenizer_config.json"));
    await writeFile(join(folder, "config.json"), json(modelConfig(tiny)));
    await writeFile(join(folder, "preprocessor_config.json"), json(PREPROCESSOR_CONFIG));
    const exported = spawnSync(
      PYTHON,
      [
        PEER,
        "export",
        folder,
        "--vocab-size",
        String(tiny.vocabularySize),
        "--eot-id",
        String(tiny.endId),
        "--seed",
        String(SEED),
      ],
      { stdio: ["ignore", "inherit", "inherit"] },
    );
    if (exported.status !== 0)
      throw new Error(`the peer's ONNX export exited with ${exported.status}`);
    await writeFile(stampPath, stamp);
  }
  // Quantised on every run: the towers must come from this checkout's quantiser.
  const started = performance.now();
  const result = await quantizeClipModel(folder);
  const seconds = (performance.now() - started) / 1000;
  const quantizeNote = `quantised now in ${seconds.toFixed(1)} s (${result.towers
    .map(
      (tower) =>
        `${tower.report.quantizedMatMuls} MatMuls, ${(tower.report.bytesBefore / 1e6).toFixed(0)} → ${(tower.report.bytesAfter / 1e6).toFixed(0)} MB`,
    )
    .join("; ")})`;
  return { folder, quantizeNote };
}

interface TinyTokenizer {
  tokenizer: string;
  tokenizerConfig: string;
  vocabularySize: number;
  endId: number;
}

/** The tiny fixture model's tokenizer (a real CLIP-style BPE); the text tower is sized to it. */
async function readTinyTokenizer(): Promise<TinyTokenizer> {
  const folder = join(await benchDataPath("embed", "tiny", "x"), "..");
  const summary = await generateTinyClipModel(folder);
  const tokenizer = join(folder, "tokenizer.json");
  const document = JSON.parse(await readFile(tokenizer, "utf8")) as {
    model: { vocab: Record<string, number> };
  };
  const endId = document.model.vocab["<|endoftext|>"];
  if (endId === undefined) throw new Error(`${tokenizer} has no <|endoftext|>`);
  return {
    tokenizer,
    tokenizerConfig: join(folder, "tokenizer_config.json"),
    vocabularySize: summary.vocabularySize,
    endId,
  };
}

const PREPROCESSOR_CONFIG = {
  image_processor_type: "CLIPImageProcessor",
  do_convert_rgb: true,
  do_resize: true,
  size: { shortest_edge: IMAGE_SIZE },
  resample: 3,
  do_center_crop: true,
  crop_size: { height: IMAGE_SIZE, width: IMAGE_SIZE },
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073],
  image_std: [0.26862954, 0.26130258, 0.27577711],
};

function modelConfig(tiny: TinyTokenizer): object {
  return {
    _name_or_path: "clipcrawl/bench-vit-b-32-random",
    architectures: ["CLIPModel"],
    model_type: "clip",
    projection_dim: 512,
    text_config: {
      model_type: "clip_text_model",
      vocab_size: tiny.vocabularySize,
      max_position_embeddings: CONTEXT_LENGTH,
      hidden_size: 512,
      intermediate_size: 2048,
      num_hidden_layers: 12,
      num_attention_heads: 8,
      hidden_act: "quick_gelu",
      eos_token_id: tiny.endId,
    },
    vision_config: {
      model_type: "clip_vision_model",
      image_size: IMAGE_SIZE,
      patch_size: 32,
      hidden_size: 768,
      intermediate_size: 3072,
      num_hidden_layers: 12,
      num_attention_heads: 12,
      hidden_act: "quick_gelu",
    },
  };
}

/**
 * Photo-like pictures (a smooth random field plus grain) of assorted shapes, through the
 * download stage's resizer with its defaults: what `clipcrawl embed` reads in practice.
 */
async function ensureImages(count: number): Promise<string[]> {
  const folder = join(await benchDataPath("embed", "images", "x"), "..");
  const paths = Array.from({ length: count }, (_, index) =>
    join(folder, `${String(index).padStart(5, "0")}.jpg`),
  );
  if (paths.every((path) => existsSync(path))) return paths;
  const resizer = new ImageResizer(downloadConfigSchema.parse({}));
  const random = seededUniform(7);
  const aspects = [4 / 3, 3 / 2, 16 / 9, 1, 3 / 4, 2 / 3];
  for (const [index, path] of paths.entries()) {
    const { pixels, width, height } = await photoLikePixels(random, {
      long: 400 + Math.floor(random() * 800),
      aspect: aspects[index % aspects.length] as number,
      cell: 40,
      grain: 8,
    });
    const photo = await sharp(pixels, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toBuffer();
    const resized = await resizer.resize(photo);
    if (!resized.ok) throw new Error(`bench image ${index}: ${resized.error}`);
    await writeFile(path, resized.image);
  }
  return paths;
}

// ---------------------------------------------------------------------------------------------
// The PyTorch peer: one long-lived process, one JSON command a line.

class PeerProcess {
  private constructor(
    private readonly child: ChildProcessByStdio<Writable, Readable, null>,
    private readonly lines: AsyncIterator<string>,
    readonly threads: number,
    readonly version: string,
  ) {}

  static async start(
    folder: string,
    { threads, tunedMalloc, device }: { threads: number; tunedMalloc: boolean; device: string },
  ): Promise<PeerProcess> {
    const tiny = JSON.parse(await readFile(join(folder, "config.json"), "utf8")) as {
      text_config: { vocab_size: number; eos_token_id: number };
    };
    const child = spawn(
      PYTHON,
      [
        PEER,
        "serve",
        "--vocab-size",
        String(tiny.text_config.vocab_size),
        "--eot-id",
        String(tiny.text_config.eos_token_id),
        "--seed",
        String(SEED),
        "--threads",
        String(threads),
        "--preprocessor-config",
        join(folder, "preprocessor_config.json"),
        "--device",
        device,
      ],
      {
        env: {
          ...process.env,
          OMP_NUM_THREADS: String(threads),
          OPENBLAS_NUM_THREADS: String(threads),
          ...(tunedMalloc ? TUNED_MALLOC : {}),
        },
        stdio: ["pipe", "pipe", "inherit"],
      },
    );
    const reader: Interface = createInterface({ input: child.stdout });
    const lines = reader[Symbol.asyncIterator]();
    const first = await lines.next();
    if (first.done === true) throw new Error("the PyTorch peer exited before it was ready");
    const ready = JSON.parse(first.value) as { threads: number; torch: string };
    return new PeerProcess(child, lines, ready.threads, ready.torch);
  }

  async ask(command: Record<string, unknown>): Promise<Record<string, unknown>> {
    this.child.stdin.write(`${JSON.stringify(command)}\n`);
    const line = await this.lines.next();
    if (line.done === true) throw new Error(`the PyTorch peer exited during ${command.op}`);
    const reply = JSON.parse(line.value) as Record<string, unknown>;
    if (typeof reply.error === "string") throw new Error(`PyTorch peer: ${reply.error}`);
    return reply;
  }

  stop(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

function checkPeer(): string | undefined {
  if (!existsSync(PYTHON)) return `${PYTHON} is missing`;
  const probe = spawnSync(PYTHON, ["-c", "import torch, numpy, PIL"], { encoding: "utf8" });
  if (probe.status !== 0) return (probe.stderr.trim().split("\n").pop() ?? "import failed").trim();
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Arithmetic and printing.

function preprocessWorkers(): number {
  const configured = embedConfigSchema.parse({}).preprocessWorkers;
  return configured > 0 ? configured : Math.max(1, Math.floor(cpus().length / 4));
}

function decodeConcurrency(): number {
  return embedConfigSchema.parse({}).decodeConcurrency;
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; seconds: number }> {
  const started = performance.now();
  const value = await run();
  return { value, seconds: (performance.now() - started) / 1000 };
}

function rateOf(reply: Record<string, unknown>): number {
  return (reply.items as number) / (reply.seconds as number);
}

async function readFloats(path: string): Promise<Float32Array> {
  const bytes = await readFile(path);
  return new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
}

function matrixOf(data: Float32Array, rows: number): EmbeddingMatrix {
  return { rows, dimensions: data.length / rows, data };
}

function maxAbsDiff(left: Float32Array, right: Float32Array): { max: number; scale: number } {
  if (left.length !== right.length) {
    throw new Error(`outputs differ in size: ${left.length} and ${right.length} values`);
  }
  let max = 0;
  let scale = 0;
  for (let index = 0; index < left.length; index++) {
    max = Math.max(max, Math.abs((left[index] as number) - (right[index] as number)));
    scale = Math.max(scale, Math.abs(left[index] as number));
  }
  return { max, scale };
}

/** Row-wise cosine of two matrices of the same inputs. */
function cosines(left: EmbeddingMatrix, right: EmbeddingMatrix): { min: number; mean: number } {
  const a = normaliseRows(left);
  const b = normaliseRows(right);
  let min = 1;
  let sum = 0;
  for (let row = 0; row < a.rows; row++) {
    let dot = 0;
    for (let column = 0; column < a.dimensions; column++) {
      const index = row * a.dimensions + column;
      dot += (a.data[index] as number) * (b.data[index] as number);
    }
    min = Math.min(min, dot);
    sum += dot;
  }
  return { min, mean: sum / a.rows };
}

/** Mean cosine between different rows (the first `distinctRows`, when rows repeat). */
function meanPairwiseCosine(matrix: EmbeddingMatrix, distinctRows = matrix.rows): number {
  const a = normaliseRows(matrix);
  const rows = Math.min(distinctRows, a.rows);
  let sum = 0;
  let pairs = 0;
  for (let left = 0; left < rows; left++) {
    for (let right = left + 1; right < rows; right++) {
      let dot = 0;
      for (let column = 0; column < a.dimensions; column++) {
        dot +=
          (a.data[left * a.dimensions + column] as number) *
          (a.data[right * a.dimensions + column] as number);
      }
      sum += dot;
      pairs++;
    }
  }
  return pairs === 0 ? Number.NaN : sum / pairs;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function row(label: string, runs: number[], torch: number, torchPil: number): (string | number)[] {
  const rate = median(runs);
  return [
    label,
    rate.toFixed(1),
    `${(rate / torch).toFixed(2)}×`,
    `${(rate / torchPil).toFixed(2)}×`,
    runs.map((value) => value.toFixed(1)).join(" "),
  ];
}

function textRow(label: string, runs: number[], torch: number): (string | number)[] {
  const rate = median(runs);
  return [
    label,
    rate.toFixed(1),
    `${(rate / torch).toFixed(2)}×`,
    runs.map((value) => value.toFixed(1)).join(" "),
  ];
}

function cpuSeconds(usage: NodeJS.CpuUsage): number {
  return (usage.user + usage.system) / 1e6;
}

function ms(seconds: number): string {
  return `${(seconds * 1000).toFixed(0)} ms`;
}

function percent(share: number): string {
  return `${(share * 100).toFixed(1)} %`;
}

function verdict(met: boolean): string {
  return met ? "(met)" : "(NOT met)";
}

function json(value: object): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}
