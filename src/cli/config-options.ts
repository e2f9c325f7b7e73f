/**
 * CLI flags derived from the config schema, so a new config value is a new flag with its
 * description and default and nothing is written twice. Flags override clipcrawl.json for
 * one run; the schema validates their values like any other. A renamed flag keeps its old
 * name for one release, hidden from help, with a one-line warning when it is used.
 */
import { type Command, Option } from "commander";
import * as z from "zod";
import { type StageSection, stageSectionSchemas } from "../config/schema.js";

interface FieldInfo {
  key: string;
  flag: string;
  kind: "number" | "boolean" | "string" | "array" | "enum";
  description: string;
  defaultValue: unknown;
  choices?: readonly string[];
}

/** Old flag names still read for one release: section, old flag, the key it sets now. */
const DEPRECATED_FLAGS: ReadonlyArray<readonly [StageSection, old: string, current: string]> = [
  ["serve", "allow-private-urls", "allowPrivateNetwork"],
];

export function addConfigOptions(command: Command, section: StageSection): Command {
  for (const field of sectionFields(section)) {
    const fallback = field.defaultValue === undefined ? "none" : JSON.stringify(field.defaultValue);
    const shown = ` (default: ${fallback}; config ${section}.${field.key})`;
    if (field.kind === "boolean") {
      command.addOption(new Option(`--${field.flag}`, `${field.description}${shown}`));
      command.addOption(new Option(`--no-${field.flag}`, `turn off --${field.flag}`).hideHelp());
      continue;
    }
    const placeholder =
      field.kind === "array" ? "<a,b,…>" : field.kind === "number" ? "<n>" : "<value>";
    const option = new Option(`--${field.flag} ${placeholder}`, `${field.description}${shown}`);
    if (field.choices !== undefined) option.choices(field.choices);
    command.addOption(option);
  }
  for (const [, old, current] of deprecatedFlags(section)) {
    const now = `--${kebabCase(current)}`;
    command.addOption(new Option(`--${old}`, `old name of ${now}`).hideHelp());
    command.addOption(
      new Option(`--no-${old}`, `old name of --no-${kebabCase(current)}`).hideHelp(),
    );
  }
  return command;
}

/** The config values given on the command line, in the section's shape. */
export function configOverrides(
  options: Record<string, unknown>,
  section: StageSection,
  warn: (line: string) => void = (line) => process.stderr.write(`${line}\n`),
): Record<string, unknown> {
  const overrides: Record<string, unknown> = {};
  for (const [, old, current] of deprecatedFlags(section)) {
    const value = options[camelCase(old)];
    if (value === undefined) continue;
    const no = value === false ? "no-" : "";
    warn(
      `clipcrawl: --${no}${old} is deprecated and goes in the next release; use --${no}${kebabCase(current)}`,
    );
    overrides[current] = value;
  }
  for (const field of sectionFields(section)) {
    const value = options[camelCase(field.flag)];
    if (value === undefined) continue;
    overrides[field.key] = convert(field, value);
  }
  return overrides;
}

function convert(field: FieldInfo, value: unknown): unknown {
  if (typeof value !== "string") return value;
  if (field.kind === "number") {
    const number = Number(value);
    return value.trim() !== "" && Number.isFinite(number) ? number : value;
  }
  if (field.kind === "array") {
    return value
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "");
  }
  return value;
}

function sectionFields(section: StageSection): FieldInfo[] {
  const schema = stageSectionSchemas[section];
  return Object.entries(schema.shape).map(([key, fieldSchema]) => {
    let inner: z.ZodType = fieldSchema as z.ZodType;
    let defaultValue: unknown;
    const description = inner.description ?? key;
    while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) {
      if (inner instanceof z.ZodDefault) defaultValue = inner.def.defaultValue;
      inner = inner.unwrap() as z.ZodType;
    }
    const kind: FieldInfo["kind"] =
      inner instanceof z.ZodNumber
        ? "number"
        : inner instanceof z.ZodBoolean
          ? "boolean"
          : inner instanceof z.ZodArray
            ? "array"
            : inner instanceof z.ZodEnum
              ? "enum"
              : "string";
    const info: FieldInfo = { key, flag: kebabCase(key), kind, description, defaultValue };
    if (inner instanceof z.ZodEnum) info.choices = inner.options.map(String);
    return info;
  });
}

function deprecatedFlags(section: StageSection) {
  return DEPRECATED_FLAGS.filter(([of]) => of === section);
}

function kebabCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`);
}

function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}
