/**
 * The results grid: thumbnail (a button opening the detail view), caption, similarity, and
 * "more like this". A blurred thumbnail's first activation reveals it.
 */
import { useState } from "preact/hooks";
import type { ClipcrawlApi, KnnResult } from "../api.js";
import type { SafeMode } from "../state.js";
import { shouldBlur, Thumbnail } from "./thumbnail.js";

/** About the first screenful: fetched at once, not when the lazy loader gets to them. */
const EAGER_THUMBNAILS = 12;

export function ResultsGrid(props: {
  api: ClipcrawlApi;
  index: string;
  results: KnnResult[];
  firstRank: number;
  safe: SafeMode;
  onOpen: (result: KnnResult) => void;
  onMoreLikeThis: (result: KnnResult) => void;
}) {
  return (
    <ol class="results-grid" start={props.firstRank}>
      {props.results.map((result, position) => (
        <ResultCard
          key={result.id}
          {...props}
          result={result}
          rank={props.firstRank + position}
          eager={position < EAGER_THUMBNAILS}
        />
      ))}
    </ol>
  );
}

function ResultCard(props: {
  api: ClipcrawlApi;
  index: string;
  result: KnnResult;
  rank: number;
  eager: boolean;
  safe: SafeMode;
  onOpen: (result: KnnResult) => void;
  onMoreLikeThis: (result: KnnResult) => void;
}) {
  const { result, rank } = props;
  const [revealed, setRevealed] = useState(false);
  const blurred = shouldBlur(result, props.safe) && !revealed;
  const caption = result.caption ?? "";
  return (
    <li class="result" data-id={result.id} data-key={result.key ?? undefined} data-url={result.url}>
      <button
        type="button"
        class="thumb"
        aria-label={
          blurred
            ? `Result ${rank} is flagged unsafe: show the image`
            : `Result ${rank}: details of “${shorten(caption, 80)}”`
        }
        onClick={() => (blurred ? setRevealed(true) : props.onOpen(result))}
      >
        <Thumbnail
          api={props.api}
          index={props.index}
          result={result}
          blurred={blurred}
          lazy={!props.eager}
        />
        {blurred && (
          <span class="blur-note" aria-hidden="true">
            Flagged unsafe · show
          </span>
        )}
      </button>
      <p class="caption" title={caption}>
        {shorten(caption, 120)}
      </p>
      <p class="result-meta">
        {Number.isNaN(result.similarity) ? null : (
          <span class="similarity" title="cosine similarity to the query">
            {result.similarity.toFixed(3)}
          </span>
        )}
        {result.LANGUAGE ? <span class="language">{result.LANGUAGE}</span> : null}
        <button
          type="button"
          class="link-button"
          aria-label={`More like this: result ${rank}`}
          onClick={() => props.onMoreLikeThis(result)}
        >
          More like this
        </button>
      </p>
    </li>
  );
}

export function shorten(text: string, length: number): string {
  return text.length <= length ? text : `${text.slice(0, length - 1)}…`;
}
