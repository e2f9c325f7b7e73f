import type { Command } from "commander";
import { demo } from "../../demo/demo.js";
import { terminalReporter } from "../terminal-reporter.js";
import { describeSummary as describeDownload } from "./download.js";
import { describeSummary as describeEmbed } from "./embed.js";
import { describeSummary as describeExtract } from "./extract.js";
import { describeSummary as describeFilter } from "./filter.js";

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "build a dataset from the bundled sample Common Crawl files, every stage on this machine",
    )
    .option("--root <dir>", "where the demo dataset is built", "demo-data")
    .addHelpText("after", "\nExample:\n  clipcrawl demo --root /tmp/clipcrawl-demo")
    .action(async (flags: { root: string }) => {
      const reporter = terminalReporter();
      process.stdout.write(
        `clipcrawl demo: building a dataset from the bundled sample in ${flags.root}\n`,
      );
      const result = await demo({ root: flags.root, reporter }).finally(() => reporter.stop());
      process.stdout.write(describeExtract(result.extract));
      process.stdout.write("\nsome candidate pairs (image URL ← alt text):\n");
      for (const example of result.examples) {
        const language = example.language === "" ? "?" : example.language;
        process.stdout.write(
          `  [${example.tier}/${language}] ${example.url}\n      ← ${example.text}\n`,
        );
      }
      process.stdout.write(`\n${describeDownload(result.download)}`);
      process.stdout.write(`\n${describeEmbed(result.embed)}`);
      process.stdout.write(`\n${describeFilter(result.filter)}`);
      process.stdout.write("\nsome pairs the dataset kept:\n");
      for (const pair of result.kept) {
        const language = pair.language === "" ? "?" : pair.language;
        process.stdout.write(`  [${pair.tier}/${language}] ${pair.url}\n      ← ${pair.text}\n`);
      }
      process.stdout.write(`\ndataset root: ${result.root}\n`);
      if (!result.ok) process.exitCode = 1;
    });
}
