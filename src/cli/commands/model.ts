import type { Command } from "commander";
import { defaultModelsDir, hubEndpoint } from "../../models/model-locations.js";
import { formatCount } from "../terminal-reporter.js";

interface ModelQuantizeFlags {
  perTensor?: boolean;
  operator: "DynamicQuantizeMatMul" | "MatMulInteger";
  json?: boolean;
}

interface ModelFetchFlags {
  revision: string;
  modelsDir: string;
  variant: "fp32" | "quantized" | "fp16";
  include?: string;
  allowPrivateNetwork?: boolean;
  json?: boolean;
}

export function registerModel(program: Command): void {
  const model = program
    .command("model")
    .description("manage CLIP models (folders in the Hugging Face layout)");
  model
    .command("fetch")
    .description(
      `download a model folder from the Hugging Face hub (HF_ENDPOINT, now ${hubEndpoint()}; HF_TOKEN for gated models)`,
    )
    .argument("<repo-id>", "the model on the hub, e.g. Xenova/clip-vit-base-patch32")
    .option("--revision <rev>", "branch, tag or commit", "main")
    .option(
      "--models-dir <dir>",
      "where model folders live (CLIPCRAWL_MODELS_DIR)",
      defaultModelsDir(),
    )
    .option("--variant <variant>", "ONNX weights: fp32, quantized or fp16", "fp32")
    .option("--include <paths>", "more files to fetch, comma-separated paths in the repository")
    .option(
      "--allow-private-network",
      "let the hub and its redirects reach private, loopback, link-local and other special-use addresses (a local mirror)",
    )
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExample:\n  clipcrawl model fetch Xenova/clip-vit-base-patch32 --variant quantized",
    )
    .action(async (repoId: string, flags: ModelFetchFlags) => {
      if (!["fp32", "quantized", "fp16"].includes(flags.variant)) {
        model.error(
          `error: --variant takes fp32, quantized or fp16, got ${JSON.stringify(flags.variant)}`,
        );
      }
      const quiet = flags.json === true;
      const { fetchModel } = await import("../../models/hub-download.js");
      const fetched = await fetchModel({
        repoId,
        revision: flags.revision,
        modelsDir: flags.modelsDir,
        variant: flags.variant,
        include:
          flags.include
            ?.split(",")
            .map((path) => path.trim())
            .filter((path) => path !== "") ?? [],
        allowPrivateNetwork: flags.allowPrivateNetwork === true,
        onFile: (file, state) => {
          if (!quiet)
            process.stderr.write(
              `  ${state === "skipped" ? "have" : "got "} ${file.path} (${formatCount(file.bytes ?? 0)} bytes)\n`,
            );
        },
      });
      process.stdout.write(
        quiet
          ? `${JSON.stringify(fetched, null, 2)}\n`
          : `${fetched.repoId}@${fetched.commit ?? fetched.revision}: ${fetched.files.length} files in ${fetched.folder} (${formatCount(fetched.downloadedBytes)} bytes downloaded)\n`,
      );
    });
  model
    .command("quantize")
    .description(
      "write int8 towers (onnx/*_model_quantized.onnx, what embed.precision quantized loads) beside a model folder's fp32 ones",
    )
    .argument("<model-folder>", "a CLIP model folder in the Hugging Face layout")
    .option("--per-tensor", "one weight scale per MatMul instead of one per output column")
    .option(
      "--operator <op>",
      "DynamicQuantizeMatMul (onnxruntime, fastest) or MatMulInteger (standard ONNX)",
      "DynamicQuantizeMatMul",
    )
    .option("--json", "print the result as JSON")
    .addHelpText(
      "after",
      "\nExample:\n  clipcrawl model quantize ~/.cache/clipcrawl/models/openai/clip-vit-base-patch32\n  clipcrawl embed --model … --precision quantized",
    )
    .action(async (folder: string, flags: ModelQuantizeFlags) => {
      if (!["DynamicQuantizeMatMul", "MatMulInteger"].includes(flags.operator)) {
        model.error(
          `error: --operator takes DynamicQuantizeMatMul or MatMulInteger, got ${JSON.stringify(flags.operator)}`,
        );
      }
      const { quantizeClipModel } = await import("../../models/onnx-quantize.js");
      const result = await quantizeClipModel(folder, {
        operator: flags.operator,
        perChannel: flags.perTensor !== true,
      });
      if (flags.json === true) {
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
        return;
      }
      for (const tower of result.towers) {
        const { report } = tower;
        process.stdout.write(
          `${tower.output}: ${report.quantizedMatMuls} MatMuls int8 (${report.floatMatMuls} left float), ${formatCount(report.bytesBefore)} → ${formatCount(report.bytesAfter)} bytes\n`,
        );
      }
    });
}
