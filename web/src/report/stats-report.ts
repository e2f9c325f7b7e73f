/**
 * The script of a `clipcrawl stats` HTML report: the statistics page's charts (the same module,
 * stats-charts.ts) drawn from the JSON embedded in the page, plus the report's own two (top
 * domains, throughput per stage) drawn with the same count chart. Built by vite.report.config.ts
 * into one IIFE file that the command inlines, so the report needs no network and no server.
 */
import type { DatasetStats } from "../api.js";
import { countsChart, renderStatsCharts } from "../charts/stats-charts.js";
import { UNSAFE_THRESHOLD, WATERMARK_THRESHOLD } from "../state.js";

/** The part of the report's JSON (src/stages/stats/stats.ts, StatsReport) this script draws. */
interface StatsReportData extends DatasetStats {
  topDomains: [string, number][];
  throughput: { stage: string; samplesPerSecond: number | null }[];
}

/** The score cuts the web UI uses, marked on the score histograms as on the statistics page. */
const MARKS = { unsafe: UNSAFE_THRESHOLD, watermark: WATERMARK_THRESHOLD };

function render(): void {
  const container = document.getElementById("charts");
  const source = document.getElementById("stats-data");
  if (container === null || source === null) {
    throw new Error("the report page has no #charts or #stats-data element");
  }
  const stats = JSON.parse(source.textContent ?? "{}") as StatsReportData;
  const width = Math.min(640, Math.max(280, container.clientWidth - 32));
  renderStatsCharts(container, stats, MARKS, { width });
  const extra: [id: string, title: string, node: Element][] = [
    [
      "top-domains",
      "Top domains of the kept pairs",
      countsChart(stats.topDomains, "domain", "pairs", { width }),
    ],
    [
      "throughput",
      "Throughput per stage (samples/s)",
      countsChart(
        stats.throughput
          .filter((row) => row.samplesPerSecond !== null)
          .map((row) => [row.stage, Math.round((row.samplesPerSecond as number) * 10) / 10]),
        "stage",
        "samples/s",
        { width },
      ),
    ],
  ];
  for (const [id, title, node] of extra) {
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.chart = id;
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    figure.append(caption, node);
    container.append(figure);
  }
  document.body.dataset.rendered = "true";
}

render();
