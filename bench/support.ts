/** Helpers shared by the benchmarks: bench data on disk, timing, and running a peer command. */
import { spawnSync } from "node:child_process";
import { mkdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

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
