/**
 * Where models come from and go: the hub (HF_ENDPOINT) and the local models folder
 * (CLIPCRAWL_MODELS_DIR). Apart from hub-download.ts, so that `clipcrawl model fetch --help` can
 * show them without loading the HTTP client.
 */
import { homedir } from "node:os";
import { join } from "node:path";

export function defaultModelsDir(): string {
  return process.env.CLIPCRAWL_MODELS_DIR ?? join(homedir(), ".cache", "clipcrawl", "models");
}

export function hubEndpoint(): string {
  return (process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
}
