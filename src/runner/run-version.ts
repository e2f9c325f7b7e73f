/**
 * A finished run records the dataset it left as a version (src/formats/dataset-versions.ts). A
 * version that cannot be recorded is a warning, never the run's failure: the dataset is there.
 */
import { errorMessage } from "../errors.js";
import { recordVersion } from "../formats/dataset-versions.js";
import type { DatasetStorage } from "../io/storage.js";

export async function recordDatasetVersion(
  storage: DatasetStorage,
  command: string,
  warn: (line: string) => void,
): Promise<void> {
  try {
    await recordVersion(storage, command);
  } catch (error) {
    warn(`could not record the dataset version: ${errorMessage(error)}`);
  }
}
