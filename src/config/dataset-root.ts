/**
 * Whether a folder is a dataset root, for the commands that need one to exist. A command given
 * inputs of its own (extract, download of URL lists, embed of tars, run of WAT files, init,
 * demo) starts a root where there is none; one that reads what earlier stages wrote (download
 * of candidates, embed of image shards, filter, index, run resuming, status, remove, show)
 * refuses a folder that is no root, before it creates anything: a mistyped `--root` is one line
 * naming the path and the fix, not an empty root and "nothing to do".
 *
 * A root is a folder with a clipcrawl.json, or with files where a stage writes them (a root
 * made by hand, or clip-retrieval's inference output with its `embeddings/metadata/`): the
 * stages give it its clipcrawl.json on first use, as they always have.
 */
import { InputError } from "../errors.js";
import { layout } from "../io/layout.js";
import type { DatasetStorage } from "../io/storage.js";
import { CONFIG_FILE } from "./config-file.js";
import { type InitResult, initRoot } from "./init-root.js";

/** Folders whose files the stages read: a root made without clipcrawl has some of them. */
const STAGE_OUTPUT_FOLDERS = [
  layout.candidatesFolder(),
  layout.imagesFolder(),
  layout.embeddingMetadataFolder(),
  layout.datasetFolder(),
  layout.indexFolder(),
];

export async function isDatasetRoot(storage: DatasetStorage): Promise<boolean> {
  if (await storage.exists(CONFIG_FILE)) return true;
  for (const folder of STAGE_OUTPUT_FOLDERS) {
    if ((await storage.list(folder)).length > 0) return true;
  }
  return false;
}

/**
 * Throws CC_NOT_A_ROOT unless `storage` is a dataset root; creates nothing. `otherwise`: the
 * command's other way forward, e.g. "give URL lists to download into a new root".
 */
export async function requireDatasetRoot(
  storage: DatasetStorage,
  otherwise?: string,
): Promise<void> {
  if (await isDatasetRoot(storage)) return;
  const path = storage.describe(".");
  throw new InputError(
    "CC_NOT_A_ROOT",
    path,
    `not a clipcrawl dataset root (no clipcrawl.json): check the path, or start one with clipcrawl init ${path}${otherwise === undefined ? "" : `, or ${otherwise}`}`,
  );
}

/**
 * The root of a command: started (as `clipcrawl init` does) when the command was given inputs
 * of its own, else it must exist already.
 */
export async function startOrOpenRoot(
  storage: DatasetStorage,
  hasOwnInputs: boolean,
  otherwise?: string,
): Promise<InitResult> {
  return hasOwnInputs ? initRoot(storage) : openExistingRoot(storage, otherwise);
}

/** The root of a stage that reads earlier stages' outputs: it must exist (see the top). */
export async function openExistingRoot(
  storage: DatasetStorage,
  otherwise?: string,
): Promise<InitResult> {
  await requireDatasetRoot(storage, otherwise);
  return initRoot(storage);
}
