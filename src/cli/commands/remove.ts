import type { Command } from "commander";
import type { RemovalKind } from "../../formats/removal-lists.js";
import type { IndexAction, RemoveSummary } from "../../governance/remove.js";
import { runStageCommand } from "../run-stage.js";
import { formatCount } from "../terminal-reporter.js";
import { describeCompaction } from "./compact.js";

interface RemoveFlags {
  root: string;
  urls?: string;
  domains?: string;
  sha256?: string;
  md5?: string;
  sha1?: string;
  keys?: string;
  reason?: string;
  reapply?: boolean;
  compact?: boolean;
  index: string;
  json?: boolean;
}

export function registerRemove(program: Command): void {
  const command = program
    .command("remove")
    .description(
      "take samples out of the root at once: tombstones every reader honours (serve, subset, stats, recheck), an audit log, and lists download and filter keep them out by; clipcrawl compact rewrites the files later",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--urls <file>", "image URLs, one a line")
    .option("--domains <file>", "domains, one a line; a domain covers its subdomains")
    .option("--sha256 <file>", "SHA-256 digests of image bytes, one a line")
    .option("--md5 <file>", "MD5 digests of image bytes, one a line (takedown lists)")
    .option("--sha1 <file>", "SHA-1 digests of image bytes, one a line (takedown lists)")
    .option("--keys <file>", "sample keys, one a line")
    .option("--reason <text>", "why: kept in the audit log (_governance/audit.jsonl)")
    .option(
      "--reapply",
      "apply every list of _governance/blocklists again (takes out copies that came in since)",
    )
    .option(
      "--compact",
      "rewrite the files holding the removed samples right away (clipcrawl compact) instead of later",
    )
    .option(
      "--index <action>",
      "with --compact: an index holding removed samples is rebuilt without them, or deleted: rebuild | delete",
      "rebuild",
    )
    .option("--json", "print the summary as JSON");
  command.addHelpText(
    "after",
    "\nLists: one entry a line, # starts a comment; a bad line is reported and the rest applied.\n" +
      "Removed samples are unreachable through every reader when the command returns; their bytes\n" +
      "stay in the image tars, embeddings and dataset shards until clipcrawl compact rewrites them.\n" +
      "An interrupted removal is completed by the next clipcrawl remove on the root.\n" +
      "\nExamples:\n  clipcrawl remove --root ./data --md5 takedown-md5.txt --sha1 takedown-sha1.txt --reason 'hash list 2024-08'\n" +
      "  clipcrawl remove --root ./data --domains opt-out-domains.txt --reason 'site owner opt-out'\n" +
      "  clipcrawl remove --root ./data --keys keys.txt --compact --index delete",
  );
  command.action(async (flags: RemoveFlags) => {
    if (flags.index !== "rebuild" && flags.index !== "delete") {
      command.error(`error: --index takes rebuild or delete, got ${JSON.stringify(flags.index)}`);
    }
    const lists: Partial<Record<RemovalKind, string>> = {
      urls: flags.urls,
      domains: flags.domains,
      sha256: flags.sha256,
      md5: flags.md5,
      sha1: flags.sha1,
      keys: flags.keys,
    };
    const { remove } = await import("../../pipeline/governance-commands.js");
    await runStageCommand(
      flags.json,
      (reporter) =>
        remove({
          root: flags.root,
          lists,
          reason: flags.reason,
          reapply: flags.reapply === true,
          compact: flags.compact === true,
          index: flags.index as IndexAction,
          reporter,
        }),
      describeSummary,
    );
  });
}

export function describeSummary(summary: RemoveSummary): string {
  const lines: string[] = [];
  for (const removal of summary.removals) {
    const asked = Object.entries(removal.request)
      .map(([kind, list]) => `${formatCount(list?.entries ?? 0)} ${kind}`)
      .join(", ");
    lines.push(
      `remove ${removal.removal}${removal.resumed ? " (completed after an interruption)" : ""}: ${asked === "" ? "pending removal" : asked} → ${formatCount(removal.samples)} samples removed`,
      removal.samples === 0
        ? "  nothing left to remove (already removed, or no sample matches)"
        : `  tombstoned: unreachable through serve, subset, stats and recheck from now on (${formatCount(removal.tombstoneBytes / 1e3)} KB written: ${removal.tombstones?.path})`,
    );
    if (removal.filesHolding > 0 && summary.compaction === null) {
      lines.push(
        `  ${removal.filesHolding} files (${formatCount(removal.bytesHolding / 1e6)} MB) still hold their bytes until clipcrawl compact; index ${removal.index}`,
      );
    }
  }
  if (summary.compaction !== null) lines.push(describeCompaction(summary.compaction).trimEnd());
  if (summary.badLines > 0) {
    lines.push(
      `  ${summary.badLines} bad list ${summary.badLines === 1 ? "line" : "lines"} ignored (see above)`,
    );
  }
  lines.push(
    `  ${summary.seconds.toFixed(1)} s; audit log: _governance/audit.jsonl; lists: _governance/blocklists/; tombstones: _governance/tombstones/`,
    "",
  );
  return lines.join("\n");
}
