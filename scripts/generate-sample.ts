/**
 * Writes sample Common Crawl WAT files.
 *
 *   npx tsx scripts/generate-sample.ts --out DIR [--files N] [--pages-per-file N] [--size-mb N]
 *                                      [--seed N]
 *
 * Without --size-mb it writes the small bundled sample (three files, a few MB in all); with
 * `--size-mb 120 --files 1` one file of at least 120 MiB for benchmarks. Prints one JSON line per
 * file.
 */

import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  DEFAULT_PAGES_PER_FILE,
  SAMPLE_FILE_COUNT,
  SAMPLE_SEED,
  sampleFileName,
  writeWatFile,
} from "../src/demo/sample/wat-generator.js";

const MIB = 1024 * 1024;

interface SampleRequest {
  outDir: string;
  files: number;
  pagesPerFile: number;
  minBytes: number;
  seed: number;
}

const USAGE =
  "usage: generate-sample.ts --out DIR [--files N] [--pages-per-file N] [--size-mb N] [--seed N]";

function parseRequest(argv: string[]): SampleRequest {
  let values: Record<string, string | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        files: { type: "string" },
        "pages-per-file": { type: "string" },
        "size-mb": { type: "string" },
        seed: { type: "string" },
      },
      strict: true,
    }));
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.out === undefined) throw new UsageError("--out DIR is required");
  return {
    outDir: values.out,
    files: nonNegativeInteger("--files", values.files, SAMPLE_FILE_COUNT),
    pagesPerFile: nonNegativeInteger(
      "--pages-per-file",
      values["pages-per-file"],
      DEFAULT_PAGES_PER_FILE,
    ),
    minBytes: nonNegativeInteger("--size-mb", values["size-mb"], 0) * MIB,
    seed: nonNegativeInteger("--seed", values.seed, SAMPLE_SEED),
  };
}

function nonNegativeInteger(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < 0) {
    throw new UsageError(`${flag} must be a non-negative integer, got "${value}"`);
  }
  return number;
}

class UsageError extends Error {
  readonly code = "USAGE";
}

async function main(): Promise<void> {
  const request = parseRequest(process.argv.slice(2));
  await mkdir(request.outDir, { recursive: true });
  for (let fileIndex = 0; fileIndex < request.files; fileIndex++) {
    const startedAt = performance.now();
    const summary = await writeWatFile(join(request.outDir, sampleFileName(fileIndex)), {
      seed: request.seed,
      fileIndex,
      pages: request.pagesPerFile,
      minBytes: request.minBytes,
    });
    const seconds = (performance.now() - startedAt) / 1000;
    const compressedMiBPerSecond = summary.bytes / MIB / seconds;
    console.log(
      JSON.stringify({
        ...summary,
        seconds: Number(seconds.toFixed(2)),
        compressedMiBPerSecond: Number(compressedMiBPerSecond.toFixed(1)),
      }),
    );
  }
}

main().catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`generate-sample: ${message}`);
  if (error instanceof UsageError) console.error(USAGE);
  process.exitCode = error instanceof UsageError ? 2 : 1;
});
