/**
 * The bundled sample: a few small Common Crawl–shaped WAT files, generated deterministically by
 * scripts/wat-generator.ts (so the package ships a generator, not megabytes of data).
 */
import { join } from "node:path";
import { writeWatFile } from "../../scripts/wat-generator.js";
import type { DatasetStorage } from "../io/storage.js";

export const SAMPLE_FOLDER = "sample";
export const SAMPLE_FILES = 3;
export const SAMPLE_SEED = 20240221;

export function sampleFileName(index: number): string {
  return `CC-MAIN-SAMPLE-${String(index).padStart(5, "0")}.warc.wat.gz`;
}

/** Paths of the sample WAT files inside the root, written on first use. */
export async function ensureSampleWatFiles(storage: DatasetStorage): Promise<string[]> {
  const paths: string[] = [];
  for (let index = 0; index < SAMPLE_FILES; index++) {
    const relative = join(SAMPLE_FOLDER, sampleFileName(index));
    if (!(await storage.exists(relative))) {
      await storage.writeAtomicWith(relative, async (localPath) => {
        await writeWatFile(localPath, { seed: SAMPLE_SEED, fileIndex: index });
      });
    }
    paths.push(await storage.localPath(relative));
  }
  return paths;
}
