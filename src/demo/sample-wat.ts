/**
 * The bundled sample: a few small Common Crawl–shaped WAT files, generated deterministically by
 * sample/wat-generator.ts (so the package ships a generator, not megabytes of data).
 *
 * The demo's files are shorter than the generator's default: SAMPLE_PAGES_PER_FILE captures stop
 * before the first catalogue page (thousands of image links), which would make download and embed
 * the demo's long pole on a small machine. What is left still has every capture kind, every
 * language tier (English, the other languages, no language) and the coloured-shape images.
 */
import { join } from "node:path";
import type { DatasetStorage } from "../io/storage.js";
import { SAMPLE_SEED, sampleFileName, writeWatFile } from "./sample/wat-generator.js";

export const SAMPLE_FOLDER = "sample";
/** About 250 image–alt pairs a file, a fifth of them coloured shapes. */
export const SAMPLE_PAGES_PER_FILE = 25;
/** Enough files for a few images of every colour and shape to pass the filter. */
export const SAMPLE_FILES = 5;

/** Paths of the sample WAT files inside the root, written on first use. */
export async function ensureSampleWatFiles(storage: DatasetStorage): Promise<string[]> {
  const paths: string[] = [];
  for (let index = 0; index < SAMPLE_FILES; index++) {
    const relative = join(SAMPLE_FOLDER, sampleFileName(index));
    if (!(await storage.exists(relative))) {
      await storage.writeAtomicWith(relative, async (localPath) => {
        await writeWatFile(localPath, {
          seed: SAMPLE_SEED,
          fileIndex: index,
          watFilename: sampleFileName(index),
          pages: SAMPLE_PAGES_PER_FILE,
        });
      });
    }
    paths.push(await storage.localPath(relative));
  }
  return paths;
}
