/**
 * A result's detail view: a modal dialog (Escape closes it, focus stays inside) with the image,
 * the caption, every score and where the pair came from, and the follow-up searches.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ClipcrawlApi, KnnResult } from "../api.js";
import type { SafeMode } from "../state.js";
import { shouldBlur, Thumbnail } from "./thumbnail.js";

export function ResultDetail(props: {
  api: ClipcrawlApi;
  index: string;
  result: KnnResult;
  safe: SafeMode;
  onClose: () => void;
  onMoreLikeThis: (result: KnnResult) => void;
  onSearchCaption: (result: KnnResult) => void;
}) {
  const { result } = props;
  const dialog = useRef<HTMLDialogElement>(null);
  const [revealed, setRevealed] = useState(false);
  const blurred = shouldBlur(result, props.safe) && !revealed;

  useEffect(() => {
    const element = dialog.current;
    if (element !== null && !element.open) element.showModal();
  }, []);

  const rows: [string, ComponentChildren][] = [
    [
      "Similarity",
      Number.isNaN(result.similarity) ? "— (chosen on the atlas)" : result.similarity.toFixed(4),
    ],
    ["URL", <ExternalLink href={result.url} />],
    ["Page URL", result.page_url ? <ExternalLink href={result.page_url} /> : "—"],
    ["Language", result.LANGUAGE || "none detected"],
    [
      "Size",
      result.WIDTH != null && result.HEIGHT != null ? `${result.WIDTH} × ${result.HEIGHT}` : "—",
    ],
    ["punsafe", score(result.punsafe)],
    ["pwatermark", score(result.pwatermark)],
    ["ptoxic", score(result.ptoxic)],
    ["Aesthetic score", score(result.AESTHETIC_SCORE)],
    ["Source WAT", result.source ?? "—"],
    ["Key", result.key ?? "—"],
    ["Row id", String(result.id)],
  ];

  return (
    // biome-ignore lint/a11y/useKeyWithClickEvents: a backdrop click; the keyboard has Escape
    <dialog
      ref={dialog}
      class="result-detail"
      aria-labelledby="detail-caption"
      onClose={props.onClose}
      onClick={(event) => {
        // A click on the backdrop lands on the dialog element itself.
        if (event.target === dialog.current) dialog.current?.close();
      }}
    >
      <div class="detail-body">
        <div class="detail-image">
          <Thumbnail
            api={props.api}
            index={props.index}
            result={result}
            blurred={blurred}
            lazy={false}
          />
          {blurred && (
            <button type="button" onClick={() => setRevealed(true)}>
              Flagged unsafe: show the image
            </button>
          )}
        </div>
        <div class="detail-text">
          <h2 id="detail-caption">{result.caption || "(no caption)"}</h2>
          <dl class="detail-fields">
            {rows.map(([name, value]) => (
              <div key={name}>
                <dt>{name}</dt>
                <dd>{value}</dd>
              </div>
            ))}
          </dl>
          <div class="detail-actions">
            <button type="button" onClick={() => props.onMoreLikeThis(result)}>
              More like this image
            </button>
            {result.caption ? (
              <button type="button" onClick={() => props.onSearchCaption(result)}>
                Search this caption
              </button>
            ) : null}
            <button type="button" onClick={() => dialog.current?.close()}>
              Close
            </button>
          </div>
        </div>
      </div>
    </dialog>
  );
}

function ExternalLink(props: { href: string }) {
  return (
    <a href={props.href} target="_blank" rel="noopener noreferrer nofollow">
      {props.href}
    </a>
  );
}

function score(value: number | null): string {
  return value === null || value === undefined ? "not scored" : value.toFixed(3);
}
