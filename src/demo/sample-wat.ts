/**
 * The bundled sample: a few small Common Crawl–shaped WAT files, generated deterministically by
 * scripts/wat-generator.ts (so the package ships a generator, not megabytes of data).
 */
import { join } from "node:path";
import {
  SAMPLE_FILE_COUNT,
  SAMPLE_SEED,
  sampleFileName,
  writeWatFile,
} from "../../scripts/wat-generator.js";
import type { DatasetStorage } from "../io/storage.js";

export const SAMPLE_FOLDER = "sample";

/** Paths of the sample WAT files inside the root, written on first use. */
export async function ensureSampleWatFiles(storage: DatasetStorage): Promise<string[]> {
  const paths: string[] = [];
  for (let index = 0; index < SAMPLE_FILE_COUNT; index++) {
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
