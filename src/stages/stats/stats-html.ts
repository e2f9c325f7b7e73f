/**
 * The `clipcrawl stats` HTML page: one file with the report's JSON and the chart script
 * (web/dist/report/stats-report.js, built from web/src/report/ with the web statistics page's
 * charting code) inlined, and the per-stage table written here, so it opens anywhere offline.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ClipcrawlError } from "../../errors.js";
import { STAGE_NAMES } from "../../pipeline/pipeline.js";
import type { StatsReport } from "./stats.js";

const SCRIPT = join("web", "dist", "report", "stats-report.js");

/** The built chart script of the package this module belongs to (from src/ or dist/src/). */
export function reportScriptPath(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 5; depth++) {
    folder = dirname(folder);
    if (existsSync(join(folder, "package.json"))) return join(folder, SCRIPT);
  }
  return join(process.cwd(), SCRIPT);
}

export async function statsHtml(report: StatsReport, path: string): Promise<string> {
  const script = await readFile(path, "utf8").catch(() => {
    throw new ClipcrawlError(
      "CC_STATS_SCRIPT",
      `the report's chart script ${path} is missing: run npm run build:web in the clipcrawl package`,
    );
  });
  const funnel = report.funnel;
  const title = `clipcrawl stats: ${report.root}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>Dataset statistics</h1>
<p class="meta">${escapeHtml(report.root)} · generated ${escapeHtml(report.generatedAt)}${
    report.runReport === null
      ? " · no run report (throughput from the shards' stats files)"
      : ` · throughput from the run report of <code>clipcrawl ${escapeHtml(report.runReport.command)}</code>, ${escapeHtml(report.runReport.finishedAt)}`
  }</p>
<p class="kept"><strong>${funnel.kept.toLocaleString("en")}</strong> pairs kept${
    typeof funnel.links === "number"
      ? ` of ${funnel.links.toLocaleString("en")} image links seen`
      : ""
  }.</p>
<h2>Stages</h2>
${stageTable(report)}
<h2>Charts</h2>
<noscript><p>The charts need JavaScript; the numbers are in the table above and in the JSON.</p></noscript>
<div id="charts" class="charts"></div>
</main>
<script type="application/json" id="stats-data">${jsonForScript(report)}</script>
<script>${scriptForInline(script)}</script>
</body>
</html>
`;
}

function stageTable(report: StatsReport): string {
  const count = (value: number | undefined) =>
    value === undefined ? "–" : value.toLocaleString("en");
  const cell = (text: string, numeric = true) =>
    `<td${numeric ? ' class="number"' : ""}>${escapeHtml(text)}</td>`;
  const rows = STAGE_NAMES.map((stage) => {
    const totals = report.stages[stage] ?? undefined;
    const speed = report.throughput.find((item) => item.stage === stage);
    const drops = Object.entries(totals?.drops ?? {})
      .sort((a, b) => b[1] - a[1])
      .map(([reason, n]) => `${reason} ${n.toLocaleString("en")}`)
      .join(", ");
    return `<tr data-stage="${stage}">${[
      cell(stage, false),
      cell(count(totals?.shards)),
      cell(count(totals?.inputs)),
      cell(count(totals?.outputs)),
      cell(drops, false),
      cell(typeof speed?.samplesPerSecond === "number" ? speed.samplesPerSecond.toFixed(1) : "–"),
      cell(typeof speed?.seconds === "number" ? speed.seconds.toFixed(1) : "–"),
    ].join("")}</tr>`;
  });
  return `<table class="stages">
<thead><tr><th>stage</th><th>shards</th><th>in</th><th>out</th><th>dropped, by reason</th><th>samples/s</th><th>seconds</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody>
</table>`;
}

/** JSON inside a script element: `<` escaped, so no `</script>` or `<!--` can end it early. */
function jsonForScript(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

function scriptForInline(script: string): string {
  return script.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");
}

function escapeHtml(text: string): string {
  return text
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

const STYLE = `
body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: #222; background: #fafafa; }
main { max-width: 1380px; margin: 0 auto; padding: 1.5rem; }
h1 { margin: 0 0 0.25rem; font-size: 1.6rem; }
h2 { margin: 1.5rem 0 0.5rem; font-size: 1.2rem; }
.meta { color: #666; margin: 0; }
table.stages { border-collapse: collapse; background: #fff; }
table.stages th, table.stages td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; }
table.stages td.number { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(640px, 1fr)); gap: 1rem; }
figure.chart { margin: 0; padding: 1rem; background: #fff; border: 1px solid #ddd; border-radius: 6px; }
figure.chart figcaption { font-weight: 600; margin-bottom: 0.5rem; }
.chart-empty { color: #888; font-style: italic; }
`;
