/**
 * The root of clipcrawl's configuration: one section a stage, each declared next to the code
 * that reads it (src/stages/<stage>/config.ts, src/server/config.ts, the score heads' in
 * src/models/heads/score-config.ts). Types, defaults, the CLI flags (src/cli/config-options.ts)
 * and the message for a bad value all come from these schemas. A section's module imports only
 * zod and small shared pieces, never the stage code that loads the config, so there is no cycle.
 */
import * as z from "zod";
import { scoresConfigSchema } from "../models/heads/score-config.js";
import { serveConfigSchema } from "../server/config.js";
import { downloadConfigSchema } from "../stages/download/config.js";
import { embedConfigSchema } from "../stages/embed/config.js";
import { extractConfigSchema } from "../stages/extract/config.js";
import { filterConfigSchema } from "../stages/filter/config.js";
import { indexConfigSchema } from "../stages/index/config.js";

/**
 * How the config is parsed: without zod's compiled fast path. A process parses its config a few
 * times, and compiling an object schema's parser (`new Function`) costs more than it saves then.
 */
export const CONFIG_PARSE = { jitless: true } as const;

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    version: z.literal(1).default(1).describe("config format version"),
    extract: extractConfigSchema.default(extractConfigSchema.parse({}, CONFIG_PARSE)),
    download: downloadConfigSchema.default(downloadConfigSchema.parse({}, CONFIG_PARSE)),
    embed: embedConfigSchema.default(embedConfigSchema.parse({}, CONFIG_PARSE)),
    scores: scoresConfigSchema.default(() => scoresConfigSchema.parse({}, CONFIG_PARSE)),
    filter: filterConfigSchema.default(filterConfigSchema.parse({}, CONFIG_PARSE)),
    index: indexConfigSchema.default(indexConfigSchema.parse({}, CONFIG_PARSE)),
    serve: serveConfigSchema.default(serveConfigSchema.parse({}, CONFIG_PARSE)),
    provenance: z
      .object({ createdWith: z.string(), createdAt: z.string() })
      .strict()
      .optional()
      .describe("written by clipcrawl init: the version that created the root"),
  })
  .strict();

export type ClipcrawlConfig = z.infer<typeof configSchema>;
/** The sections a stage's CLI flags can override. */
export type StageSection = "extract" | "download" | "embed" | "filter" | "index" | "serve";

export const stageSectionSchemas = {
  extract: extractConfigSchema,
  download: downloadConfigSchema,
  embed: embedConfigSchema,
  filter: filterConfigSchema,
  index: indexConfigSchema,
  serve: serveConfigSchema,
} as const;
