/**
 * A model's identity for shard digests: the SHA-256 of every file that shapes an embedding (the
 * two towers in the chosen precision, the tokenizer and its config, the preprocessor config, the
 * model config; a text-only multilingual model has no vision parts). Another model, or the same
 * folder with new weights, redoes every shard; moving the folder does not.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { resolve } from "node:path";
import type { ScoresConfig } from "../../models/heads/score-config.js";
import type { ClipModelFiles, TextModelFiles } from "../../models/model-files.js";

export async function modelDigest(files: ClipModelFiles | TextModelFiles): Promise<string> {
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
    const path = (files as Partial<ClipModelFiles>)[role];
    if (path !== undefined) digest.update(`${role}\0${await fileSha256(path)}\n`);
  }
  return digest.digest("hex");
}

/**
 * The score heads' identity: their config (prompts included) and the SHA-256 of every model or
 * weights file they name, so editing a prompt or replacing a head redoes the shards. A file that
 * cannot be read counts as "missing" here; loading the heads then says what is wrong.
 */
export async function scoresDigest(scores: ScoresConfig, baseDir: string): Promise<string> {
  const digest = createHash("sha256");
  for (const [name, head] of Object.entries(scores)) {
    digest.update(`${name}\0${JSON.stringify(head)}\n`);
    const file = "model" in head ? head.model : "weights" in head ? head.weights : undefined;
    if (file !== undefined) {
      const hash = await fileSha256(resolve(baseDir, file)).catch(() => "missing");
      digest.update(`${file}\0${hash}\n`);
    }
  }
  return digest.digest("hex");
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
