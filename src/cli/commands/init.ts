import type { Command } from "commander";
import { initRoot } from "../../config/init-root.js";
import { openRoot } from "../../io/open-root.js";

export function registerInit(program: Command): void {
  program
    .command("init")
    .description("create a dataset root with a clipcrawl.json of defaults")
    .argument("[root]", "the dataset root directory", ".")
    .addHelpText("after", "\nExample:\n  clipcrawl init ./my-dataset")
    .action(async (root: string) => {
      const result = await initRoot(openRoot(root));
      const verb = result.created ? "created" : "already exists, left as it is:";
      process.stdout.write(`${verb} ${result.configPath}\n`);
    });
}
