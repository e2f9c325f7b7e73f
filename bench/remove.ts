/**
 * What a takedown writes: `clipcrawl remove` of 10,000 random keys on the generated 1,000,000-row
 * root of bench/subset.ts (100 shards: image tars ≈ 31 MB each, image parquets, `.npy` pairs,
 * metadata, dataset), beside its peer in the same run on the same root: `clipcrawl compact`
 * applying those tombstones, which is what `remove` itself did before tombstones (every file
 * holding a removed sample rewritten whole).
 *
 * Bytes written are measured two ways, for each step:
 * - files: the size of every file under the root that the step created or replaced (a new inode,
 *   size or modification time), what its rewrites left on disk;
 * - wchar: the bytes the process handed to write(2) during the step (/proc/self/io), DuckDB's
 *   threads included.
 * Before compact, a subset checks that the removed samples are out of the dataset already.
 *
 *   npm run bench -- remove [--rows 1000000] [--keys 10000] [--generate-only]
 *
 * The root is spent by the run (compact rewrote it) and generated again by the next one;
 * `--generate-only` makes it ahead of time, so that the measured run (under the exclusive lock)
 * does only the removal and the compaction.
 */
import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { compact, remove } from "../src/pipeline/governance-commands.js";
import { subset } from "../src/stages/subset/subset.js";
import { ensureRoot, randomKeys } from "./subset.js";
import { type BenchRow, benchDataPath, megabytes, printTable } from "./support.js";

const DIMS = 48;
const TARGET_SHARE = 0.01;

interface FileState {
  ino: number;
  size: number;
  mtimeMs: number;
}

interface Written {
  files: number;
  bytes: number;
  wchar: number;
  seconds: number;
}

export async function main(args: string[]): Promise<BenchRow[] | undefined> {
  const { values } = parseArgs({
    args,
    options: {
      rows: { type: "string", default: "1000000" },
      keys: { type: "string", default: "10000" },
      "generate-only": { type: "boolean", default: false },
    },
  });
  const rows = Number(values.rows);
  const keyCount = Number(values.keys);
  const folder = await benchDataPath(`remove-${rows}-${DIMS}`);
  const root = join(folder, "root");
  const generated = await ensureRoot(root, rows, DIMS);
  const before = await filesUnder(root);
  const rootBytes = [...before.values()].reduce((sum, file) => sum + file.size, 0);
  console.log(
    `root: ${rows.toLocaleString()} rows, ${before.size} files, ${megabytes(rootBytes).toFixed(0)} MB (generated in ${generated.toFixed(0)} s); load ${loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  if (values["generate-only"] === true) return undefined;

  const keys = await randomKeys(root, keyCount);
  const keyFile = join(folder, "keys.txt");
  await writeFile(keyFile, `${keys.join("\n")}\n`);
  const dataset = await datasetRows(root, folder);

  const removal = await measure(root, () => remove({ root, lists: { keys: keyFile } }));
  const left = await datasetRows(root, folder);
  if (left !== dataset - keys.length) {
    throw new Error(`after remove, subset reads ${left} rows, expected ${dataset - keys.length}`);
  }
  const compaction = await measure(root, () => compact({ root, index: "delete" }));
  // compact rewrote the root: the next run generates it again.
  await rm(join(root, "generated.json"), { force: true });
  if ((await datasetRows(root, folder)) !== left)
    throw new Error("compact changed what subset reads");

  const share = removal.bytes / compaction.bytes;
  printTable([
    ["step", "files written", "MB written (files)", "MB handed to write(2)", "seconds"],
    ...(
      [
        [`remove ${keyCount.toLocaleString()} keys (tombstones)`, removal],
        ["compact (the rewrite remove did before)", compaction],
      ] as const
    ).map(([label, step]) => [
      label,
      step.files,
      megabytes(step.bytes).toFixed(3),
      megabytes(step.wchar).toFixed(3),
      step.seconds.toFixed(1),
    ]),
  ]);
  console.log(
    `remove writes ${(share * 100).toFixed(4)} % of the bytes the rewrite writes (target < ${TARGET_SHARE * 100} %); subset read ${dataset.toLocaleString()} rows before, ${left.toLocaleString()} right after remove and after compact`,
  );
  return [
    {
      stage: `remove ${keyCount.toLocaleString("en")} keys of ${rows.toLocaleString("en")} rows, bytes written`,
      unit: "MB",
      clipcrawl: megabytes(removal.bytes),
      peer: { name: "rewrite (compact)", value: megabytes(compaction.bytes) },
      ratio: share,
      target: "< 1 % of the rewrite",
      met: share < TARGET_SHARE,
    },
    {
      stage: `compact ${keyCount.toLocaleString("en")} removed keys, files rewritten`,
      unit: "MB/s",
      clipcrawl: megabytes(compaction.bytes) / compaction.seconds,
      target: "none",
    },
  ];
}

/** Runs `step` and measures what it wrote under `root`. */
async function measure(root: string, step: () => Promise<unknown>): Promise<Written> {
  const before = await filesUnder(root);
  const wcharBefore = await writtenChars();
  const started = performance.now();
  await step();
  const seconds = (performance.now() - started) / 1000;
  const wchar = (await writtenChars()) - wcharBefore;
  let files = 0;
  let bytes = 0;
  for (const [path, now] of await filesUnder(root)) {
    const old = before.get(path);
    const same = old?.ino === now.ino && old.size === now.size && old.mtimeMs === now.mtimeMs;
    if (same) continue;
    files++;
    bytes += now.size;
  }
  return { files, bytes, wchar, seconds };
}

async function filesUnder(root: string): Promise<Map<string, FileState>> {
  const files = new Map<string, FileState>();
  const walk = async (folder: string): Promise<void> => {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const info = await stat(path);
        files.set(path, { ino: info.ino, size: info.size, mtimeMs: info.mtimeMs });
      }
    }
  };
  await walk(root);
  return files;
}

/** Bytes this process has handed to write(2) so far (Linux). */
async function writtenChars(): Promise<number> {
  const io = await readFile("/proc/self/io", "utf8");
  return Number(/^wchar: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
}

/** The rows a subset reads from the root's dataset: the removed ones left out. */
async function datasetRows(root: string, folder: string): Promise<number> {
  const summary = await subset({
    root,
    where: "TRUE",
    columns: ["key"],
    output: join(folder, "rows.parquet"),
  });
  return summary.rows;
}
