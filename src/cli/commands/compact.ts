import { spawn } from "node:child_process";
import { mkdir, open } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { Command } from "commander";
import type { IndexAction } from "../../governance/apply-rewrites.js";
import type { CompactSummary } from "../../governance/compact.js";
import { isS3Url } from "../../io/s3-storage.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";

interface CompactFlags {
  root: string;
  index: string;
  background?: boolean;
  json?: boolean;
}

/** Where `compact --background` writes its output, in the root. */
export const COMPACT_LOG = "_governance/compact.log";
/** Its output for an object-storage root, which cannot be appended to: in the current folder. */
export const LOCAL_COMPACT_LOG = "clipcrawl-compact.log";

export function registerCompact(program: Command): void {
  const command = program
    .command("compact")
    .description(
      "rewrite the files that still hold removed samples (image tars and parquets, embeddings, dataset, version snapshots, index), then clear the tombstones applied",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option(
      "--index <action>",
      "an index holding removed samples is rebuilt without them, or deleted: rebuild | delete",
      "rebuild",
    )
    .option(
      "--background",
      `start the compaction as a detached process and return; its output goes to <root>/${COMPACT_LOG} (an s3:// root: ./${LOCAL_COMPACT_LOG})`,
    )
    .option("--json", "print the summary as JSON");
  command.addHelpText(
    "after",
    "\nclipcrawl remove makes samples unreachable at once (tombstones); compact is when their bytes\n" +
      "are rewritten away. Readers keep honouring the tombstones while it runs, and a removal made\n" +
      "meanwhile waits only for its short planning and commit steps. An interrupted compaction is\n" +
      "completed by the next clipcrawl compact.\n" +
      "\nExamples:\n  clipcrawl compact --root ./data\n" +
      "  clipcrawl compact --root ./data --background   # e.g. nightly, from cron",
  );
  command.action(async (flags: CompactFlags) => {
    if (flags.index !== "rebuild" && flags.index !== "delete") {
      command.error(`error: --index takes rebuild or delete, got ${JSON.stringify(flags.index)}`);
    }
    if (flags.background === true) {
      await startInBackground(flags.root);
      return;
    }
    const { compact } = await import("../../pipeline/governance-commands.js");
    await runStageCommand(
      flags.json,
      (reporter) => compact({ root: flags.root, index: flags.index as IndexAction, reporter }),
      describeCompaction,
    );
  });
}

/** The same command line without --background, detached, its output appended to the log. */
async function startInBackground(root: string): Promise<void> {
  const log = isS3Url(root) ? resolve(LOCAL_COMPACT_LOG) : resolve(root, COMPACT_LOG);
  await mkdir(dirname(log), { recursive: true });
  const output = await open(log, "a");
  const args = [
    ...process.execArgv,
    ...process.argv.slice(1).filter((arg) => arg !== "--background"),
  ];
  const child = spawn(process.execPath, args, {
    detached: true,
    stdio: ["ignore", output.fd, output.fd],
  });
  child.unref();
  await output.close();
  process.stdout.write(
    `compacting in the background (process ${child.pid}); output: ${log}\n` +
      "readers honour the tombstones until it is done; clipcrawl compact again completes an interrupted one\n",
  );
}

export function describeCompaction(summary: CompactSummary): string {
  if (summary.compaction === null) return "compact: no tombstones, nothing to rewrite\n";
  const changed = summary.files.filter((file) => file.removed > 0);
  const lines = [
    `compact ${summary.compaction}${summary.resumed ? " (completed after an interruption)" : ""}: the tombstones of ${summary.applied.length} ${summary.applied.length === 1 ? "removal" : "removals"} (${formatCount(summary.samples)} samples) applied and cleared`,
    `  ${changed.length} files rewritten, ${summary.versions.length} version snapshot files linked again or rewritten (${formatCount(summary.bytesRewritten / 1e6)} MB written); index ${summary.index}`,
  ];
  for (const file of changed.slice(0, 12)) {
    lines.push(`    ${formatCount(file.removed).padStart(7)}  ${file.path}`);
  }
  if (changed.length > 12) lines.push(`    … and ${changed.length - 12} more files`);
  lines.push(`  ${summary.seconds.toFixed(1)} s; audit log: _governance/audit.jsonl`, "");
  return lines.join("\n");
}
