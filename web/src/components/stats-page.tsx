/**
 * The statistics view: the index's numbers from `/api/stats/:index` drawn by the charts module,
 * which is loaded only here so the explore view's bundle stays small.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { ClipcrawlApi, DatasetStats, IndexInfo } from "../api.js";
import { UNSAFE_THRESHOLD, WATERMARK_THRESHOLD } from "../state.js";

export function StatsPage(props: {
  api: ClipcrawlApi;
  index: string;
  info: IndexInfo | undefined;
}) {
  const { api, index, info } = props;
  const [stats, setStats] = useState<DatasetStats | null>(null);
  const [error, setError] = useState<string | null>(null);
  const charts = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const controller = new AbortController();
    setStats(null);
    setError(null);
    api.stats(index, controller.signal).then(setStats, (caught: unknown) => {
      if (!controller.signal.aborted) setError(String(caught));
    });
    return () => controller.abort();
  }, [api, index]);

  useEffect(() => {
    const container = charts.current;
    if (stats === null || container === null) return;
    let live = true;
    import("../charts/stats-charts.js").then(
      ({ renderStatsCharts }) => {
        if (!live) return;
        container.replaceChildren();
        // The figure's padding and border take about 2rem of its column.
        const width = Math.min(640, Math.max(280, container.clientWidth - 32));
        renderStatsCharts(
          container,
          stats,
          { unsafe: UNSAFE_THRESHOLD, watermark: WATERMARK_THRESHOLD },
          { width },
        );
      },
      (caught: unknown) => live && setError(`Cannot load the charts: ${String(caught)}`),
    );
    return () => {
      live = false;
      container.replaceChildren();
    };
  }, [stats]);

  return (
    <section class="stats" aria-labelledby="stats-heading" aria-busy={stats === null && !error}>
      <h2 id="stats-heading">Statistics of {index}</h2>
      <p class="stats-summary">
        {info !== undefined && `${info.rows.toLocaleString("en")} rows, ${info.dimensions}-d. `}
        The same numbers as JSON:{" "}
        <a href={api.url(`api/stats/${encodeURIComponent(index)}`)}>api/stats/{index}</a>
      </p>
      {error !== null && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {stats === null && error === null && <p class="notice">Loading…</p>}
      <div class="charts" ref={charts} />
    </section>
  );
}
