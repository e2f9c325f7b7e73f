/**
 * Download throughput, and clipcrawl's resizer against OpenCV's, on the same photos in one run.
 *
 * - end to end: `download()` on all cores, fetching from a local server (a child process) that
 *   serves ~200 photo-like JPEGs of 640–2048 px, resizing to 256 (border mode, JPEG q95).
 * - fetches/s with resizing off (`disableAllReencoding`): the network path alone. Target ≥ 2,000/s.
 * - per core: decode + resize + encode of the same photos on one pinned core, clipcrawl's
 *   ImageResizer vs OpenCV doing what img2dataset's resizer does (bench/peers/opencv_resize.py,
 *   Debian's python3-opencv). Target: clipcrawl ≥ 1.5× OpenCV.
 *
 *   npx tsx bench/download.ts [--photos 200] [--samples 4000] [--fetches 20000]
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { downloadConfigSchema } from "../src/config/schema.js";
import { download } from "../src/stages/download/download.js";
import { ImageResizer } from "../src/stages/download/resizer.js";
import { benchDataPath, printTable } from "./support.js";

const PYTHON = "/usr/bin/python3";
const OPENCV_PEER = fileURLToPath(new URL("./peers/opencv_resize.py", import.meta.url));
const HOSTS = 16;

export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      photos: { type: "string", default: "200" },
      samples: { type: "string", default: "4000" },
      fetches: { type: "string", default: "20000" },
      "resize-passes": { type: "string", default: "2" },
      "per-core-resize": { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  if (values["per-core-resize"]) {
    await perCoreResizeChild(Number(values["resize-passes"]));
    return;
  }
  const cores = cpus().length;
  const photos = await ensurePhotos(Number(values.photos));
  const photoBytes = await Promise.all(photos.map((path) => readFile(path)));
  const meanKb =
    photoBytes.reduce((sum, bytes) => sum + bytes.length, 0) / photoBytes.length / 1024;
  console.log(`${photos.length} photos, 640–2048 px, mean ${meanKb.toFixed(0)} KB; ${cores} cores`);

  const webImages = await ensureWebImages(photos);
  const server = await startPhotoServer([...photos, ...webImages]);
  try {
    const rows: (string | number)[][] = [["run", "samples", "seconds", "samples/s", "success"]];
    for (const workers of [cores, 1]) {
      const run = await timeDownload(server.port, Number(values.samples), { workers });
      rows.push([`end to end, resize to 256, ${workers} worker(s)`, ...run]);
    }
    const fetchRun = await timeDownload(server.port, Number(values.fetches), {
      workers: cores,
      disableAllReencoding: true,
    });
    rows.push([`fetch only (resizing off), photos, ${cores} worker(s)`, ...fetchRun]);
    const webRun = await timeDownload(server.port, Number(values.fetches), {
      workers: cores,
      disableAllReencoding: true,
      path: "w",
    });
    rows.push([`fetch only (resizing off), 512-px web JPEGs, ${cores} worker(s)`, ...webRun]);
    printTable(rows);
    console.log(
      `fetches/s with resizing off: ${webRun[2]} on web-sized JPEGs, ${fetchRun[2]} on full photos (target ≥ 2,000)`,
    );
  } finally {
    server.process.kill();
  }

  const passes = Number(values["resize-passes"]);
  const ours = perCoreClipcrawl(passes);
  const peer = perCoreOpenCv(photos, passes);
  const rows: (string | number)[][] = [
    ["resizer, one pinned core", "images", "seconds", "images/s"],
  ];
  rows.push(["clipcrawl (sharp/libvips)", ours.images, ours.seconds.toFixed(2), rate(ours)]);
  if (peer === undefined) {
    printTable(rows);
    console.log(
      "OpenCV peer not available (apt-get install -y python3-opencv libopenblas0-pthread); clipcrawl's figure alone",
    );
    return;
  }
  rows.push(["OpenCV (img2dataset's resizer)", peer.images, peer.seconds.toFixed(2), rate(peer)]);
  printTable(rows);
  const ratio = ours.images / ours.seconds / (peer.images / peer.seconds);
  console.log(`clipcrawl / OpenCV per core: ${ratio.toFixed(2)}× (target ≥ 1.5×)`);
}

function rate(run: { images: number; seconds: number }): string {
  return (run.images / run.seconds).toFixed(1);
}

async function timeDownload(
  port: number,
  samples: number,
  overrides: { workers: number; disableAllReencoding?: boolean; path?: "p" | "w" },
): Promise<[number, string, string, string]> {
  const root = await benchDataPath("download-runs", `run-${process.pid}-${Date.now()}`);
  await rm(root, { recursive: true, force: true });
  const list = join(`${root}-urls.txt`);
  const urls = Array.from(
    { length: samples },
    (_, index) => `http://h${index % HOSTS}.bench/${overrides.path ?? "p"}/${index}.jpg`,
  );
  await writeFile(list, urls.join("\n"));
  const summary = await download({
    root,
    inputs: [list],
    config: {
      allowPrivateAddresses: true,
      connectTo: Array.from(
        { length: HOSTS },
        (_, index) => `h${index}.bench:80:127.0.0.1:${port}`,
      ),
      samplesPerShard: Math.ceil(samples / (overrides.workers * 2)),
      workers: overrides.workers,
      disableAllReencoding: overrides.disableAllReencoding ?? false,
      maxBodyBytes: 32 * 1024 * 1024,
    },
  });
  await rm(root, { recursive: true, force: true });
  await rm(list, { force: true });
  return [
    summary.totals.count,
    summary.seconds.toFixed(2),
    summary.samplesPerSecond.toFixed(0),
    `${((100 * summary.totals.successes) / Math.max(1, summary.totals.count)).toFixed(1)}%`,
  ];
}

/** Photo-like JPEGs: a smooth random field (sky, walls, skin) plus fine grain (texture, noise). */
async function ensurePhotos(count: number): Promise<string[]> {
  const folder = await benchDataPath("download-photos", "x");
  const dir = join(folder, "..");
  const existing = (await readdir(dir)).filter((name) => name.startsWith("photo-")).sort();
  if (existing.length >= count) return existing.slice(0, count).map((name) => join(dir, name));
  const random = mulberry32(42);
  const aspects = [4 / 3, 3 / 2, 16 / 9, 1, 3 / 4, 2 / 3];
  const paths: string[] = [];
  for (let index = 0; index < count; index++) {
    const long = 640 + Math.floor(random() * (2048 - 640));
    const aspect = aspects[index % aspects.length] as number;
    const width = aspect >= 1 ? long : Math.round(long * aspect);
    const height = aspect >= 1 ? Math.round(long / aspect) : long;
    const fieldWidth = Math.max(2, Math.round(width / 48));
    const fieldHeight = Math.max(2, Math.round(height / 48));
    const field = Buffer.alloc(fieldWidth * fieldHeight * 3);
    for (let offset = 0; offset < field.length; offset++)
      field[offset] = Math.floor(random() * 256);
    const smooth = await sharp(field, {
      raw: { width: fieldWidth, height: fieldHeight, channels: 3 },
    })
      .resize(width, height, { kernel: "cubic" })
      .raw()
      .toBuffer();
    for (let offset = 0; offset < smooth.length; offset++) {
      const grain = Math.floor(random() * 25) - 12;
      smooth[offset] = Math.min(255, Math.max(0, (smooth[offset] as number) + grain));
    }
    const path = join(dir, `photo-${String(index).padStart(4, "0")}.jpg`);
    await sharp(smooth, { raw: { width, height, channels: 3 } })
      .jpeg({ quality: 88 })
      .toFile(path);
    paths.push(path);
  }
  return paths;
}

/** The photos as a web page would serve them: 512 px on the long side, JPEG q85. */
async function ensureWebImages(photos: string[]): Promise<string[]> {
  const paths: string[] = [];
  for (const photo of photos) {
    const path = photo.replace(/photo-(\d+)\.jpg$/, "web-$1.jpg");
    if (!existsSync(path)) {
      await sharp(photo).resize(512, 512, { fit: "inside" }).jpeg({ quality: 85 }).toFile(path);
    }
    paths.push(path);
  }
  return paths;
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/** The photo server runs in its own process, so it does not share the bench's event loop. */
const SERVER_SCRIPT = `
const http = require("node:http");
const fs = require("node:fs");
const paths = process.argv.slice(1);
const photos = paths.filter((path) => !path.includes("/web-")).map((path) => fs.readFileSync(path));
const web = paths.filter((path) => path.includes("/web-")).map((path) => fs.readFileSync(path));
const server = http.createServer((request, response) => {
  const index = Number((/(\\d+)\\.jpg/.exec(request.url) || [])[1] || 0);
  const set = request.url.startsWith("/w/") ? web : photos;
  const body = set[index % set.length];
  response.writeHead(200, { "content-type": "image/jpeg", "content-length": body.length });
  response.end(body);
});
server.keepAliveTimeout = 60000;
server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\\n"));
`;

async function startPhotoServer(
  photos: string[],
): Promise<{ port: number; process: ChildProcess }> {
  const child = spawn(process.execPath, ["-e", SERVER_SCRIPT, ...photos], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
    child.once("exit", (code) => reject(new Error(`photo server exited with ${code}`)));
  });
  return { port, process: child };
}

/** clipcrawl's resizer in a child pinned to core 0, one libuv thread, as a per-core figure. */
function perCoreClipcrawl(passes: number): { images: number; seconds: number } {
  const script = fileURLToPath(import.meta.url);
  const command = [
    process.execPath,
    "--import",
    "tsx",
    script,
    "--per-core-resize",
    "--resize-passes",
    String(passes),
  ];
  const result = spawnSync(pinned(command)[0] as string, pinned(command).slice(1), {
    env: { ...process.env, UV_THREADPOOL_SIZE: "1" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  return JSON.parse(result.stdout.trim().split("\n").pop() ?? "{}");
}

async function perCoreResizeChild(passes: number): Promise<void> {
  sharp.concurrency(1);
  const photos = await ensurePhotos(200);
  const images = await Promise.all(photos.map((path) => readFile(path)));
  const resizer = new ImageResizer(downloadConfigSchema.parse({ imageSize: 256 }));
  const started = performance.now();
  let count = 0;
  for (let pass = 0; pass < passes; pass++) {
    // Two in flight keep the one libuv thread busy while JavaScript handles the other.
    for (let index = 0; index < images.length; index += 2) {
      const batch = images.slice(index, index + 2);
      const results = await Promise.all(batch.map((image) => resizer.resize(image)));
      for (const result of results) if (!result.ok) throw new Error(result.error);
      count += batch.length;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`${JSON.stringify({ images: count, seconds })}\n`);
}

function perCoreOpenCv(
  photos: string[],
  passes: number,
): { images: number; seconds: number } | undefined {
  if (!existsSync(PYTHON)) return undefined;
  const probe = spawnSync(PYTHON, ["-c", "import cv2"], { stdio: "ignore" });
  if (probe.status !== 0) return undefined;
  const command = pinned([PYTHON, OPENCV_PEER, "256", String(passes), ...photos]);
  const result = spawnSync(command[0] as string, command.slice(1), {
    env: { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1" },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  if (result.status !== 0) return undefined;
  return JSON.parse(result.stdout.trim());
}

function pinned(command: string[]): string[] {
  return existsSync("/usr/bin/taskset") ? ["/usr/bin/taskset", "-c", "0", ...command] : command;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  await main(process.argv.slice(2));
}
