import type { Command } from "commander";
import type { StatsSummary } from "../../stages/stats/stats.js";
import { formatCount } from "../terminal-reporter.js";

interface StatsFlags {
  root: string;
  output?: string;
  json?: string;
}

export function registerStats(program: Command): void {
  program
    .command("stats")
    .description(
      "dataset report: one self-contained HTML page with plots, and the same numbers as JSON (counts per stage, drop reasons, languages, score distributions, domains, throughput)",
    )
    .option("--root <dir>", "the dataset root", ".")
    .option("-o, --output <file>", "the HTML report to write (default: <root>/_reports/stats.html)")
    .option("--json <file>", "also write the numbers as JSON to this file")
    .addHelpText(
      "after",
      "\nExample:\n  clipcrawl stats --root ./data -o report.html --json stats.json",
    )
    .action(async (flags: StatsFlags) => {
      const { stats } = await import("../../stages/stats/stats.js");
      const summary = await stats({
        root: flags.root,
        ...(flags.output === undefined ? {} : { html: flags.output }),
        ...(flags.json === undefined ? {} : { json: flags.json }),
      });
      for (const warning of summary.warnings) process.stderr.write(`stats: ${warning}\n`);
      process.stdout.write(describeStats(summary));
      if (!summary.ok) process.exitCode = 1;
    });
}

export function describeStats(summary: StatsSummary): string {
  const { funnel, languages } = summary.report;
  const steps = [
    ["links seen", funnel.links],
    ["candidates", funnel.candidates],
    ["downloaded", funnel.downloaded],
    ["embedded", funnel.embedded],
    ["kept", funnel.kept],
  ]
    .filter((step): step is [string, number] => typeof step[1] === "number")
    .map(([label, count]) => `${label} ${formatCount(count)}`);
  const lines = [
    steps.join(" → "),
    `languages: ${languages
      .slice(0, 5)
      .map(([code, count]) => `${code === "" ? "none" : code} ${formatCount(count)}`)
      .join(", ")}`,
    `report: ${summary.html}`,
  ];
  if (summary.json !== null) lines.push(`numbers: ${summary.json}`);
  return `${lines.join("\n")}\n`;
}
