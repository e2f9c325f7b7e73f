import type { Command } from "commander";
import type { JsonValue, SampleHistory, StageRow } from "../../governance/sample-history.js";

interface ShowFlags {
  root: string;
  json?: boolean;
}

export function registerShow(program: Command): void {
  program
    .command("show")
    .description(
      "a sample's full record and its history through the stages (candidate, download, embed, dataset or drop reason, index, removals)",
    )
    .argument("<key>", "the sample key (download's: shard id + index, e.g. 000010005)")
    .option("--root <dir>", "the dataset root", ".")
    .option("--json", "print the history as JSON")
    .addHelpText("after", "\nExample:\n  clipcrawl show 000010005 --root ./data")
    .action(async (key: string, flags: ShowFlags) => {
      const { showSample } = await import("../../pipeline/governance-commands.js");
      const history = await showSample({ root: flags.root, key });
      process.stdout.write(
        flags.json === true ? `${JSON.stringify(history, null, 2)}\n` : describeHistory(history),
      );
      if (!history.found) process.exitCode = 1;
    });
}

export function describeHistory(history: SampleHistory): string {
  if (!history.found) return `no sample ${history.key} in this root\n`;
  const lines = [`sample ${history.key}`];
  const section = (title: string, row: StageRow | null, missing: string) => {
    lines.push("", row === null ? `${title}: ${missing}` : `${title}: ${row.file}, row ${row.row}`);
    if (row !== null) lines.push(...fields(row.values));
  };
  section(
    "candidate (extract)",
    history.candidate,
    "not found (no candidate shards, or a URL-list download)",
  );
  section("download", history.download, "no row");
  section("embed", history.embedding, "no row");
  if (history.dataset !== null) {
    section("dataset (filter)", history.dataset, "");
  } else {
    lines.push(
      "",
      `dataset (filter): not in the dataset${history.dropReason === null ? "" : ` — dropped: ${history.dropReason}`}`,
    );
  }
  lines.push(
    "",
    history.index === null
      ? "index: not indexed"
      : `index: id ${history.index.id} (segment ${history.index.segment}), near-duplicate group ${history.index.dupGroup ?? "unknown"}`,
  );
  lines.push("", history.removals.length === 0 ? "removals: none" : "removals:");
  for (const removal of history.removals) {
    lines.push(
      `  ${removal.removal}  ${removal.finished}  by ${removal.lists.join(", ")}${removal.reason === "" ? "" : `: ${removal.reason}`}`,
    );
  }
  for (const note of history.notes) lines.push(`note: ${note}`);
  return `${lines.join("\n")}\n`;
}

function fields(values: Record<string, JsonValue>): string[] {
  const width = Math.min(24, Math.max(...Object.keys(values).map((name) => name.length)));
  return Object.entries(values).map(([name, value]) => {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    const shown = text.length > 160 ? `${text.slice(0, 157)}…` : text;
    return `  ${name.padEnd(width)}  ${shown}`;
  });
}
