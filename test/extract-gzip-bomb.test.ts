/**
 * A gzip bomb given to `clipcrawl extract`: a 1 MB member whose record inflates to 1 GiB of
 * zeros, between two ordinary records. The CLI runs in its own process so its peak memory can be
 * read from /proc (VmHWM, the resident set's high-water mark), polled until it exits.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "./support/temp.js";
import { gzipBombMember, gzipEach, warcinfoRecord, watPageRecord } from "./support/warc-build.js";

const MAIN = fileURLToPath(new URL("../src/cli/main.ts", import.meta.url));
const MIB = 1024 * 1024;
const BOMB_BODY_BYTES = 1024 * MIB;
const MAX_RECORD_BYTES = 8 * MIB;
/**
 * The CLI reading a small WAT file peaks at about 440 MiB here (Node and tsx in two threads,
 * DuckDB, the language detector's tables); the bomb adds under 20 MiB, where inflating it whole
 * took 2.4 GiB.
 */
const PEAK_RSS_LIMIT = 700 * MIB;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  peakRssBytes: number;
}

async function runExtractCli(args: string[]): Promise<Run> {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN, "extract", ...args], {
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => {
    stdout += chunk;
  });
  child.stderr.on("data", (chunk) => {
    stderr += chunk;
  });
  let peakRssBytes = 0;
  const poll = setInterval(async () => {
    try {
      const status = await readFile(`/proc/${child.pid}/status`, "utf8");
      const kilobytes = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1] ?? 0);
      peakRssBytes = Math.max(peakRssBytes, kilobytes * 1024);
    } catch {
      // The process has just exited.
    }
  }, 20);
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  clearInterval(poll);
  clearTimeout(killer);
  return { code, stdout, stderr, peakRssBytes };
}

test("a gzip bomb in a WAT file is one oversized record: reported, skipped in bounded memory, and the records after it are read", {
  skip: process.platform !== "linux" ? "reads /proc" : false,
}, async () => {
  const dir = await tempDir("extract-bomb");
  const input = join(dir, "bomb.warc.wat.gz");
  const before = gzipEach([
    warcinfoRecord(),
    watPageRecord("https://a.example/", [{ url: "a.jpg", alt: "A page read before the bomb" }]),
  ]);
  const bomb = gzipBombMember(BOMB_BODY_BYTES);
  const after = gzipEach([
    watPageRecord("https://b.example/", [{ url: "b.jpg", alt: "A page read after the bomb" }]),
  ]);
  await writeFile(input, Buffer.concat([before, bomb, after]));
  assert.ok(bomb.length < 2 * MIB, `the bomb is ${bomb.length} bytes compressed`);

  const root = join(dir, "root");
  const run = await runExtractCli([
    input,
    "--root",
    root,
    "--workers",
    "1",
    "--max-record-bytes",
    String(MAX_RECORD_BYTES),
    "--json",
  ]);
  assert.equal(run.code, 0, `exit code; stderr: ${run.stderr}`);
  const summary = JSON.parse(run.stdout);
  assert.equal(summary.ok, true);
  assert.equal(summary.totals.badRecords.oversized_record, 1);
  assert.equal(summary.totals.badRecords.corrupt_gzip, 0);
  assert.equal(summary.totals.records, 3, "warcinfo and the pages before and after the bomb");
  assert.equal(summary.totals.kept, 2);
  const stats = JSON.parse(await readFile(join(root, "candidates/00000_stats.json"), "utf8"));
  assert.deepEqual(stats.problems, [
    `${input}: bad WARC record at offset ${before.length}: its ${BOMB_BODY_BYTES}-byte body is over the ${MAX_RECORD_BYTES}-byte limit (extract.maxRecordBytes); skipped`,
  ]);
  assert.ok(run.stderr.includes(stats.problems[0]), "the line is printed");
  assert.ok(
    run.peakRssBytes > 0 && run.peakRssBytes < PEAK_RSS_LIMIT,
    `peak RSS ${(run.peakRssBytes / MIB).toFixed(0)} MiB, limit ${PEAK_RSS_LIMIT / MIB} MiB`,
  );
});
