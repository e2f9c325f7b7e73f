import { createServer } from "node:net";
import { resolve } from "node:path";
import type { Command } from "commander";
import type { DemoResult } from "../../demo/demo.js";
import { ClipcrawlError, ConfigError } from "../../errors.js";
import { STAGE_NAMES, type StageName } from "../../pipeline/pipeline.js";
import { terminalReporter } from "../terminal-reporter.js";
import { describeSummary as describeIndex } from "./build-index.js";
import { describeSummary as describeDownload } from "./download.js";
import { describeSummary as describeEmbed } from "./embed.js";
import { describeSummary as describeExtract } from "./extract.js";
import { describeSummary as describeFilter } from "./filter.js";

interface DemoFlags {
  root: string;
  serve: boolean;
  port: string;
  host: string;
  allowPrivateNetwork?: boolean;
}

const DESCRIBE: { [Stage in StageName]: (summary: never) => string } = {
  extract: describeExtract,
  download: describeDownload,
  embed: describeEmbed,
  filter: describeFilter,
  index: describeIndex,
};

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .summary("the bundled sample through every stage on this machine, then its search UI")
    .description(
      "build a dataset from the bundled sample Common Crawl files, every stage on this machine (extract → download from a local stand-in web → embed with a tiny CLIP model → filter → index), then serve its search UI",
    )
    .option("--root <dir>", "where the demo dataset is built (a second run reuses it)", "demo-data")
    .option("--no-serve", "build the dataset and its index, then exit (for scripts and CI)")
    .option("--port <n>", "port of the search UI and API (0: any free port)", "1234")
    .option("--host <address>", "address the server binds to", "127.0.0.1")
    .option(
      "--allow-private-network",
      "let the search UI's image_url queries reach private, loopback, link-local and other special-use addresses",
    )
    .addHelpText(
      "after",
      "\nExamples:\n  clipcrawl demo\n  clipcrawl demo --root /tmp/clipcrawl-demo --port 8080\n  clipcrawl demo --no-serve --root /tmp/clipcrawl-demo",
    )
    .action(async (flags: DemoFlags) => {
      const port = Number(flags.port);
      if (!Number.isInteger(port) || port < 0 || port > 65_535) {
        throw new ConfigError(
          `--port: expected a port number from 0 to 65535, got "${flags.port}"`,
        );
      }
      // Before the build, not after it: a busy port should not cost a user the build's wait.
      if (flags.serve && port !== 0) await checkPortFree(flags.host, port);
      const result = await buildDemo(flags.root);
      if (!result.ok) {
        process.exitCode = 1;
        process.stdout.write("\nsome stage did not process every shard (see above)\n");
      }
      if (!flags.serve) return;
      await serveDemo(result.root, {
        host: flags.host,
        port,
        allowPrivateNetwork: flags.allowPrivateNetwork === true,
      });
    });
}

async function buildDemo(root: string): Promise<DemoResult> {
  const { demo } = await import("../../demo/demo.js");
  const reporter = terminalReporter();
  const out = (text: string) => process.stdout.write(text);
  out(`clipcrawl demo: building a dataset from the bundled sample in ${resolve(root)}\n`);
  const result = await demo({
    root,
    reporter,
    observer: {
      stageStarted: (stage) =>
        out(`\n[${STAGE_NAMES.indexOf(stage) + 1}/${STAGE_NAMES.length}] ${stage}…\n`),
      stageFinished: (stage, summary, seconds) => {
        reporter.stop();
        out(DESCRIBE[stage](summary as never));
        out(`  (${stage} took ${seconds.toFixed(1)} s)\n`);
      },
    },
  }).finally(() => reporter.stop());
  out("\nsome candidate pairs (image URL ← alt text):\n");
  for (const example of result.examples) out(describePair(example));
  out("\nsome pairs the dataset kept:\n");
  for (const pair of result.kept) out(describePair(pair));
  const total = Object.values(result.seconds).reduce((sum, seconds) => sum + seconds, 0);
  out(`\ndataset root: ${result.root} (built in ${total.toFixed(1)} s)\n`);
  return result;
}

function describePair(pair: DemoResult["kept"][number]): string {
  const language = pair.language === "" ? "?" : pair.language;
  return `  [${pair.tier}/${language}] ${pair.url}\n      ← ${pair.text}\n`;
}

function portInUse(host: string, port: number): ClipcrawlError {
  return new ClipcrawlError(
    "CC_PORT_IN_USE",
    `port ${port} on ${host} is in use: pick another with --port (0 takes any free one), or build only with --no-serve`,
  );
}

async function checkPortFree(host: string, port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", (error: NodeJS.ErrnoException) =>
      reject(error.code === "EADDRINUSE" ? portInUse(host, port) : error),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

async function serveDemo(
  root: string,
  config: { host: string; port: number; allowPrivateNetwork: boolean },
): Promise<void> {
  const { serve } = await import("../../server/serve.js");
  const { host, port } = config;
  const server = await serve({ indices: [{ name: "demo", root }], config }).catch(
    (error: unknown) => {
      throw (error as NodeJS.ErrnoException).code === "EADDRINUSE" ? portInUse(host, port) : error;
    },
  );
  process.stdout.write(
    `\nclipcrawl demo: search UI and API at ${server.url}/ (try "a red circle"); Ctrl-C stops it\n`,
  );
  await new Promise<void>((stopped) => {
    process.once("SIGINT", stopped);
    process.once("SIGTERM", stopped);
  });
  const closed = server.close();
  // A browser's keep-alive connections would otherwise hold the close for their whole timeout.
  server.app.server.closeAllConnections();
  await closed;
}
