/**
 * What a relative path in a root's clipcrawl.json (`scores.<column>.model`, and `embed.model`
 * where `serve` reads it) is relative to: the root, when the root is a local folder; the working
 * directory of the command, when the root is object storage. An `s3://` root holds no folders
 * that ONNX Runtime could open, and joining a path to its URL named a folder under
 * `<cwd>/s3:/bucket/…` that never exists. Paths given on the command line are always relative
 * to the working directory.
 */
import { resolve } from "node:path";
import { LocalStorage } from "../io/local-storage.js";
import type { DatasetStorage } from "../io/storage.js";

export function configBaseDir(storage: DatasetStorage, cwd: string = process.cwd()): string {
  return storage instanceof LocalStorage ? storage.root : resolve(cwd);
}
