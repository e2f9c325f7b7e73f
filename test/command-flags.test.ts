import assert from "node:assert/strict";
import { test } from "node:test";
import { Command } from "commander";
import { addConfigOptions, configOverrides } from "../src/cli/config-options.js";
import { buildProgram } from "../src/cli/main.js";
import { mentionsIn, SourceGraph } from "./support/message-flags.js";

/** Every command of the program by its path (`clipcrawl`, `serve`, `model fetch`), with its flags. */
async function programCommands(): Promise<Map<string, { command: Command; flags: Set<string> }>> {
  const commands = new Map<string, { command: Command; flags: Set<string> }>();
  const add = (command: Command, path: string) => {
    const flags = new Set(["--help", ...command.options.flatMap((option) => option.long ?? [])]);
    commands.set(path, { command, flags });
    for (const sub of command.commands)
      add(sub, path === "" ? sub.name() : `${path} ${sub.name()}`);
  };
  add(await buildProgram(), "");
  return commands;
}

/** The text `--help` shows after the options (the examples). */
function helpAfter(command: Command): string {
  let help = "";
  command.configureOutput({ writeOut: (text) => (help += text), writeErr: () => {} });
  command.outputHelp();
  return help.slice(command.helpInformation().length);
}

/**
 * Flags a command's messages name though the path that prints them cannot run under that command.
 * Each is checked to be still needed, so the list cannot outlive its reason.
 */
const UNREACHABLE: { command: string; flag: string; file: string; why: string }[] = [
  ...["run", "worker", "demo"].flatMap((command) =>
    ["--input-format", "--save-additional-columns"].map((flag) => ({
      command,
      flag,
      file: "stages/download/url-lists.ts",
      why: "download reads URL lists only from the inputs that `clipcrawl download` passes it",
    })),
  ),
  ...["server/index-models.ts", "server/served-index.ts"].map((file) => ({
    command: "demo",
    flag: "--model",
    file,
    why: "the demo serves its index with the tiny model it embedded it with",
  })),
];

/**
 * A worker runs the jobs of `clipcrawl run --queue`: what it logs about a job's failure (which
 * the run's coordinator prints too) names the run's flags.
 */
const RUNS_JOBS_OF: Record<string, string> = { worker: "run" };

/** The commands that run stages through the pipeline registry (src/pipeline/pipeline.ts). */
const RUNS_STAGES = new Set(["run", "worker", "demo"]);

test("every --flag in a command's help (descriptions, config keys' descriptions, examples) is one of its options", async () => {
  const commands = await programCommands();
  const paths = new Set([...commands.keys()].filter((path) => path !== ""));
  const wrong: string[] = [];
  for (const [path, { command }] of commands) {
    const texts = [
      command.description(),
      command.summary(),
      helpAfter(command),
      ...command.options.map((option) => option.description),
      ...command.registeredArguments.map((argument) => argument.description),
    ];
    for (const text of texts) {
      for (const mention of mentionsIn(text, path || "clipcrawl", paths)) {
        const owner = mention.command ?? path;
        if (!commands.get(owner)?.flags.has(mention.flag)) {
          wrong.push(
            `${path || "clipcrawl"}: ${mention.flag} (${owner || "clipcrawl"} has no such option)`,
          );
        }
      }
    }
  }
  assert.deepEqual(wrong, []);
});

test("every --flag named in the messages a command can print is one of that command's options", async () => {
  const commands = await programCommands();
  const paths = [...commands.keys()].filter((path) => path !== "");
  const graph = new SourceGraph(paths);
  const entries = graph.commandEntries();
  const leaves = paths.filter((path) => commands.get(path)?.command.commands.length === 0);
  assert.deepEqual([...entries.keys()].sort(), leaves.sort(), "every command's source is found");

  const wrong: string[] = [];
  const unreachableUsed = new Set<string>();
  const printed = new Map<string, Set<string>>();
  for (const [path, entry] of entries) {
    const own = commands.get(path)?.flags ?? new Set<string>();
    const alsoOf = RUNS_JOBS_OF[path];
    const allowed = new Set([...own, ...(commands.get(alsoOf ?? "")?.flags ?? [])]);
    for (const mention of graph.flagMentions(entry.file, entry.nodes, RUNS_STAGES.has(path))) {
      printed.set(path, (printed.get(path) ?? new Set()).add(mention.flag));
      if (mention.command !== undefined) {
        if (!commands.get(mention.command)?.flags.has(mention.flag)) {
          wrong.push(`${mention.at}: clipcrawl ${mention.command} has no ${mention.flag}`);
        }
        continue;
      }
      if (allowed.has(mention.flag)) continue;
      const excused = UNREACHABLE.find(
        (item) =>
          item.command === path &&
          item.flag === mention.flag &&
          mention.at.startsWith(`${item.file}:`),
      );
      if (excused !== undefined)
        unreachableUsed.add(`${excused.command} ${excused.flag} ${excused.file}`);
      else wrong.push(`${mention.at}: printed by ${path}, which has no ${mention.flag}`);
    }
  }
  assert.deepEqual([...new Set(wrong)].sort(), []);
  assert.deepEqual(
    UNREACHABLE.map((item) => `${item.command} ${item.flag} ${item.file}`).filter(
      (item) => !unreachableUsed.has(item),
    ),
    [],
    "an exception no longer needed",
  );
  // The check sees through the layers: the network guard's hint reaches each command that fetches.
  for (const path of ["extract", "download", "serve", "run", "worker", "demo", "model fetch"]) {
    assert.ok(printed.get(path)?.has("--allow-private-network"), path);
  }
  assert.ok(!printed.get("model quantize")?.has("--allow-private-network"));
});

test("a flag after `clipcrawl <command>` is that command's; after another program's name, none of ours", () => {
  const paths = new Set(["index", "download", "model", "model fetch"]);
  assert.deepEqual(
    mentionsIn(
      "run clipcrawl index --overwrite, or --where\n  clipcrawl model fetch X --variant q (or img2dataset --url_list a --input_format b)\nnot a clipcrawl dataset root; give --root",
      "here",
      paths,
    ).map((mention) => [mention.flag, mention.command]),
    [
      ["--overwrite", "index"],
      ["--where", "index"],
      ["--variant", "model fetch"],
      ["--root", undefined],
    ],
  );
});

test("serve's --allow-private-urls, the old name of --allow-private-network, still works for a release, with a warning", () => {
  const command = addConfigOptions(new Command("serve").exitOverride(), "serve");
  const overridesOf = (args: string[]) => {
    const warnings: string[] = [];
    command.setOptionValue("allowPrivateUrls", undefined);
    command.setOptionValue("allowPrivateNetwork", undefined);
    command.parse(args, { from: "user" });
    return {
      values: configOverrides(command.opts(), "serve", (line) => warnings.push(line)),
      warnings,
    };
  };
  assert.deepEqual(overridesOf(["--allow-private-urls"]), {
    values: { allowPrivateNetwork: true },
    warnings: [
      "clipcrawl: --allow-private-urls is deprecated and goes in the next release; use --allow-private-network",
    ],
  });
  assert.deepEqual(overridesOf(["--allow-private-network"]), {
    values: { allowPrivateNetwork: true },
    warnings: [],
  });
  assert.deepEqual(overridesOf(["--allow-private-urls", "--no-allow-private-network"]).values, {
    allowPrivateNetwork: false,
  });
  assert.ok(!command.helpInformation().includes("--allow-private-urls"), "hidden from help");
});
