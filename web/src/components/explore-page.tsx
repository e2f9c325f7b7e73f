/**
 * The explore view: the query form, the filters, the results of the state's query (run again
 * whenever anything that changes the answer changes, as clip-front does), pagination and export.
 */
import { useEffect, useState } from "preact/hooks";
import type { ClipcrawlApi, IndexInfo, KnnResult } from "../api.js";
import type { Navigate } from "../app.js";
import { search } from "../search.js";
import { describeQuery, searchKey, stateToUrl, type UiState } from "../state.js";
import { ExportPanel } from "./export-panel.js";
import { FiltersPanel } from "./filters-panel.js";
import { ResultDetail } from "./result-detail.js";
import { ResultsGrid } from "./results-grid.js";
import { SearchForm } from "./search-form.js";

interface SearchOutcome {
  key: string;
  results: KnnResult[] | null;
  received: number;
  missingShards: string[];
  error: string | null;
  milliseconds: number;
}

export function ExplorePage(props: {
  api: ClipcrawlApi;
  state: UiState;
  index: string;
  info: IndexInfo | undefined;
  navigate: Navigate;
}) {
  const { api, state, index, navigate } = props;
  const key = searchKey(state, index);
  const [outcome, setOutcome] = useState<SearchOutcome | null>(null);
  const [detail, setDetail] = useState<KnnResult | null>(null);

  useEffect(() => {
    if (state.query === null) {
      setOutcome(null);
      return;
    }
    const controller = new AbortController();
    const started = performance.now();
    search(api, state, index, controller.signal).then(
      ({ results, received, missingShards }) =>
        setOutcome({
          key,
          results,
          received,
          missingShards,
          error: null,
          milliseconds: performance.now() - started,
        }),
      (error: unknown) => {
        if (controller.signal.aborted) return;
        const message = error instanceof Error ? error.message : String(error);
        setOutcome({
          key,
          results: null,
          received: 0,
          missingShards: [],
          error: message,
          milliseconds: 0,
        });
      },
    );
    return () => controller.abort();
    // The key is the state's search-relevant content; the state object itself changes more often.
  }, [key]);

  const current = outcome?.key === key ? outcome : null;
  const searching = state.query !== null && current === null;
  const results = current?.results ?? null;
  const moreLikeThis = (result: KnnResult) => {
    setDetail(null);
    navigate({ query: { kind: "like", id: result.id } });
  };
  const searchCaption = (result: KnnResult) => {
    setDetail(null);
    if (result.caption) navigate({ query: { kind: "text", text: result.caption } });
  };

  return (
    <div class="explore">
      <div class="explore-controls">
        <SearchForm query={state.query} navigate={navigate} />
        <FiltersPanel state={state} info={props.info} navigate={navigate} />
      </div>
      <section
        class="results"
        aria-labelledby="results-heading"
        aria-busy={searching}
        data-results-for={current !== null ? stateToUrl(state) : undefined}
      >
        <h2 id="results-heading" class="results-heading">
          {state.query === null
            ? "Search the dataset by text or by image"
            : `Results for ${describeQuery(state.query)}`}
        </h2>
        <output class="results-status" aria-live="polite">
          {searching
            ? "Searching…"
            : results !== null
              ? statusLine(results.length, state, index, current?.milliseconds ?? 0)
              : ""}
        </output>
        {current?.error != null && (
          <p class="error" role="alert">
            {current.error}
          </p>
        )}
        {current !== null && current.missingShards.length > 0 && (
          <p class="notice partial-notice" role="status">
            Partial results: {current.missingShards.length} index{" "}
            {current.missingShards.length === 1 ? "shard" : "shards"} did not answer in time (
            {current.missingShards.join(", ")}); their rows are missing.
          </p>
        )}
        {results !== null && results.length === 0 && (
          <p class="notice">
            Nothing found
            {state.safe === "hide"
              ? ". Safe mode is on: only images below the NSFW threshold are searched."
              : "."}
          </p>
        )}
        {results !== null && results.length > 0 && (
          <>
            <ResultsGrid
              api={api}
              index={index}
              results={results}
              firstRank={(state.page - 1) * state.count + 1}
              safe={state.safe}
              onOpen={setDetail}
              onMoreLikeThis={moreLikeThis}
            />
            <Pagination
              page={state.page}
              hasNext={(current?.received ?? 0) >= state.count}
              navigate={navigate}
            />
          </>
        )}
        {state.query !== null && <ExportPanel api={api} state={state} index={index} />}
      </section>
      {detail !== null && (
        <ResultDetail
          api={api}
          index={index}
          result={detail}
          safe={state.safe}
          onClose={() => setDetail(null)}
          onMoreLikeThis={moreLikeThis}
          onSearchCaption={searchCaption}
        />
      )}
    </div>
  );
}

function statusLine(count: number, state: UiState, index: string, milliseconds: number): string {
  const first = (state.page - 1) * state.count + 1;
  const range = count === 0 ? "No results" : `Results ${first}–${first + count - 1}`;
  return `${range} from the ${state.modality} index of ${index} (${Math.round(milliseconds)} ms)`;
}

function Pagination(props: { page: number; hasNext: boolean; navigate: Navigate }) {
  const { page, hasNext, navigate } = props;
  if (page === 1 && !hasNext) return null;
  const go = (target: number) => {
    navigate({ page: target });
    document.getElementById("results-heading")?.scrollIntoView();
  };
  return (
    <nav class="pagination" aria-label="Result pages">
      <button type="button" disabled={page <= 1} onClick={() => go(page - 1)}>
        ← Previous
      </button>
      <span aria-current="page">Page {page}</span>
      <button type="button" disabled={!hasNext} onClick={() => go(page + 1)}>
        Next →
      </button>
    </nav>
  );
}
