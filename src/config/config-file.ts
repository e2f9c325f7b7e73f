/**
 * Reading and writing `<root>/clipcrawl.json`: parse, validate against the schema, apply CLI
 * overrides, and turn every bad value into one line that names the file, the key and the fix.
 */
import * as z from "zod";
import { ConfigError } from "../errors.js";
import type { DatasetStorage } from "../io/storage.js";
import { type ClipcrawlConfig, CONFIG_PARSE, configSchema, type StageSection } from "./schema.js";

export const CONFIG_FILE = "clipcrawl.json";

export type ConfigOverrides = Partial<Record<StageSection, Record<string, unknown>>>;

/** Defaults for every value. */
export function defaultConfig(): ClipcrawlConfig {
  return configSchema.parse({}, CONFIG_PARSE);
}

/** Validates a parsed JSON value; `source` names where it came from in error messages. */
export function parseConfig(value: unknown, source: string): ClipcrawlConfig {
  const result = configSchema.safeParse(renameDeprecatedKeys(value), CONFIG_PARSE);
  if (result.success) return result.data;
  throw new ConfigError(formatIssues(result.error, value, source));
}

/** Keys renamed since a release: `clipcrawl init` wrote the old names into clipcrawl.json files. */
const DEPRECATED_KEYS: ReadonlyArray<readonly [section: string, old: string, current: string]> = [
  ["download", "allowPrivateAddresses", "allowPrivateNetwork"],
  ["serve", "allowPrivateUrls", "allowPrivateNetwork"],
];

function renameDeprecatedKeys(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  let renamed = value as Record<string, unknown>;
  for (const [section, old, current] of DEPRECATED_KEYS) {
    const values = renamed[section];
    if (values === null || typeof values !== "object" || !(old in values)) continue;
    const { [old]: oldValue, ...rest } = values as Record<string, unknown>;
    renamed = { ...renamed, [section]: { [current]: oldValue, ...rest } };
  }
  return renamed;
}

export async function readConfig(storage: DatasetStorage): Promise<ClipcrawlConfig | undefined> {
  if (!(await storage.exists(CONFIG_FILE))) return undefined;
  const text = await storage.readText(CONFIG_FILE);
  return parseConfig(parseJson(text, storage.describe(CONFIG_FILE)), storage.describe(CONFIG_FILE));
}

/** The root's config (defaults where there is none) with the CLI's overrides applied. */
export async function loadConfig(
  storage: DatasetStorage,
  overrides: ConfigOverrides = {},
): Promise<ClipcrawlConfig> {
  const base = (await readConfig(storage)) ?? defaultConfig();
  const merged: Record<string, unknown> = { ...base };
  for (const [section, values] of Object.entries(overrides)) {
    const current = merged[section] as Record<string, unknown> | undefined;
    merged[section] = { ...current, ...values };
  }
  return parseConfig(merged, "command-line options");
}

export async function writeConfig(storage: DatasetStorage, config: ClipcrawlConfig): Promise<void> {
  await storage.writeAtomic(CONFIG_FILE, `${JSON.stringify(config, null, 2)}\n`);
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = /position (\d+)/.exec(message)?.[1];
    const where = position === undefined ? "" : ` at ${lineAndColumn(text, Number(position))}`;
    throw new ConfigError(`${source}: invalid JSON${where}: ${message}`);
  }
}

function lineAndColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - before.lastIndexOf("\n");
  return `line ${line} column ${column}`;
}

function formatIssues(error: z.ZodError, value: unknown, source: string): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.join(".");
      const where = path === "" ? source : `${source}: ${path}`;
      if (issue.code === "unrecognized_keys") {
        const known = knownKeys(issue.path);
        const hint = known.length > 0 ? ` (known keys: ${known.join(", ")})` : "";
        return `${where}: unknown key ${issue.keys.map((key) => `"${key}"`).join(", ")}${hint}`;
      }
      const received = valueAt(value, issue.path);
      const got = received === undefined ? "" : `, got ${JSON.stringify(received)}`;
      return `${where}: ${issue.message.replace(/^Invalid input: /, "")}${got}`;
    })
    .join("\n");
}

function valueAt(value: unknown, path: readonly PropertyKey[]): unknown {
  let current = value;
  for (const key of path) {
    if (current === null || typeof current !== "object") return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function knownKeys(path: readonly PropertyKey[]): string[] {
  let schema: z.ZodType = configSchema;
  for (const key of path) {
    const shape = objectShape(schema);
    const next = shape?.[String(key)];
    if (next === undefined) return [];
    schema = next;
  }
  return Object.keys(objectShape(schema) ?? {});
}

/** The fields of an object schema, looking through defaults and optionals. */
export function objectShape(schema: z.ZodType): Record<string, z.ZodType> | undefined {
  let current: z.ZodType = schema;
  while (current instanceof z.ZodDefault || current instanceof z.ZodOptional) {
    current = current.unwrap() as z.ZodType;
  }
  return current instanceof z.ZodObject ? (current.shape as Record<string, z.ZodType>) : undefined;
}
