/**
 * `clipcrawl model fetch`: a model folder from the Hugging Face hub (or a mirror: HF_ENDPOINT),
 * only when asked — nothing else in clipcrawl downloads a model. The file list and sizes come
 * from the hub API; each file is downloaded to `<name>.part`, resumed with a Range request after
 * an interruption, checked against the size (and the LFS sha256 when the hub gives one), and
 * renamed into place. A re-run skips the files that are complete. Every connection, redirects
 * included, goes through the network guard (src/io/network-guard.ts): a hub on a private,
 * loopback or link-local address (a local mirror) needs `allowPrivateNetwork`.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, open, rename, rm, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type Dispatcher, request } from "undici";
import { ClipcrawlError, errorMessage } from "../errors.js";
import { isRetryableStatus, sleep } from "../io/http.js";
import { guardedHttpDispatcher, privateAddressRefusal } from "../io/network-guard.js";
import { defaultModelsDir, hubEndpoint } from "./model-locations.js";

export interface HubFile {
  path: string;
  bytes: number | undefined;
  sha256: string | undefined;
}

export interface FetchModelOptions {
  repoId: string;
  revision?: string;
  /** Where model folders live: `<modelsDir>/<repo-id>/`. */
  modelsDir?: string;
  /** Which ONNX weights: the fp32 files, or the `_quantized` / `_fp16` variants. */
  variant?: "fp32" | "quantized" | "fp16";
  /** Extra files to fetch, as exact paths in the repository. */
  include?: readonly string[];
  endpoint?: string;
  token?: string;
  retries?: number;
  /** Let the hub and its redirects reach private and other special-use addresses (a local mirror). */
  allowPrivateNetwork?: boolean;
  onFile?: (file: HubFile, state: "skipped" | "downloaded") => void;
}

export interface FetchedModel {
  folder: string;
  repoId: string;
  revision: string;
  commit: string | undefined;
  files: HubFile[];
  downloadedBytes: number;
}

export class ModelFetchError extends ClipcrawlError {
  constructor(message: string) {
    super("CC_MODEL_FETCH", message);
    this.name = "ModelFetchError";
  }
}

const CONFIG_FILES = [
  "config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "preprocessor_config.json",
  "special_tokens_map.json",
];
const TOWERS = ["text_model", "vision_model"];
const MANIFEST = "clipcrawl-model.json";

export async function fetchModel(options: FetchModelOptions): Promise<FetchedModel> {
  if (!/^[\w.-]+(\/[\w.-]+)?$/.test(options.repoId) || options.repoId.includes("..")) {
    throw new ModelFetchError(
      `"${options.repoId}" is not a model id (expected owner/name, e.g. Xenova/clip-vit-base-patch32)`,
    );
  }
  const revision = options.revision ?? "main";
  const endpoint = (options.endpoint ?? hubEndpoint()).replace(/\/+$/, "");
  const token = options.token ?? process.env.HF_TOKEN;
  const folder = join(options.modelsDir ?? defaultModelsDir(), options.repoId);
  const dispatcher = await guardedHttpDispatcher(options.allowPrivateNetwork === true);
  const hub: HubConnection = { endpoint, token, dispatcher };
  const listing = await repositoryListing(hub, options.repoId, revision);
  const wanted = selectFiles(listing.files, options.variant ?? "fp32", options.include ?? []);
  let downloadedBytes = 0;
  for (const file of wanted) {
    const target = join(folder, file.path);
    if (await isComplete(target, file)) {
      options.onFile?.(file, "skipped");
      continue;
    }
    const url = `${endpoint}/${options.repoId}/resolve/${encodeURIComponent(revision)}/${file.path.split("/").map(encodeURIComponent).join("/")}`;
    downloadedBytes += await downloadFile(hub, url, target, file, options.retries ?? 5);
    options.onFile?.(file, "downloaded");
  }
  const fetched = {
    folder,
    repoId: options.repoId,
    revision,
    commit: listing.commit,
    files: wanted,
    downloadedBytes,
  };
  const manifest = { repoId: options.repoId, revision, commit: listing.commit, files: wanted };
  await writeFile(join(folder, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
  return fetched;
}

interface HubConnection {
  endpoint: string;
  token: string | undefined;
  dispatcher: Dispatcher;
}

async function repositoryListing(
  hub: HubConnection,
  repoId: string,
  revision: string,
): Promise<{ commit: string | undefined; files: HubFile[] }> {
  const { endpoint, token } = hub;
  const url = `${endpoint}/api/models/${repoId}/revision/${encodeURIComponent(revision)}?blobs=true`;
  let response: Awaited<ReturnType<typeof request>>;
  try {
    response = await request(url, {
      dispatcher: hub.dispatcher,
      headers: authorization(token),
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
  } catch (error) {
    const refusal = privateAddressRefusal(error);
    if (refusal !== undefined) throw new ModelFetchError(`${url}: ${refusal.message}`);
    throw new ModelFetchError(
      `cannot reach the model hub at ${endpoint} (${errorMessage(error)}); set HF_ENDPOINT to use a mirror`,
    );
  }
  if (response.statusCode === 401 || response.statusCode === 403) {
    await response.body.dump();
    throw new ModelFetchError(
      `the hub refused access to ${repoId} (HTTP ${response.statusCode}): for a gated or private model, set HF_TOKEN`,
    );
  }
  if (response.statusCode === 404) {
    await response.body.dump();
    throw new ModelFetchError(`no model ${repoId} at revision ${revision} on ${endpoint}`);
  }
  if (response.statusCode !== 200) {
    await response.body.dump();
    throw new ModelFetchError(`the hub answered HTTP ${response.statusCode} for ${url}`);
  }
  const info = (await response.body.json().catch(() => undefined)) as
    | {
        sha?: string;
        siblings?: {
          rfilename?: string;
          size?: number;
          lfs?: { size?: number; sha256?: string };
        }[];
      }
    | undefined;
  if (info === undefined || !Array.isArray(info.siblings)) {
    throw new ModelFetchError(
      `the hub's answer for ${repoId} has no file list (is ${endpoint} a Hugging Face hub?)`,
    );
  }
  const files = info.siblings.flatMap((sibling) =>
    typeof sibling.rfilename === "string"
      ? [
          {
            path: sibling.rfilename,
            bytes: sibling.lfs?.size ?? sibling.size,
            sha256: sibling.lfs?.sha256,
          },
        ]
      : [],
  );
  return { commit: info.sha, files };
}

/** The files a CLIP folder needs (DESIGN, Models), in the chosen weight variant, plus extras. */
export function selectFiles(
  files: readonly HubFile[],
  variant: "fp32" | "quantized" | "fp16",
  include: readonly string[],
): HubFile[] {
  const byPath = new Map(files.map((file) => [file.path, file]));
  const suffix = variant === "fp32" ? "" : `_${variant}`;
  const wanted = [
    ...CONFIG_FILES.filter((path) => byPath.has(path)),
    ...TOWERS.map((tower) => `onnx/${tower}${suffix}.onnx`),
    ...include,
  ];
  for (const required of ["config.json", "tokenizer.json", "preprocessor_config.json"]) {
    if (!byPath.has(required))
      throw new ModelFetchError(
        `the repository has no ${required}: not a CLIP model in the Hugging Face / transformers.js layout`,
      );
  }
  const missing = wanted.filter((path) => !byPath.has(path));
  if (missing.length > 0) {
    const onnx = files.filter((file) => file.path.startsWith("onnx/")).map((file) => file.path);
    throw new ModelFetchError(
      `the repository has no ${missing.join(", ")} (its ONNX files: ${onnx.join(", ") || "none"})`,
    );
  }
  return [...new Set(wanted)].map((path) => byPath.get(path) as HubFile);
}

async function isComplete(target: string, file: HubFile): Promise<boolean> {
  const info = await stat(target).catch(() => undefined);
  return info !== undefined && (file.bytes === undefined || info.size === file.bytes);
}

async function downloadFile(
  hub: HubConnection,
  url: string,
  target: string,
  file: HubFile,
  retries: number,
): Promise<number> {
  const partial = `${target}.part`;
  await mkdir(dirname(target), { recursive: true });
  let received = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (file.bytes !== undefined && received > file.bytes) {
    await rm(partial);
    received = 0;
  }
  let downloaded = 0;
  let lastError = "";
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) await sleep(Math.min(10_000, 300 * 2 ** (attempt - 1)));
    if (file.bytes !== undefined && received === file.bytes) break;
    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(url, {
        dispatcher: hub.dispatcher,
        headers: {
          ...authorization(hub.token),
          ...(received > 0 ? { range: `bytes=${received}-` } : {}),
        },
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
    } catch (error) {
      // A refused address stays refused: no retries.
      const refusal = privateAddressRefusal(error);
      if (refusal !== undefined) throw new ModelFetchError(`${file.path}: ${refusal.message}`);
      lastError = errorMessage(error);
      continue;
    }
    if (response.statusCode !== 200 && response.statusCode !== 206) {
      await response.body.dump();
      lastError = `HTTP ${response.statusCode}`;
      if (isRetryableStatus(response.statusCode)) continue;
      throw new ModelFetchError(`${file.path}: HTTP ${response.statusCode} from ${url}`);
    }
    // A server that ignores Range starts over: so does the partial file.
    if (response.statusCode === 200) received = 0;
    const handle = await open(partial, received > 0 ? "a" : "w");
    try {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        await handle.write(chunk);
        received += chunk.length;
        downloaded += chunk.length;
      }
      await handle.sync();
      if (file.bytes === undefined || received === file.bytes) break;
      lastError = `${received} of ${file.bytes} bytes`;
    } catch (error) {
      lastError = `connection broke after ${received} bytes (${errorMessage(error)})`;
    } finally {
      await handle.close();
    }
  }
  if (file.bytes !== undefined && received !== file.bytes) {
    throw new ModelFetchError(
      `${file.path}: download incomplete after ${retries + 1} attempts (${lastError}); run the command again to resume`,
    );
  }
  if (file.sha256 !== undefined) {
    const actual = await sha256Of(partial);
    if (actual !== file.sha256) {
      await rm(partial);
      throw new ModelFetchError(
        `${file.path}: sha256 ${actual} does not match the hub's ${file.sha256}; the partial file was removed, run again`,
      );
    }
  }
  await rename(partial, target);
  return downloaded;
}

function authorization(token: string | undefined): Record<string, string> {
  return token === undefined || token === "" ? {} : { authorization: `Bearer ${token}` };
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
