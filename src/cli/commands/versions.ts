import type { Command } from "commander";
import type { DatasetDiff } from "../../formats/dataset-diff.js";
import type { DatasetVersion } from "../../formats/dataset-versions.js";
import { formatCount } from "../terminal-reporter.js";

interface VersionFlags {
  root: string;
  json?: boolean;
}

export function registerVersions(program: Command): void {
  program
    .command("versions")
    .description(
      "the dataset versions every finished clipcrawl run recorded: id, date, rows, shards, model",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("--json", "print the versions as JSON")
    .addHelpText("after", "\nExample:\n  clipcrawl versions --root ./data")
    .action(async (flags: VersionFlags) => {
      const [{ requireDatasetRoot }, { listVersions }, { openRoot }] = await Promise.all([
        import("../../config/dataset-root.js"),
        import("../../formats/dataset-versions.js"),
        import("../../io/open-root.js"),
      ]);
      const storage = openRoot(flags.root);
      await requireDatasetRoot(storage);
      const versions = await listVersions(storage);
      process.stdout.write(
        flags.json === true ? `${JSON.stringify(versions, null, 2)}\n` : describeVersions(versions),
      );
    });

  program
    .command("diff")
    .description(
      "what changed between two dataset versions: rows added and removed, and how languages and score histograms moved",
    )
    .argument("<from>", "the older version, e.g. v1 (clipcrawl versions lists them)")
    .argument("<to>", "the newer version, e.g. v2")
    .option("--root <dir>", "the dataset root", ".")
    .option("--json", "print the difference as JSON")
    .addHelpText("after", "\nExample:\n  clipcrawl diff v1 v2 --root ./data")
    .action(async (from: string, to: string, flags: VersionFlags) => {
      const [{ requireDatasetRoot }, { diffVersions }, { openRoot }] = await Promise.all([
        import("../../config/dataset-root.js"),
        import("../../formats/dataset-diff.js"),
        import("../../io/open-root.js"),
      ]);
      const storage = openRoot(flags.root);
      await requireDatasetRoot(storage);
      const diff = await diffVersions(storage, from, to);
      process.stdout.write(
        flags.json === true ? `${JSON.stringify(diff, null, 2)}\n` : describeDiff(diff),
      );
    });
}

export function describeVersions(versions: readonly DatasetVersion[]): string {
  if (versions.length === 0) {
    return "no dataset version yet: every finished clipcrawl run records one\n";
  }
  return `${versions
    .map(
      (version) =>
        `${version.id.padEnd(5)} ${version.createdAt.slice(0, 19).replace("T", " ")}  ${formatCount(version.rows).padStart(9)} rows, ${version.shards.length} shards, ${version.command}, model ${version.models.map((digest) => digest.slice(0, 12)).join(" ") || "?"}`,
    )
    .join("\n")}\n`;
}

export function describeDiff(diff: DatasetDiff): string {
  const mean = (bins: [number, number, number][]) => {
    const n = bins.reduce((sum, bin) => sum + bin[2], 0);
    return n === 0
      ? 0
      : bins.reduce((sum, [lower, upper, count]) => sum + ((lower + upper) / 2) * count, 0) / n;
  };
  const lines = [
    `${diff.from.id} (${formatCount(diff.from.rows)} rows) → ${diff.to.id} (${formatCount(diff.to.rows)} rows)`,
    `  added ${formatCount(diff.added.rows)} rows, removed ${formatCount(diff.removed.rows)}`,
    `  languages: ${diff.languages
      .slice(0, 8)
      .map(([code, a, b]) => `${code === "" ? "none" : code} ${formatCount(a)}→${formatCount(b)}`)
      .join(", ")}`,
    ...Object.entries(diff.scores).map(
      ([column, { from, to }]) =>
        `  ${column}: mean ${mean(from.bins).toFixed(3)} → ${mean(to.bins).toFixed(3)}`,
    ),
  ];
  return `${lines.join("\n")}\n`;
}
