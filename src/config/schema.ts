/**
 * The root of clipcrawl's configuration: one section a stage, each declared next to the code
 * that reads it (src/stages/<stage>/config.ts, src/server/config.ts, the score heads' in
 * src/models/heads/score-config.ts). Types, defaults, the CLI flags (src/cli/config-options.ts)
 * and the message for a bad value all come from these schemas. A section's module imports only
 * zod and small shared pieces, never the stage code that loads the config, so there is no cycle.
 */
import { z } from "zod";
import { scoresConfigSchema } from "../models/heads/score-config.js";
import { serveConfigSchema } from "../server/config.js";
import { downloadConfigSchema } from "../stages/download/config.js";
import { embedConfigSchema } from "../stages/embed/config.js";
import { extractConfigSchema } from "../stages/extract/config.js";
import { filterConfigSchema } from "../stages/filter/config.js";
import { indexConfigSchema } from "../stages/index/config.js";

export const configSchema = z
  .object({
    $schema: z.string().optional(),
    version: z.literal(1).default(1).describe("config format version"),
    extract: extractConfigSchema.default(extractConfigSchema.parse({})),
    download: downloadConfigSchema.default(downloadConfigSchema.parse({})),
    embed: embedConfigSchema.default(embedConfigSchema.parse({})),
    scores: scoresConfigSchema.default(() => scoresConfigSchema.parse({})),
    filter: filterConfigSchema.default(filterConfigSchema.parse({})),
    index: indexConfigSchema.default(indexConfigSchema.parse({})),
    serve: serveConfigSchema.default(serveConfigSchema.parse({})),
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
