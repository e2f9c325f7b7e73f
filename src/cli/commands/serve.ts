import { basename, resolve } from "node:path";
import type { Command } from "commander";
import { ConfigError } from "../../errors.js";
import { isS3Url } from "../../io/s3-storage.js";
import type { ServeConfig } from "../../server/config.js";
import type { IndexSource } from "../../server/serve.js";
import { addConfigOptions, configOverrides } from "../config-options.js";

interface ServeFlags {
  root: string;
  indices?: string;
  name?: string;
  model?: string | false;
  multilingualModel?: string;
  webRoot?: string;
  shard?: string[];
  indexShards?: string;
  [key: string]: unknown;
}

export function registerServe(program: Command): void {
  const command = program
    .command("serve")
    .description(
      "search API (clip-back's /knn-service, /metadata, /indices-list) and the web UI over one or more indices",
    )
    .option("--root <dir>", "the dataset root whose index is served", ".")
    .option(
      "--indices <file>",
      'JSON file of several indices: {"name": "root" or {"root", "model", "multilingualModel"}}',
    )
    .option(
      "--name <name>",
      "name of the --root index in /indices-list (default: the root's folder name)",
    )
    .option(
      "--model <dir>",
      "CLIP model of the queries (default: the one the root was embedded with)",
    )
    .option("--no-model", "serve without a model: embedding_input queries only")
    .option("--multilingual-model <dir>", "multilingual text model behind use_mclip")
    .option(
      "--index-shards <names>",
      "serve only these shards of the --root index (s00000,s00001; none: only fan out)",
    )
    .option(
      "--shard <url>",
      "another clipcrawl serve holding shards of the same index: queries fan out to it (repeatable)",
      (url: string, urls: string[] = []) => [...urls, url],
    )
    .option(
      "--web-root <dir>",
      "folder of the web UI's built files (default: the package's web/dist)",
    );
  addConfigOptions(command, "serve");
  command.addHelpText(
    "after",
    "\nA bearer token for the routes that change data is read from CLIPCRAWL_SERVE_TOKEN.\n" +
      "\nExamples:\n  clipcrawl serve --root ./data\n" +
      "  clipcrawl serve --indices indices.json --host 0.0.0.0 --port 8080 --rate-limit-per-minute 600",
  );
  command.action(async (flags: ServeFlags) => {
    const { serve, serveConfigOf } = await import("../../server/serve.js");
    const sources = await indexSources(flags);
    const config = await serveConfigOf(
      sources[0]?.root ?? flags.root,
      configOverrides(flags, "serve") as Partial<ServeConfig>,
    );
    const server = await serve({ indices: sources, config, webRoot: flags.webRoot });
    process.stdout.write(
      `clipcrawl serve: ${server.url} (indices: ${server.indices.join(", ")}); Ctrl-C stops it\n`,
    );
    await new Promise<void>((resolveStop) => {
      const stop = () => resolveStop();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await server.close();
  });
}

async function indexSources(flags: ServeFlags): Promise<IndexSource[]> {
  if (flags.indices !== undefined) {
    if (
      flags.model !== undefined ||
      flags.name !== undefined ||
      flags.shard !== undefined ||
      flags.indexShards !== undefined
    ) {
      throw new ConfigError(
        "--model, --name, --shard and --index-shards are for --root; name each index's model in the --indices file",
      );
    }
    const { readIndicesFile } = await import("../../server/indices-file.js");
    return readIndicesFile(flags.indices);
  }
  const root = isS3Url(flags.root) ? flags.root : resolve(flags.root);
  const name =
    flags.name ??
    (basename(root)
      .replace(/[^\w.-]+/g, "-")
      .slice(0, 64) ||
      "index");
  const source: IndexSource = { name, root };
  if (flags.model === false) source.model = null;
  else if (flags.model !== undefined) source.model = resolve(flags.model);
  if (flags.multilingualModel !== undefined)
    source.multilingualModel = resolve(flags.multilingualModel);
  if (flags.indexShards !== undefined) {
    source.shards =
      flags.indexShards === "none"
        ? []
        : flags.indexShards
            .split(",")
            .map((name) => name.trim())
            .filter((name) => name !== "");
  }
  if (flags.shard !== undefined) source.remoteShards = flags.shard;
  return [source];
}
