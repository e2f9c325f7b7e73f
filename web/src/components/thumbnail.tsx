/**
 * A result's image: from the dataset's own shard through `/api/thumbnail` (still there when the
 * original site is gone, and never whatever that site serves today), then the original URL,
 * then a placeholder. Blurred when safe mode says so, until the user asks to see it.
 */
import { useEffect, useState } from "preact/hooks";
import type { ClipcrawlApi, KnnResult } from "../api.js";
import { type SafeMode, UNSAFE_THRESHOLD } from "../state.js";

export function isFlaggedUnsafe(result: KnnResult): boolean {
  return result.punsafe !== null && result.punsafe > UNSAFE_THRESHOLD;
}

export function shouldBlur(result: KnnResult, safe: SafeMode): boolean {
  // In "hide" mode the server leaves flagged rows out; blur any that a filterless server returns.
  return safe !== "off" && isFlaggedUnsafe(result);
}

export function Thumbnail(props: {
  api: ClipcrawlApi;
  index: string;
  result: KnnResult;
  blurred: boolean;
  lazy?: boolean;
}) {
  const { api, index, result, blurred } = props;
  const sources = imageSources(api, index, result);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => setAttempt(0), [result.id, index]);
  const source = sources[attempt];
  if (source === undefined) {
    return (
      <span class="thumb-missing" role="img" aria-label="image unavailable">
        image unavailable
      </span>
    );
  }
  return (
    <img
      src={source}
      alt={result.caption ?? ""}
      loading={props.lazy === false ? "eager" : "lazy"}
      decoding="async"
      class={blurred ? "blurred" : undefined}
      data-source={attempt === 0 && result.key ? "dataset" : "original"}
      onError={() => setAttempt((value) => value + 1)}
    />
  );
}

function imageSources(api: ClipcrawlApi, index: string, result: KnnResult): string[] {
  const sources: string[] = [];
  if (result.key) sources.push(api.thumbnailUrl(index, result.key));
  if (result.url) sources.push(result.url);
  return sources;
}
