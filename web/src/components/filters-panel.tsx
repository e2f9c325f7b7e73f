/**
 * Search options. Each change is committed to the URL at once (a text field on change, not on
 * every keystroke), and the results follow.
 */
import { useEffect, useState } from "preact/hooks";
import type { IndexInfo } from "../api.js";
import type { Navigate } from "../app.js";
import {
  formatLanguages,
  parseLanguages,
  RESULT_COUNTS,
  type SafeMode,
  type UiState,
  UNSAFE_THRESHOLD,
  WATERMARK_THRESHOLD,
} from "../state.js";

export function FiltersPanel(props: {
  state: UiState;
  info: IndexInfo | undefined;
  navigate: Navigate;
}) {
  const { state, info, navigate } = props;
  const [languages, setLanguages] = useState(formatLanguages(state.languages));
  useEffect(() => setLanguages(formatLanguages(state.languages)), [state.languages]);
  const [open] = useState(() => window.matchMedia("(min-width: 48rem)").matches);
  const counts: readonly number[] = RESULT_COUNTS.includes(state.count as never)
    ? RESULT_COUNTS
    : [...RESULT_COUNTS, state.count].sort((a, b) => a - b);

  return (
    <details class="filters" open={open}>
      <summary>Search options</summary>
      <fieldset>
        <legend>Search over</legend>
        {(["image", "text"] as const).map((modality) => (
          <label key={modality} class="choice">
            <input
              type="radio"
              name="modality"
              value={modality}
              checked={state.modality === modality}
              onChange={() => navigate({ modality })}
            />
            {modality === "image" ? "Images" : "Captions"}
          </label>
        ))}
      </fieldset>
      <label class="field">
        Safe mode
        <select
          name="safe"
          value={state.safe}
          onChange={(event) => navigate({ safe: event.currentTarget.value as SafeMode })}
        >
          <option value="hide">On: hide unsafe images</option>
          <option value="blur">Blur unsafe images</option>
          <option value="off">Off</option>
        </select>
        <span class="hint">unsafe: punsafe above {UNSAFE_THRESHOLD}</span>
      </label>
      <label class="choice">
        <input
          type="checkbox"
          name="hideWatermarked"
          checked={state.hideWatermarked}
          onChange={(event) => navigate({ hideWatermarked: event.currentTarget.checked })}
        />
        Hide watermarked (pwatermark above {WATERMARK_THRESHOLD})
      </label>
      <label class="choice">
        <input
          type="checkbox"
          name="hideDuplicates"
          checked={state.hideDuplicates}
          onChange={(event) => navigate({ hideDuplicates: event.currentTarget.checked })}
        />
        Hide duplicates
      </label>
      {info?.hasMultilingual === true && (
        <label class="choice">
          <input
            type="checkbox"
            name="multilingual"
            checked={state.multilingual}
            onChange={(event) => navigate({ multilingual: event.currentTarget.checked })}
          />
          Multilingual text encoder
        </label>
      )}
      <label class="field">
        Minimum aesthetic score
        <input
          type="number"
          name="minAesthetic"
          min={0}
          max={10}
          step={0.5}
          placeholder="any"
          value={state.minAesthetic ?? ""}
          onChange={(event) => {
            const value = Number.parseFloat(event.currentTarget.value);
            navigate({ minAesthetic: Number.isFinite(value) ? value : null });
          }}
        />
      </label>
      <label class="field">
        Languages
        <input
          type="text"
          name="languages"
          placeholder="all (e.g. en, de, none)"
          value={languages}
          onInput={(event) => setLanguages(event.currentTarget.value)}
          onChange={(event) => navigate({ languages: parseLanguages(event.currentTarget.value) })}
        />
        <span class="hint">ISO codes, comma-separated; “none” for no detected language</span>
      </label>
      <label class="field">
        Results per page
        <select
          name="count"
          value={String(state.count)}
          onChange={(event) => navigate({ count: Number(event.currentTarget.value) })}
        >
          {counts.map((count) => (
            <option key={count} value={String(count)}>
              {count}
            </option>
          ))}
        </select>
      </label>
    </details>
  );
}
