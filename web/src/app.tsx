/**
 * The page: a header with the two views (explore, statistics) and the index picker, and the
 * view. The state lives in the URL: every committed change pushes a history entry and the view
 * renders from the parsed URL, so reload, back/forward and shared links all land on the same
 * page.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ClipcrawlApi, type IndexInfo } from "./api.js";
import { AtlasPage } from "./components/atlas-page.js";
import { ExplorePage } from "./components/explore-page.js";
import { StatsPage } from "./components/stats-page.js";
import { describeQuery, stateFromUrl, stateToUrl, type UiState } from "./state.js";

/** Changing any of these starts over at page 1. */
const PAGE_RESETTING: (keyof UiState)[] = [
  "index",
  "query",
  "modality",
  "safe",
  "hideWatermarked",
  "minAesthetic",
  "languages",
  "hideDuplicates",
  "multilingual",
  "count",
];

export type Navigate = (change: Partial<UiState>) => void;

export function App() {
  const [state, setState] = useState<UiState>(() => stateFromUrl(window.location.search));
  const current = useRef(state);
  current.current = state;

  useEffect(() => {
    // A hand-written or clip-front link becomes the canonical URL, so it compares equal later.
    const canonical = stateToUrl(current.current);
    if (canonical !== (window.location.search || "?")) {
      window.history.replaceState(null, "", historyUrl(canonical));
    }
    const onPopState = () => setState(stateFromUrl(window.location.search));
    window.addEventListener("popstate", onPopState);
    return () => window.removeEventListener("popstate", onPopState);
  }, []);

  const navigate = useCallback<Navigate>((change) => {
    const next = { ...current.current, ...change };
    if (change.page === undefined && PAGE_RESETTING.some((key) => key in change)) next.page = 1;
    const url = stateToUrl(next);
    if (url !== stateToUrl(current.current)) window.history.pushState(null, "", historyUrl(url));
    current.current = next;
    setState(next);
  }, []);

  const api = useMemo(() => new ClipcrawlApi(state.back === "" ? "." : state.back), [state.back]);
  const indices = useIndices(api);
  const index = state.index !== "" ? state.index : (indices.names?.[0] ?? "");
  const info = indices.details.find((candidate) => candidate.name === index);

  useEffect(() => {
    const what =
      state.view === "stats"
        ? `statistics of ${index}`
        : state.view === "atlas"
          ? `atlas of ${index}`
          : describeQuery(state.query);
    document.title = what === "" ? "clipcrawl" : `${what} — clipcrawl`;
  }, [state.view, state.query, index]);

  const viewUrl = (view: UiState["view"]) => stateToUrl({ ...state, view, page: 1 });
  const onViewLink = (event: MouseEvent, view: UiState["view"]) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    navigate({ view });
  };

  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="site-header">
        <a class="brand" href="?" onClick={(event) => onViewLink(event, "explore")}>
          clipcrawl
        </a>
        <nav aria-label="Views">
          <a
            href={viewUrl("explore")}
            aria-current={state.view === "explore" ? "page" : undefined}
            onClick={(event) => onViewLink(event, "explore")}
          >
            Explore
          </a>
          <a
            href={viewUrl("stats")}
            aria-current={state.view === "stats" ? "page" : undefined}
            onClick={(event) => onViewLink(event, "stats")}
          >
            Statistics
          </a>
          <a
            href={viewUrl("atlas")}
            aria-current={state.view === "atlas" ? "page" : undefined}
            onClick={(event) => onViewLink(event, "atlas")}
          >
            Atlas
          </a>
        </nav>
        <label class="index-picker">
          Index
          <select
            value={index}
            disabled={indices.names === null || indices.names.length < 2}
            onChange={(event) => navigate({ index: event.currentTarget.value })}
          >
            {(indices.names ?? [index]).map((name) => (
              <option key={name} value={name}>
                {name}
              </option>
            ))}
          </select>
        </label>
      </header>
      <main id="main" tabIndex={-1}>
        {indices.error !== null ? (
          <p class="error" role="alert">
            Cannot reach the search server at {api.base.href}: {indices.error}
          </p>
        ) : indices.names !== null && indices.names.length === 0 ? (
          <p class="notice">
            The server has no index. Build one with <code>clipcrawl index</code>.
          </p>
        ) : index === "" ? (
          <p class="notice">Loading…</p>
        ) : state.view === "stats" ? (
          <StatsPage api={api} index={index} info={info} />
        ) : state.view === "atlas" ? (
          <AtlasPage api={api} state={state} index={index} navigate={navigate} />
        ) : (
          <ExplorePage api={api} state={state} index={index} info={info} navigate={navigate} />
        )}
      </main>
    </>
  );
}

/** "?" (the default state) as the bare path, so the start page's URL has no lone "?". */
function historyUrl(search: string): string {
  return search === "?" ? window.location.pathname : search;
}

interface IndicesState {
  names: string[] | null;
  details: IndexInfo[];
  error: string | null;
}

function useIndices(api: ClipcrawlApi): IndicesState {
  const [indices, setIndices] = useState<IndicesState>({ names: null, details: [], error: null });
  useEffect(() => {
    let live = true;
    setIndices({ names: null, details: [], error: null });
    Promise.all([api.indicesList(), api.indices().catch(() => [])]).then(
      ([names, details]) => live && setIndices({ names, details, error: null }),
      (error: unknown) => live && setIndices({ names: null, details: [], error: String(error) }),
    );
    return () => {
      live = false;
    };
  }, [api]);
  return indices;
}
