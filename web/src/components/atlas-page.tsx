/**
 * The Atlas view: the index's image embeddings as a 2-D map (`clipcrawl index` writes it, the
 * server sends it as one binary answer), drawn with WebGL by regl-scatterplot, which is loaded
 * only on this page. Pan and zoom with the mouse; colour by cluster, language or a score; hover
 * a point for its thumbnail; draw a lasso (the Lasso button, or Shift + drag) to export the
 * points inside or open them in Explore; a text query selects its nearest images on the map.
 * Safe mode "hide" asks the server for the map without the flagged points.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { AtlasInfo, ClipcrawlApi, ExportFormat, KnnResult } from "../api.js";
import type { Navigate } from "../app.js";
import {
  type AtlasPoints,
  COLOUR_BY,
  type ColourBy,
  colourCategories,
  decodeAtlasPoints,
} from "../atlas-points.js";
import { buildSpatialIndex } from "../atlas-spatial-index.js";
import { type SafeMode, type UiState, UNSAFE_THRESHOLD } from "../state.js";
import { saveAs } from "./export-panel.js";

type Scatterplot = ReturnType<typeof import("regl-scatterplot").default>;

let renderer: Promise<typeof import("regl-scatterplot")> | undefined;

/** regl-scatterplot, a chunk of its own that only this page loads; fetched once. */
function loadRenderer(): Promise<typeof import("regl-scatterplot")> {
  renderer ??= import("regl-scatterplot");
  return renderer;
}

/** Nearest images of a text query selected on the map. */
const QUERY_NEIGHBOURS = 100;
/** Rows an "Open in Explore" link carries (the URL holds their ids). */
export const EXPLORE_ROWS = 200;

interface Hovered {
  point: number;
  left: number;
  top: number;
  row: Partial<KnnResult> | undefined;
}

export function AtlasPage(props: {
  api: ClipcrawlApi;
  state: UiState;
  index: string;
  navigate: Navigate;
}) {
  const { api, state, index, navigate } = props;
  const maxPunsafe = state.safe === "hide" ? UNSAFE_THRESHOLD : undefined;
  const [info, setInfo] = useState<AtlasInfo | null>(null);
  const [points, setPoints] = useState<AtlasPoints | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [colourBy, setColourBy] = useState<ColourBy>("cluster");
  const [lasso, setLasso] = useState(false);
  const [selected, setSelected] = useState<number[]>([]);
  const [hovered, setHovered] = useState<Hovered | null>(null);
  const [highlighted, setHighlighted] = useState<number | null>(null);
  const [format, setFormat] = useState<ExportFormat>("parquet");
  const [exportError, setExportError] = useState<string | null>(null);
  const [drawn, setDrawn] = useState<number | null>(null);
  const canvas = useRef<HTMLCanvasElement>(null);
  const labels = useRef<HTMLDivElement>(null);
  const plot = useRef<Scatterplot | null>(null);
  const spatialIndex = useRef<ArrayBuffer | null>(null);
  const drawnColour = useRef<ColourBy | null>(null);

  useEffect(() => {
    const controller = new AbortController();
    setInfo(null);
    setPoints(null);
    setError(null);
    setSelected([]);
    // The renderer's chunk loads while the points do.
    void loadRenderer().catch(() => undefined);
    Promise.all([
      api.atlas(index, controller.signal),
      api.atlasPoints(index, maxPunsafe, controller.signal),
    ]).then(
      ([atlas, buffer]) => {
        setInfo(atlas);
        setPoints(decodeAtlasPoints(buffer));
      },
      (caught: unknown) => {
        if (!controller.signal.aborted) {
          setError(caught instanceof Error ? caught.message : String(caught));
        }
      },
    );
    return () => controller.abort();
  }, [api, index, maxPunsafe]);

  // Built on the first query, not before the first paint (a million entries take a while).
  const pointOfRow = useRef<{ points: AtlasPoints; lookup: Map<number, number> } | null>(null);
  const normalised = useMemo(
    () => (points === null || info === null ? null : normalise(points, info.bounds)),
    [points, info],
  );

  // The plot: created once the points are here, destroyed with them.
  useEffect(() => {
    const element = canvas.current;
    if (points === null || normalised === null || info === null || element === null) return;
    let live = true;
    let created: Scatterplot | null = null;
    Promise.all([loadRenderer(), buildSpatialIndex(normalised.x, normalised.y)]).then(
      async ([{ default: createScatterplot }, index]) => {
        if (!live) return;
        spatialIndex.current = index;
        const { categories, palette } = colourCategories(points, colourBy);
        drawnColour.current = colourBy;
        const scatter = createScatterplot({
          canvas: element,
          width: "auto",
          height: "auto",
          pointSize: pointSize(points.count),
          opacity: points.count > 200_000 ? 0.5 : 0.85,
          pointColor: palette,
          colorBy: "category",
          backgroundColor: "#ffffff",
          lassoColor: "#d62728",
          deselectOnEscape: true,
          performanceMode: points.count > 2_000_000,
        });
        created = scatter;
        plot.current = scatter;
        scatter.subscribe("select", ({ points: chosen }) => setSelected(chosen));
        scatter.subscribe("deselect", () => setSelected([]));
        scatter.subscribe("pointOver", (point) => void showPoint(point));
        scatter.subscribe("pointOut", () => setHovered(null));
        const centres = clusterRepresentatives(points, info);
        scatter.subscribe("view", () => placeLabels(scatter, labels.current, centres));
        await scatter.draw(
          { x: normalised.x, y: normalised.y, z: categories },
          { spatialIndex: index },
        );
        if (!live) return;
        placeLabels(scatter, labels.current, centres);
        // Two frames: the draw call has been issued and the compositor has shown it. The time
        // is since navigation started: the map's time to first paint.
        requestAnimationFrame(() =>
          requestAnimationFrame(() => live && setDrawn(performance.now())),
        );
      },
      (caught: unknown) => live && setError(`Cannot draw the map: ${String(caught)}`),
    );
    const showPoint = async (point: number) => {
      const position = created?.getScreenPosition(point);
      const row = points.rows[point];
      if (position === undefined || row === undefined) return;
      setHovered({ point, left: position[0], top: position[1], row: undefined });
      const metadata = (await api.metadata(index, [row])).get(row);
      setHovered((current) => (current?.point === point ? { ...current, row: metadata } : current));
    };
    return () => {
      live = false;
      created?.destroy();
      plot.current = null;
      spatialIndex.current = null;
      setDrawn(null);
    };
    // Colour changes are applied to the live plot below; the plot is rebuilt only for new points.
  }, [points, normalised, info]);

  useEffect(() => {
    const current = plot.current;
    if (current === null || points === null || normalised === null || drawn === null) return;
    // The plot was created in this colour: redrawing a million points now would only slow the
    // first seconds of panning.
    if (drawnColour.current === colourBy) return;
    drawnColour.current = colourBy;
    const { categories, palette } = colourCategories(points, colourBy);
    void current.set({ pointColor: palette }).then(() =>
      current.draw(
        { x: normalised.x, y: normalised.y, z: categories },
        {
          preventFilterReset: true,
          ...(spatialIndex.current === null ? {} : { spatialIndex: spatialIndex.current }),
        },
      ),
    );
  }, [colourBy, drawn !== null]);

  // Also set in the press itself: effects run after the next paint, and a drag begun before
  // then would pan the map.
  const toggleLasso = () => {
    setLasso(!lasso);
    void plot.current?.set({ mouseMode: mouseMode(!lasso) });
  };
  useEffect(() => {
    void plot.current?.set({ mouseMode: mouseMode(lasso) });
  }, [lasso, drawn !== null]);

  // A text query selects its nearest images on the map.
  const queryText = state.query?.kind === "text" ? state.query.text : "";
  useEffect(() => {
    const current = plot.current;
    if (queryText === "" || current === null || points === null) {
      setHighlighted(null);
      return;
    }
    const controller = new AbortController();
    const body = {
      text: queryText,
      modality: "image" as const,
      indice_name: index,
      num_images: QUERY_NEIGHBOURS,
      deduplicate: false,
      ...(maxPunsafe === undefined ? {} : { max_punsafe: maxPunsafe }),
    };
    api.knn(body, controller.signal).then(
      (results) => {
        if (pointOfRow.current?.points !== points) {
          pointOfRow.current = { points, lookup: rowLookup(points) };
        }
        const lookup = pointOfRow.current.lookup;
        const found = results.flatMap((result) => {
          const point = lookup.get(result.id);
          return point === undefined ? [] : [point];
        });
        setHighlighted(found.length);
        current.select(found);
      },
      (caught: unknown) => {
        if (!controller.signal.aborted) setError(String(caught));
      },
    );
    return () => controller.abort();
  }, [queryText, points, drawn !== null]);

  const selectedRows = () =>
    points === null ? [] : selected.map((point) => points.rows[point] as number);

  const exportSelection = async () => {
    setExportError(null);
    try {
      const { blob, filename } = await api.exportRows(index, selectedRows(), format, maxPunsafe);
      const url = URL.createObjectURL(blob);
      saveAs(url, filename);
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (caught) {
      setExportError(caught instanceof Error ? caught.message : String(caught));
    }
  };

  const onQuery = (event: Event) => {
    event.preventDefault();
    const text = new FormData(event.currentTarget as HTMLFormElement).get("atlas-query");
    const trimmed = typeof text === "string" ? text.trim() : "";
    navigate({ query: trimmed === "" ? null : { kind: "text", text: trimmed } });
  };

  if (error !== null) {
    return (
      <p class="error" role="alert">
        {error}
      </p>
    );
  }
  return (
    <section class="atlas-page" aria-label="Atlas">
      <form class="atlas-controls" onSubmit={onQuery}>
        <label>
          Highlight a text query
          <input type="search" name="atlas-query" defaultValue={queryText} />
        </label>
        <button type="submit">Highlight</button>
        <label>
          Colour by
          <select
            value={colourBy}
            onChange={(event) => setColourBy(event.currentTarget.value as ColourBy)}
          >
            {COLOUR_BY.map(([value, label]) => (
              <option key={value} value={value}>
                {label}
              </option>
            ))}
          </select>
        </label>
        <label>
          Safe mode
          <select
            value={state.safe}
            onChange={(event) => navigate({ safe: event.currentTarget.value as SafeMode })}
          >
            <option value="hide">Hide flagged</option>
            <option value="blur">Blur flagged</option>
            <option value="off">Off</option>
          </select>
        </label>
        <button type="button" aria-pressed={lasso} onClick={() => toggleLasso()}>
          Lasso
        </button>
      </form>
      <p class="status" aria-live="polite">
        {points === null
          ? "Loading the map…"
          : `${points.count.toLocaleString()} points` +
            (info?.rejoined ? " (built from an earlier index, matched by key)" : "") +
            (highlighted === null ? "" : ` · ${highlighted} nearest images of the query selected`)}
      </p>
      {selected.length > 0 && (
        <div class="atlas-selection">
          <span>{selected.length.toLocaleString()} points selected</span>
          <label>
            Format
            <select
              value={format}
              onChange={(event) => setFormat(event.currentTarget.value as ExportFormat)}
            >
              <option value="parquet">Parquet</option>
              <option value="csv">CSV</option>
              <option value="jsonl">JSONL</option>
            </select>
          </label>
          <button type="button" onClick={() => void exportSelection()}>
            Export selection
          </button>
          <button
            type="button"
            onClick={() =>
              navigate({
                view: "explore",
                query: { kind: "rows", ids: selectedRows().slice(0, EXPLORE_ROWS) },
              })
            }
          >
            Open in Explore
            {selected.length > EXPLORE_ROWS ? ` (first ${EXPLORE_ROWS})` : ""}
          </button>
          <button type="button" onClick={() => plot.current?.deselect()}>
            Clear
          </button>
          {exportError !== null && (
            <span class="error" role="alert">
              {exportError}
            </span>
          )}
        </div>
      )}
      <div
        class="atlas-map"
        data-points={points?.count ?? ""}
        data-drawn-ms={drawn === null ? "" : drawn.toFixed(0)}
        data-selected={selected.length}
      >
        <canvas ref={canvas} aria-label="Map of the image embeddings" />
        <div class="atlas-labels" ref={labels} aria-hidden="true">
          {info?.clusters.map((cluster) => (
            <span key={cluster.id} data-cluster={cluster.id}>
              {cluster.label}
            </span>
          ))}
        </div>
        {hovered !== null && (
          <HoverCard
            api={api}
            index={index}
            hovered={hovered}
            blur={state.safe === "blur" && (hovered.row?.punsafe ?? 0) > UNSAFE_THRESHOLD}
          />
        )}
      </div>
    </section>
  );
}

function HoverCard(props: { api: ClipcrawlApi; index: string; hovered: Hovered; blur: boolean }) {
  const { api, index, hovered, blur } = props;
  const key = hovered.row?.key;
  return (
    <figure
      class="atlas-hover"
      style={{ left: `${hovered.left + 12}px`, top: `${hovered.top + 12}px` }}
    >
      {typeof key === "string" && key !== "" ? (
        <img src={api.thumbnailUrl(index, key)} alt="" class={blur ? "blurred" : undefined} />
      ) : null}
      <figcaption>{hovered.row?.caption ?? "…"}</figcaption>
    </figure>
  );
}

function mouseMode(lasso: boolean): "lasso" | "panZoom" {
  return lasso ? "lasso" : "panZoom";
}

function pointSize(count: number): number {
  if (count > 500_000) return 1.5;
  if (count > 100_000) return 2;
  if (count > 10_000) return 3;
  return 6;
}

/** The map in the plot's [-1, 1] square, its aspect kept, with a margin. */
function normalise(
  points: AtlasPoints,
  bounds: AtlasInfo["bounds"],
): { x: Float32Array; y: Float32Array } {
  const [minX, minY, maxX, maxY] = bounds;
  const centreX = (minX + maxX) / 2;
  const centreY = (minY + maxY) / 2;
  const half = (Math.max(maxX - minX, maxY - minY) / 2) * 1.05 || 1;
  const x = new Float32Array(points.count);
  const y = new Float32Array(points.count);
  for (let point = 0; point < points.count; point++) {
    x[point] = ((points.xy[point * 2] as number) - centreX) / half;
    y[point] = ((points.xy[point * 2 + 1] as number) - centreY) / half;
  }
  return { x, y };
}

/** Index row → point on the map. */
function rowLookup(points: AtlasPoints): Map<number, number> {
  const lookup = new Map<number, number>();
  points.rows.forEach((row, point) => {
    lookup.set(row, point);
  });
  return lookup;
}

/**
 * For each cluster, the point nearest its centre (or -1 when safe mode left it none): its label
 * follows that point's position on screen.
 */
function clusterRepresentatives(points: AtlasPoints, info: AtlasInfo): Int32Array {
  const best = new Int32Array(info.clusters.length).fill(-1);
  const distance = new Float64Array(info.clusters.length).fill(Number.POSITIVE_INFINITY);
  for (let point = 0; point < points.count; point++) {
    const cluster = info.clusters[points.clusters[point] as number];
    if (cluster === undefined) continue;
    const dx = (points.xy[point * 2] as number) - cluster.x;
    const dy = (points.xy[point * 2 + 1] as number) - cluster.y;
    const squared = dx * dx + dy * dy;
    if (squared < (distance[cluster.id] as number)) {
      distance[cluster.id] = squared;
      best[cluster.id] = point;
    }
  }
  return best;
}

/** Moves each cluster label onto its representative point; hides those off screen. */
function placeLabels(
  plot: Scatterplot,
  container: HTMLDivElement | null,
  representatives: Int32Array,
): void {
  if (container === null) return;
  const width = container.clientWidth;
  const height = container.clientHeight;
  representatives.forEach((point, at) => {
    const element = container.children[at] as HTMLElement | undefined;
    if (element === undefined) return;
    const position = point < 0 ? undefined : plot.getScreenPosition(point);
    const inside =
      position !== undefined &&
      position[0] >= 0 &&
      position[0] <= width &&
      position[1] >= 0 &&
      position[1] <= height;
    element.hidden = !inside;
    if (position !== undefined) {
      // The label sits just above its point; where the point is stays readable (tests hover it).
      element.dataset.x = position[0].toFixed(1);
      element.dataset.y = position[1].toFixed(1);
      element.style.transform = `translate(${position[0].toFixed(1)}px, ${position[1].toFixed(1)}px) translate(-50%, -140%)`;
    }
  });
}
