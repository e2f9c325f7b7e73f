import type { Command } from "commander";
import { demo } from "../../demo/demo.js";
import { terminalReporter } from "../terminal-reporter.js";
import { describeSummary } from "./extract.js";

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description("run the pipeline on the bundled sample Common Crawl files and show the result")
    .option("--root <dir>", "where the demo dataset is built", "demo-data")
    .addHelpText("after", "\nExample:\n  clipcrawl demo --root /tmp/clipcrawl-demo")
    .action(async (flags: { root: string }) => {
      const reporter = terminalReporter();
      process.stdout.write(
        `clipcrawl demo: building a dataset from the bundled sample in ${flags.root}\n`,
      );
      const result = await demo({ root: flags.root, reporter }).finally(() => reporter.stop());
      process.stdout.write(describeSummary(result.extract));
      process.stdout.write("\nsome candidate pairs (image URL ← alt text):\n");
      for (const example of result.examples) {
        const language = example.language === "" ? "?" : example.language;
        process.stdout.write(
          `  [${example.tier}/${language}] ${example.url}\n      ← ${example.text}\n`,
        );
      }
      process.stdout.write(`\ncandidate shards: ${result.root}/candidates/\n`);
      if (!result.extract.ok) process.exitCode = 1;
    });
}
