import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { test } from "node:test";
import { CLI_REFERENCE, renderCliReference } from "../scripts/cli-reference.js";
import { buildProgram } from "../src/cli/main.js";
import { configSchema } from "../src/config/schema.js";

test("docs/cli-reference.md is what the commands and the config schema say now", async () => {
  const committed = await readFile(CLI_REFERENCE, "utf8").catch(() => "");
  const current = await renderCliReference();
  if (committed !== current) {
    const committedLines = committed.split("\n");
    const line = current.split("\n").findIndex((text, at) => text !== committedLines[at]);
    assert.fail(
      `docs/cli-reference.md is out of date (first difference at line ${line + 1}): run \`npm run docs:cli\` and commit it`,
    );
  }
});

test("the reference names every command, every visible option and every config key", async () => {
  const reference = await renderCliReference();
  const commands = (await buildProgram()).commands.flatMap((command) => [
    command,
    ...command.commands,
  ]);
  for (const command of commands) {
    assert.match(reference, new RegExp(`### clipcrawl (\\w+ )?${command.name()}\\n`));
    for (const option of command.options.filter((option) => !option.hidden)) {
      assert.ok(reference.includes(`\`${option.flags}\``), `${command.name()} ${option.flags}`);
    }
  }
  for (const [section, schema] of Object.entries(configSchema.shape)) {
    const shape = (schema as { unwrap?: () => { shape?: object } }).unwrap?.().shape;
    if (section === "scores" || shape === undefined) continue;
    for (const key of Object.keys(shape)) {
      assert.ok(reference.includes(`| \`${section}.${key}\` |`), `${section}.${key}`);
    }
  }
});
