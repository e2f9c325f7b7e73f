import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type BenchResult, parseResults, recordResults, renderResults } from "../bench/support.js";

const ORDER = ["extract", "language", "index"];

function result(bench: string, clipcrawl: number, date = "2026-11-25 17:00"): BenchResult {
  return {
    bench,
    machine: {
      date,
      cores: 2,
      cpu: "Test CPU",
      memoryGb: 8,
      loadStart: [1, 2, 3],
      loadEnd: [1.5, 2, 3],
      node: "v20.18.1",
    },
    rows: [
      {
        stage: `${bench}, one core`,
        unit: "MB/s",
        clipcrawl,
        peer: { name: "zcat", value: 40 },
        ratio: clipcrawl / 40,
        target: "≥ 0.5× zcat",
        met: clipcrawl / 40 >= 0.5,
      },
    ],
  };
}

test("running one bench replaces its rows in RESULTS.md and keeps the other benches'", async () => {
  const folder = await mkdtemp(join(tmpdir(), "bench-results-"));
  try {
    const path = join(folder, "RESULTS.md");
    await recordResults([result("index", 900)], ORDER, path);
    await recordResults([result("extract", 8, "first")], ORDER, path);
    await recordResults([result("extract", 30, "second")], ORDER, path);
    const markdown = await readFile(path, "utf8");
    const parsed = parseResults(markdown);
    assert.deepEqual(
      parsed.map((entry) => [entry.bench, entry.machine.date, entry.rows[0]?.clipcrawl]),
      [
        ["extract", "second", 30],
        ["index", "2026-11-25 17:00", 900],
      ],
    );
    const tableRows = markdown.split("\n").filter((line) => line.startsWith("| extract |"));
    assert.equal(tableRows.length, 2, "one figure row and one machine row for extract");
    assert.match(
      markdown,
      /\| extract \| extract, one core \| 30 MB\/s \| zcat: 40 MB\/s \| 0\.75× \| ≥ 0\.5× zcat \| yes \|/,
    );
    assert.match(
      markdown,
      /\| index \| 2026-11-25 17:00 \| 2 \| Test CPU \| 8 GiB \| 1\.00 2\.00 3\.00 → 1\.50 2\.00 3\.00 \| v20\.18\.1 \|/,
    );
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
});

test("a missed target, a failed bench and a pipe in a label are shown as such", () => {
  const missed = result("extract", 8);
  const failed: BenchResult = { ...result("language", 1), rows: [], error: "no cld3 | here" };
  const markdown = renderResults([missed, failed]);
  assert.match(markdown, /\| 0\.20× \| ≥ 0\.5× zcat \| \*\*no\*\* \|/);
  assert.match(markdown, /\| language \| failed: no cld3 \\\| here \|/);
  assert.deepEqual(parseResults(markdown), [missed, failed]);
});

test("a RESULTS.md without readable data starts over instead of failing", () => {
  assert.deepEqual(parseResults("# Benchmark results\n\nedited by hand\n"), []);
  assert.deepEqual(parseResults("<!-- bench-results\n{not json\n-->"), []);
});
