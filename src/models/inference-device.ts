/**
 * Where a model's ONNX sessions run: onnxruntime's CPU provider (the build bundled with
 * onnxruntime-node), or its CUDA provider on one GPU (`cuda` is `cuda:0`). The CUDA provider is not
 * in the bundled build: its libraries are an opt-in download into onnxruntime-node's folder
 * (docs/install.md), so asking for it where they are missing fails with one line that names the
 * fix, before a model or a shard is opened. Several GPUs are several worker processes, one a GPU
 * (docs/SCALING.md): a session runs on one device.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { InferenceSession } from "onnxruntime-node";
import { ModelError } from "./model-error.js";

export type InferenceDevice = { kind: "cpu" } | { kind: "cuda"; deviceId: number };

/** What `embed.device` accepts. */
export const INFERENCE_DEVICE_PATTERN = /^(cpu|cuda(:\d{1,3})?)$/;

/** The provider libraries onnxruntime-node loads for `cuda` (its install script's cuda12 set). */
const CUDA_PROVIDER_LIBRARIES = [
  "libonnxruntime_providers_shared.so",
  "libonnxruntime_providers_cuda.so",
];

export const CUDA_INSTALL_HINT =
  "ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install (docs/install.md)";

export function parseInferenceDevice(text: string): InferenceDevice {
  const match = INFERENCE_DEVICE_PATTERN.exec(text);
  if (match === null) {
    throw new ModelError(
      "CC_MODEL_DEVICE",
      `device ${JSON.stringify(text)}: expected cpu, cuda or cuda:N`,
    );
  }
  if (text === "cpu") return { kind: "cpu" };
  return { kind: "cuda", deviceId: match[2] === undefined ? 0 : Number(match[2].slice(1)) };
}

export function deviceName(device: InferenceDevice): string {
  return device.kind === "cpu" ? "cpu" : `cuda:${device.deviceId}`;
}

/** The session option that puts a model on the device; nodes CUDA lacks fall back to the CPU. */
export function executionProviders(
  device: InferenceDevice,
): InferenceSession.ExecutionProviderConfig[] {
  if (device.kind === "cpu") return ["cpu"];
  return [{ name: "cuda", deviceId: device.deviceId }, "cpu"];
}

/**
 * Throws a ModelError naming the fix when onnxruntime-node cannot run on the device here: a
 * platform it ships no CUDA provider for, or the provider's libraries not downloaded.
 * `setting` names where the device was asked for (`embed.device`).
 */
export function assertDeviceAvailable(device: InferenceDevice, setting: string): void {
  if (device.kind === "cpu") return;
  const asked = `${setting} ${deviceName(device)}`;
  if (process.platform !== "linux" || process.arch !== "x64") {
    throw new ModelError(
      "CC_MODEL_DEVICE",
      `${asked}: onnxruntime-node has a CUDA provider for linux-x64 only, not ${process.platform}-${process.arch}; use cpu`,
    );
  }
  const folder = onnxruntimeBinaryFolder();
  const missing = CUDA_PROVIDER_LIBRARIES.filter((name) => !existsSync(join(folder, name)));
  if (missing.length > 0) {
    throw new ModelError(
      "CC_MODEL_DEVICE",
      `${asked}: onnxruntime's CUDA execution provider is not installed (no ${missing.join(", ")} in ${folder}); install it with ${CUDA_INSTALL_HINT}, or use cpu`,
    );
  }
}

/** Where onnxruntime-node keeps its native binding, and the provider libraries beside it. */
export function onnxruntimeBinaryFolder(): string {
  const entry = createRequire(import.meta.url).resolve("onnxruntime-node");
  // dist/index.js → bin/napi-v6/<platform>/<arch>, as onnxruntime-node's binding.js loads it.
  return join(dirname(entry), "..", "bin", "napi-v6", process.platform, process.arch);
}
