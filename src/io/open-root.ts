/**
 * The one place a dataset root given as a path becomes the storage the code works on. Library
 * functions take `root: string | storage`; a storage passed in is used as it is, so a caller
 * that opened one (a test, the runner, later an object-storage root) keeps it.
 */
import { LocalStorage } from "./local-storage.js";
import type { DatasetStorage } from "./storage.js";

export function openRoot(root: string): LocalStorage;
export function openRoot<Storage extends DatasetStorage>(
  root: string | Storage,
): Storage | LocalStorage;
export function openRoot(root: string | DatasetStorage): DatasetStorage {
  return typeof root === "string" ? new LocalStorage(root) : root;
}
