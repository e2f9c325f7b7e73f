/**
 * Helpers shared by the benchmarks: bench data on disk, timing, running a peer command, printing
 * a table, and the headline rows each bench's `main` returns for bench/RESULTS.md.
 */
import { spawnSync } from "node:child_process";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { cpus, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";

export const BENCH_DATA = fileURLToPath(new URL("./.data/", import.meta.url));

export async function benchDataPath(...parts: string[]): Promise<string> {
  const path = join(BENCH_DATA, ...parts);
  await mkdir(join(path, ".."), { recursive: true });
  return path;
}

export async function fileBytes(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch {
    return undefined;
  }
}

/** Wall-clock seconds of a shell command (the peer), or undefined when it failed. */
export function timeShell(command: string): number | undefined {
  const started = performance.now();
  const result = spawnSync("sh", ["-c", command], { stdio: ["ignore", "ignore", "inherit"] });
  if (result.status !== 0) return undefined;
  return (performance.now() - started) / 1000;
}

export function megabytes(bytes: number): number {
  return bytes / 1e6;
}

export function printTable(rows: (string | number)[][]): void {
  const widths =
    rows[0]?.map((_, column) => Math.max(...rows.map((row) => String(row[column]).length))) ?? [];
  for (const row of rows) {
    console.log(row.map((cell, column) => String(cell).padEnd(widths[column] ?? 0)).join("  "));
  }
}

export function loadAverage(): string {
  return loadavg()
    .map((value) => value.toFixed(2))
    .join(" ");
}

export interface PhotoShape {
  /** The long side in pixels. */
  long: number;
  /** Width ÷ height. */
  aspect: number;
  /** Pixels per cell of the random field that is smoothed into the picture. */
  cell: number;
  /** Grain: each channel moves by up to ± this much. */
  grain: number;
}

/**
 * A photo-like picture, raw RGB: a smooth random field (sky, walls, skin) plus fine grain
 * (texture, noise), so JPEG sizes and decode costs look like real photos' rather than flat fills.
 */
export async function photoLikePixels(
  random: () => number,
  shape: PhotoShape,
): Promise<{ pixels: Buffer; width: number; height: number }> {
  const { long, aspect } = shape;
  const width = aspect >= 1 ? long : Math.round(long * aspect);
  const height = aspect >= 1 ? Math.round(long / aspect) : long;
  const fieldWidth = Math.max(2, Math.round(width / shape.cell));
  const fieldHeight = Math.max(2, Math.round(height / shape.cell));
  const field = Buffer.alloc(fieldWidth * fieldHeight * 3);
  for (let offset = 0; offset < field.length; offset++) field[offset] = Math.floor(random() * 256);
  const pixels = await sharp(field, {
    raw: { width: fieldWidth, height: fieldHeight, channels: 3 },
  })
    .resize(width, height, { kernel: "cubic" })
    .raw()
    .toBuffer();
  for (let offset = 0; offset < pixels.length; offset++) {
    const grain = Math.floor(random() * (2 * shape.grain + 1)) - shape.grain;
    pixels[offset] = Math.min(255, Math.max(0, (pixels[offset] as number) + grain));
  }
  return { pixels, width, height };
}

/**
 * One headline figure of a bench, as bench/RESULTS.md shows it: clipcrawl's figure next to the
 * peer's (or the limit's) from the same run on the same input, and the target it is held to.
 */
export interface BenchRow {
  /** What was measured, e.g. "extract, 1 worker". */
  stage: string;
  /** The figures' unit, e.g. "MB/s", "ms". */
  unit: string;
  clipcrawl: number;
  /** The peer measured in the same run ("zcat", "faiss HNSW"), when there is one. */
  peer?: { name: string; value: number };
  /** The figure the target compares, e.g. clipcrawl ÷ peer for rates. */
  ratio?: number;
  /** The target as the bench states it, e.g. "≥ 0.5× zcat", "< 200 ms". */
  target: string;
  /** Whether the target was met; absent where there is no target or the run could not tell. */
  met?: boolean;
}

/** The machine a bench ran on, and when. */
export interface BenchMachine {
  date: string;
  cores: number;
  cpu: string;
  memoryGb: number;
  /** 1, 5 and 15 minute load averages when the bench started, and when it ended. */
  loadStart: number[];
  loadEnd: number[];
  node: string;
}

export interface BenchResult {
  bench: string;
  machine: BenchMachine;
  rows: BenchRow[];
  /** Why the bench gave no figures (it threw), when it did not. */
  error?: string;
}

export function currentMachine(loadStart: number[]): BenchMachine {
  return {
    date: new Date().toISOString().slice(0, 16).replace("T", " "),
    cores: cpus().length,
    cpu: cpus()[0]?.model.trim() ?? "unknown",
    memoryGb: Math.round(totalmem() / 2 ** 30),
    loadStart,
    loadEnd: loadavg(),
    node: process.version,
  };
}

export const RESULTS_FILE = fileURLToPath(new URL("./RESULTS.md", import.meta.url));
const DATA_MARK = "<!-- bench-results";

/** The results a RESULTS.md holds (its data comment), [] when it has none or an unreadable one. */
export function parseResults(markdown: string): BenchResult[] {
  const start = markdown.indexOf(DATA_MARK);
  if (start < 0) return [];
  const end = markdown.indexOf("-->", start);
  try {
    const parsed: unknown = JSON.parse(markdown.slice(start + DATA_MARK.length, end));
    return Array.isArray(parsed) ? (parsed as BenchResult[]) : [];
  } catch {
    return [];
  }
}

/** `earlier` with each bench of `latest` replaced (or added), in `order`, then any others. */
export function mergeResults(
  earlier: readonly BenchResult[],
  latest: readonly BenchResult[],
  order: readonly string[],
): BenchResult[] {
  const byBench = new Map(earlier.map((result) => [result.bench, result]));
  for (const result of latest) byBench.set(result.bench, result);
  const rank = (bench: string) => {
    const at = order.indexOf(bench);
    return at < 0 ? order.length : at;
  };
  return [...byBench.values()].sort(
    (a, b) => rank(a.bench) - rank(b.bench) || a.bench.localeCompare(b.bench),
  );
}

export function renderResults(results: readonly BenchResult[]): string {
  const lines = [
    "# Benchmark results",
    "",
    "Written by `npm run bench` (every bench, one after another) and `npm run bench -- NAME` (that",
    "bench's rows replace its earlier ones). Each figure comes from the same run as the peer it is",
    "compared with; the machine each bench ran on, and its load, are below the table. The",
    "benches' full tables are in their output.",
    "",
    "| bench | stage | clipcrawl | peer | ratio | target | met? |",
    "|---|---|---|---|---|---|---|",
  ];
  for (const result of results) {
    if (result.error !== undefined || result.rows.length === 0) {
      const why = result.error === undefined ? "no figures" : `failed: ${result.error}`;
      lines.push(tableRow([result.bench, why, "", "", "", "", ""]));
    }
    for (const row of result.rows) {
      lines.push(
        tableRow([
          result.bench,
          row.stage,
          `${figure(row.clipcrawl)} ${row.unit}`.trim(),
          row.peer === undefined
            ? ""
            : `${row.peer.name}: ${figure(row.peer.value)} ${row.unit}`.trim(),
          row.ratio === undefined ? "" : `${ratio(row.ratio)}×`,
          row.target,
          row.met === undefined ? "–" : row.met ? "yes" : "**no**",
        ]),
      );
    }
  }
  lines.push(
    "",
    "## Where they ran",
    "",
    "| bench | date (UTC) | cores | CPU | memory | load average at start → end (1, 5, 15 min) | Node |",
    "|---|---|---|---|---|---|---|",
    ...results.map(({ bench, machine }) =>
      tableRow([
        bench,
        machine.date,
        String(machine.cores),
        machine.cpu,
        `${machine.memoryGb} GiB`,
        `${loads(machine.loadStart)} → ${loads(machine.loadEnd)}`,
        machine.node,
      ]),
    ),
    "",
    // The figures as data, one bench a line, so that running one bench can replace its rows.
    `${DATA_MARK}\n[\n${results.map((result) => JSON.stringify(result)).join(",\n")}\n]\n-->`,
    "",
  );
  return lines.join("\n");
}

/** Merges `latest` into bench/RESULTS.md (or `path`), written atomically. */
export async function recordResults(
  latest: readonly BenchResult[],
  order: readonly string[],
  path = RESULTS_FILE,
): Promise<void> {
  const earlier = parseResults(await readFile(path, "utf8").catch(() => ""));
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, renderResults(mergeResults(earlier, latest, order)));
  await rename(temporary, path);
}

function tableRow(cells: string[]): string {
  return `| ${cells.map((cell) => cell.replaceAll("|", "\\|").replaceAll("\n", " ")).join(" | ")} |`;
}

/** Two decimals; a share below 1 % with two significant digits, so it does not read as 0. */
function ratio(value: number): string {
  return value > 0 && value < 0.01 ? value.toPrecision(2) : value.toFixed(2);
}

/** Three significant digits, thousands grouped: 0.203, 7.81, 41,000. */
function figure(value: number): string {
  if (!Number.isFinite(value)) return "–";
  const digits =
    Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : Math.abs(value) >= 1 ? 2 : 3;
  return value.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

function loads(values: readonly number[]): string {
  return values.map((value) => value.toFixed(2)).join(" ");
}

/**
 * Runs a Python peer with Debian's python3 and returns the JSON objects it printed, one a line;
 * a peer that stopped early (faiss missing, killed) is said in one line and its rows so far kept.
 */
export function faissPeerLines<Line>(script: string, args: readonly string[]): Line[] {
  const result = spawnSync("/usr/bin/python3", [script, ...args], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 1 << 24,
  });
  if (result.status !== 0) {
    console.log(
      `faiss peer stopped (${result.signal ?? `exit ${result.status}`}; needs apt-get install -y python3-faiss libopenblas0-pthread): its rows so far follow`,
    );
  }
  return (result.stdout ?? "")
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Line);
}
