/**
 * A model's identity for shard digests: the SHA-256 of every file that shapes an embedding (the
 * two towers in the chosen precision, the tokenizer and its config, the preprocessor config, the
 * model config). Another model, or the same folder with new weights, redoes every shard; moving
 * the folder does not.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { ClipModelFiles } from "../../models/model-files.js";

export async function modelDigest(files: ClipModelFiles): Promise<string> {
  const digest = createHash("sha256");
  const roles = [
    "config",
    "tokenizer",
    "tokenizerConfig",
    "preprocessorConfig",
    "textModel",
    "visionModel",
  ] as const;
  for (const role of roles) {
    digest.update(`${role}\0${await fileSha256(files[role])}\n`);
  }
  return digest.digest("hex");
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
