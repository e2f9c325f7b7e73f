import type { Command } from "commander";
import type { EmbedConfig } from "../../stages/embed/config.js";
import type { EmbedSummary } from "../../stages/embed/embed.js";
import { addConfigOptions, configOverrides } from "../config-options.js";
import { addRedoOption } from "../redo-option.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface EmbedFlags {
  root: string;
  overwrite?: boolean;
  redo?: string[];
  json?: boolean;
  [key: string]: unknown;
}

export function registerEmbed(program: Command): void {
  const command = program
    .command("embed")
    .description(
      "image shards → CLIP embeddings in <root>/embeddings/ (clip-retrieval's img_emb/, text_emb/, metadata/)",
    )
    .argument(
      "[inputs...]",
      "webdataset .tar files or folders of them, or an image folder with .txt captions; default: <root>/images",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--overwrite", "redo every shard (default: skip finished shards)")
    .option("--json", "print the summary as JSON");
  addRedoOption(command);
  addConfigOptions(command, "embed");
  command.addHelpText(
    "after",
    "\nExamples:\n  clipcrawl embed --root ./data --model ~/.cache/clipcrawl/models/Xenova/clip-vit-base-patch32\n" +
      "  clipcrawl embed --root ./data --precision quantized --batch-size 128 --threads 8\n" +
      "  clipcrawl embed ./shards/ --root ./out --model ./model --output-dtype float32",
  );
  command.action(async (inputs: string[], flags: EmbedFlags) => {
    const { embed } = await import("../../stages/embed/embed.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        embed({
          root: flags.root,
          inputs,
          overwrite: flags.overwrite === true,
          redo: flags.redo,
          config: configOverrides(flags, "embed") as Partial<EmbedConfig>,
          reporter,
        }),
      describeSummary,
      { root: flags.root, stage: "embed" },
    );
  });
}

export function describeSummary(summary: EmbedSummary): string {
  const { totals } = summary;
  const errors = Object.entries(summary.topErrors)
    .slice(0, 8)
    .map(([label, count]) => `    ${formatCount(count).padStart(7)}  ${label}`);
  return [
    `embed (${summary.source}): ${summary.shards} shards (${summary.shardsWritten} written, ${summary.shardsSkipped} already done), ${summary.failedShards.length} failed`,
    `  model ${summary.model.folder} (${summary.model.precision}${summary.model.dimensions === null ? "" : `, ${summary.model.dimensions}-d`})`,
    ...(summary.multilingualModel === null
      ? []
      : [`  multilingual text model ${summary.multilingualModel}`]),
    `  ${formatCount(totals.samples)} samples: ${formatCount(totals.embedded)} embedded, ${formatCount(totals.failed_to_embed)} failed_to_embed, ${formatCount(totals.captions_truncated)} captions truncated, ${formatCount(totals.damaged_tar_members)} damaged tar members, ${formatCount(totals.score_errors)} with a score error`,
    ...(errors.length === 0 ? [] : ["  most frequent errors:", ...errors]),
    ...summary.failedShards.map((failed) => `  shard ${failed.shard} failed: ${failed.error}`),
    `  ${summary.seconds.toFixed(1)} s, ${summary.samplesPerSecond.toFixed(0)} samples/s${summary.modelBusyShare === null ? "" : `, towers busy ${(summary.modelBusyShare * 100).toFixed(0)} % of the shards' time`}`,
    "",
  ].join("\n");
}
