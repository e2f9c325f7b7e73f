/**
 * The statistics page's plots, drawn with Observable Plot from the `/api/stats/:index` JSON.
 * Each function takes the numbers and returns a DOM node, touching no global `document` when one
 * is passed in the options, so the same code can render the statistics page in the browser and
 * a `clipcrawl stats` HTML report (in a page of its own, or server-side with a DOM like
 * linkedom's). Nothing here fetches or knows about the page around it.
 */
import * as Plot from "@observablehq/plot";
import type { Bin, DatasetStats, Histogram, LinkRot, LinkRotCounts } from "../api.js";

export interface ChartOptions {
  /** The document to create nodes in; default: the global one. */
  document?: Document;
  /** Width in pixels; default 640 (Plot's own default). */
  width?: number;
}

export interface StatsChart {
  /** Stable id, also written as the figure's `data-chart`. */
  id: string;
  title: string;
  node: Element;
}

/** Score cuts worth marking on the histograms: the UI's safe-mode and watermark defaults. */
export interface ScoreMarks {
  unsafe?: number;
  watermark?: number;
}

const FUNNEL_STEPS: [key: string, label: string][] = [
  ["links", "image links seen"],
  ["candidates", "candidate pairs"],
  ["downloaded", "images downloaded"],
  ["embedded", "pairs embedded"],
  ["kept", "pairs kept"],
];
const MAX_BARS = 20;

/** Every chart of the statistics page, in page order. */
export function statsCharts(
  stats: DatasetStats,
  marks: ScoreMarks = {},
  options: ChartOptions = {},
): StatsChart[] {
  return [
    {
      id: "funnel",
      title: "Pipeline funnel",
      node: funnelChart(stats.funnel, options),
    },
    {
      id: "similarity",
      title: "Image–text similarity, every embedded pair",
      node: similarityChart(stats.similarity, stats.thresholds, options),
    },
    { id: "languages", title: "Caption languages", node: languagesChart(stats.languages, options) },
    { id: "sizes", title: "Image sizes", node: sizesChart(stats.sizes, options) },
    {
      id: "punsafe",
      title: "punsafe (NSFW probability)",
      node: scoreChart(stats.punsafe, "punsafe", marks.unsafe, options),
    },
    {
      id: "pwatermark",
      title: "pwatermark (watermark probability)",
      node: scoreChart(stats.pwatermark, "pwatermark", marks.watermark, options),
    },
    {
      id: "aesthetic",
      title: "Aesthetic score",
      node: scoreChart(stats.aesthetic, "AESTHETIC_SCORE", undefined, options),
    },
    {
      id: "download-errors",
      title: "Download errors",
      node: countsChart(stats.downloadErrors, "error", "failed downloads", options),
    },
    {
      id: "drop-reasons",
      title: "Why pairs were dropped",
      node: countsChart(stats.dropReasons, "reason", "pairs", options),
    },
    ...(stats.linkRot === null || stats.linkRot === undefined
      ? []
      : [
          {
            id: "link-rot",
            title: `Still online (recheck of ${stats.linkRot.date})`,
            node: linkRotChart(stats.linkRot, options),
          },
        ]),
  ];
}

const LINK_ROT_STATUSES: [key: keyof LinkRotCounts, label: string, colour: string][] = [
  ["alive", "alive", "#59a14f"],
  ["changed", "changed", "#edc948"],
  ["opted_out", "opted out since", "#b07aa1"],
  ["gone", "gone (4xx)", "#e15759"],
  ["error", "unreachable", "#bab0ac"],
];
const LINK_ROT_DOMAINS = 12;

/** Each domain's URLs by status, as shares, with every URL's on top. */
export function linkRotChart(linkRot: LinkRot, options: ChartOptions = {}): Element {
  if (linkRot.overall === null) return emptyNote("The recheck checked no URL.", options);
  const groups = [
    { domain: "all domains", ...linkRot.overall },
    ...linkRot.domains.slice(0, LINK_ROT_DOMAINS),
  ];
  const rows = groups.flatMap((group) =>
    LINK_ROT_STATUSES.map(([key, label]) => ({
      domain: group.domain,
      status: label,
      share: group.urls === 0 ? 0 : group[key] / group.urls,
    })),
  );
  const longest = Math.max(...groups.map((group) => group.domain.length));
  return Plot.plot({
    ...base(options, "Share of each domain's URLs alive, changed, opted out, gone or unreachable"),
    height: 50 + groups.length * 24,
    marginLeft: Math.min(220, 20 + longest * 7),
    x: { label: "share of URLs", percent: true, grid: true },
    y: { label: null, domain: groups.map((group) => group.domain) },
    color: {
      legend: true,
      domain: LINK_ROT_STATUSES.map(([, label]) => label),
      range: LINK_ROT_STATUSES.map(([, , colour]) => colour),
    },
    marks: [
      Plot.barX(rows, { x: "share", y: "domain", fill: "status", order: null }),
      Plot.ruleX([0]),
    ],
  });
}

/**
 * Appends every chart to `container`, each as a `<figure data-chart="id">` with its title as the
 * caption: the statistics page's body, and what a standalone report needs.
 */
export function renderStatsCharts(
  container: Element,
  stats: DatasetStats,
  marks: ScoreMarks = {},
  options: ChartOptions = {},
): void {
  const doc = options.document ?? container.ownerDocument;
  for (const chart of statsCharts(stats, marks, { ...options, document: doc })) {
    const figure = doc.createElement("figure");
    figure.className = "chart";
    figure.dataset.chart = chart.id;
    const caption = doc.createElement("figcaption");
    caption.textContent = chart.title;
    figure.append(caption, chart.node);
    container.append(figure);
  }
}

/** The similarity histogram with a rule at each language tier's threshold. */
export function similarityChart(
  histogram: Histogram,
  thresholds: Record<string, number> | null,
  options: ChartOptions = {},
): Element {
  if (isEmpty(histogram.bins)) return emptyNote("No pairs were embedded yet.", options);
  // Tiers sharing a threshold share one rule and one label ("multi, nolang ≥ 0.26").
  const tiersByValue = new Map<number, string[]>();
  for (const [tier, value] of Object.entries(thresholds ?? {})) {
    tiersByValue.set(value, [...(tiersByValue.get(value) ?? []), tier]);
  }
  const rules = [...tiersByValue]
    .sort((a, b) => a[0] - b[0])
    .map(([value, tiers], order) => ({ value, label: `${tiers.join(", ")} ≥ ${value}`, order }));
  // The bins span all of [−1, 1]; show the part holding pairs or thresholds.
  const filled = histogram.bins.filter((bin) => bin[2] > 0);
  const values = rules.map((rule) => rule.value);
  const low = Math.min(...values, ...filled.map((bin) => bin[0]));
  const high = Math.max(...values, ...filled.map((bin) => bin[1]));
  const margin = (high - low) * 0.05;
  return Plot.plot({
    ...base(options, "Similarity histogram with the language tiers' thresholds"),
    height: 280,
    x: { label: "cosine similarity", domain: [low - margin, high + margin] },
    y: { label: "pairs", grid: true },
    marks: [
      binRects(histogram.bins),
      Plot.ruleX(rules, { x: "value", stroke: "#d62728", strokeWidth: 2, strokeDasharray: "4,3" }),
      // A line of its own for each label, so close thresholds' labels do not overlap.
      ...rules.map((rule) =>
        Plot.text([rule], {
          x: "value",
          frameAnchor: "top",
          text: "label",
          dx: 4,
          dy: 4 + rule.order * 14,
          textAnchor: "start",
          fill: "#d62728",
        }),
      ),
      Plot.ruleY([0]),
    ],
  });
}

export function languagesChart(languages: [string, number][], options: ChartOptions = {}): Element {
  const rows = topCounts(
    languages.map(([code, count]) => [code === "" ? "(none detected)" : code, count]),
  );
  if (rows.length === 0) return emptyNote("No kept pairs yet.", options);
  return horizontalBars(rows, "pairs", "Kept pairs per caption language", options);
}

export function sizesChart(sizes: DatasetStats["sizes"], options: ChartOptions = {}): Element {
  const rows = [
    ...sizes.width.bins.map((bin) => ({ side: "width", bin })),
    ...sizes.height.bins.map((bin) => ({ side: "height", bin })),
  ];
  if (rows.every((row) => row.bin[2] === 0)) return emptyNote("No kept images yet.", options);
  return Plot.plot({
    ...base(options, "Histograms of the kept images' original width and height"),
    height: 320,
    x: { label: "pixels" },
    y: { label: "images", grid: true },
    fy: { label: null },
    marks: [
      Plot.rectY(rows, {
        x1: (row) => row.bin[0],
        x2: (row) => row.bin[1],
        y: (row) => row.bin[2],
        fy: "side",
        fill: "side",
        insetLeft: 0.5,
        insetRight: 0.5,
        tip: true,
      }),
      Plot.ruleY([0]),
    ],
  });
}

/** A score's histogram over the kept rows, with the cut the UI uses marked when there is one. */
export function scoreChart(
  histogram: Histogram,
  label: string,
  cut: number | undefined,
  options: ChartOptions = {},
): Element {
  if (isEmpty(histogram.bins)) return emptyNote(`No ${label} scores yet.`, options);
  const domain = binSpan(histogram.bins);
  const marks: Plot.Markish[] = [binRects(histogram.bins), Plot.ruleY([0])];
  if (cut !== undefined) {
    // The label goes on the side of the rule with more room.
    const right = cut <= (domain[0] + domain[1]) / 2;
    marks.push(
      Plot.ruleX([cut], { stroke: "#d62728", strokeWidth: 2, strokeDasharray: "4,3" }),
      Plot.text([cut], {
        x: (value: number) => value,
        frameAnchor: "top",
        text: (value: number) => `> ${value} hidden by the UI filter`,
        dx: right ? 4 : -4,
        dy: 4,
        textAnchor: right ? "start" : "end",
        fill: "#d62728",
      }),
    );
  }
  return Plot.plot({
    ...base(options, `Histogram of ${label} over the kept pairs`),
    height: 240,
    x: { label, domain },
    y: { label: "pairs", grid: true },
    marks,
  });
}

/** links seen → candidates → downloaded → embedded → kept, with each step's share of the first. */
export function funnelChart(
  funnel: Record<string, number | null>,
  options: ChartOptions = {},
): Element {
  const steps = FUNNEL_STEPS.filter(([key]) => typeof funnel[key] === "number").map(
    ([key, label]) => ({ label, count: funnel[key] as number }),
  );
  if (steps.length === 0) return emptyNote("The pipeline has not run yet.", options);
  const first = Math.max(1, steps[0]?.count ?? 1);
  return Plot.plot({
    ...base(options, "Pipeline funnel: how many items each stage passed on"),
    marginLeft: 130,
    marginRight: 90,
    x: { label: "count", grid: true, ticks: countTicks(steps.map((step) => ["", step.count])) },
    y: { label: null, domain: steps.map((step) => step.label) },
    marks: [
      Plot.barX(steps, { x: "count", y: "label", fill: "#4e79a7" }),
      Plot.text(steps, {
        x: "count",
        y: "label",
        text: (step: { count: number }) =>
          `${step.count.toLocaleString("en")} (${percent(step.count / first)})`,
        dx: 4,
        textAnchor: "start",
      }),
      Plot.ruleX([0]),
    ],
  });
}

/** Counts by a label (download errors, drop reasons), largest first, the tail summed. */
export function countsChart(
  counts: [string, number][],
  what: string,
  unit: string,
  options: ChartOptions = {},
): Element {
  const rows = topCounts(counts);
  if (rows.length === 0) return emptyNote(`No ${unit} to break down.`, options);
  return horizontalBars(rows, unit, `Number of ${unit} per ${what}`, options);
}

function horizontalBars(
  rows: [string, number][],
  unit: string,
  description: string,
  options: ChartOptions,
): Element {
  const longest = Math.max(...rows.map(([label]) => label.length));
  return Plot.plot({
    ...base(options, description),
    height: 40 + rows.length * 24,
    marginLeft: Math.min(220, 20 + longest * 7),
    marginRight: 60,
    x: { label: unit, grid: true, ticks: countTicks(rows) },
    y: { label: null, domain: rows.map(([label]) => label) },
    marks: [
      Plot.barX(rows, { x: ([, count]) => count, y: ([label]) => label, fill: "#4e79a7" }),
      Plot.text(rows, {
        x: ([, count]) => count,
        y: ([label]) => label,
        text: ([, count]) => count.toLocaleString("en"),
        dx: 4,
        textAnchor: "start",
      }),
      Plot.ruleX([0]),
    ],
  });
}

function binRects(bins: Bin[]): Plot.Markish {
  return Plot.rectY(
    bins.filter((bin) => bin[2] > 0),
    {
      x1: (bin: Bin) => bin[0],
      x2: (bin: Bin) => bin[1],
      y: (bin: Bin) => bin[2],
      fill: "#4e79a7",
      insetLeft: 0.5,
      insetRight: 0.5,
      tip: true,
    },
  );
}

function base(options: ChartOptions, description: string): Plot.PlotOptions {
  const plotOptions: Plot.PlotOptions = {
    width: options.width ?? 640,
    ariaDescription: description,
    style: { fontSize: "12px", overflow: "visible" },
  };
  if (options.document !== undefined) plotOptions.document = options.document;
  return plotOptions;
}

function topCounts(counts: [string, number][]): [string, number][] {
  const sorted = counts.filter(([, count]) => count > 0).sort((a, b) => b[1] - a[1]);
  if (sorted.length <= MAX_BARS) return sorted;
  const rest = sorted.slice(MAX_BARS - 1).reduce((sum, [, count]) => sum + count, 0);
  return [...sorted.slice(0, MAX_BARS - 1), [`${sorted.length - MAX_BARS + 1} others`, rest]];
}

/** [lowest lower edge, highest upper edge]: the histogram's whole range, empty bins included. */
function binSpan(bins: Bin[]): [number, number] {
  return [Math.min(...bins.map((bin) => bin[0])), Math.max(...bins.map((bin) => bin[1]))];
}

/** Few ticks for small counts, so an axis of counts never shows fractions. */
function countTicks(rows: [string, number][]): number {
  return Math.max(1, Math.min(8, ...rows.map(([, count]) => count)));
}

function isEmpty(bins: Bin[]): boolean {
  return bins.every((bin) => bin[2] === 0);
}

function emptyNote(text: string, options: ChartOptions): Element {
  const note = (options.document ?? document).createElement("p");
  note.className = "chart-empty";
  note.textContent = text;
  return note;
}

function percent(share: number): string {
  return share >= 0.1 || share === 0
    ? `${Math.round(share * 100)}%`
    : `${(share * 100).toFixed(1)}%`;
}
