/**
 * Export of the current search: its first rows as Parquet, CSV or JSONL (`/api/export`), or an
 * "expand" export gathering many more nearest neighbours of the same query as a server job, with
 * its progress (`/api/export/jobs`). The files carry url, caption and the scores, ready for
 * `clipcrawl download` or img2dataset.
 */
import { useEffect, useRef, useState } from "preact/hooks";
import type { ClipcrawlApi, ExportFormat, ExportJobProgress } from "../api.js";
import { knnBody } from "../search.js";
import { type UiState, UNSAFE_THRESHOLD } from "../state.js";

const FORMATS: [ExportFormat, string][] = [
  ["parquet", "Parquet"],
  ["csv", "CSV"],
  ["jsonl", "JSONL"],
];
const POLL_MS = 400;

interface JobView {
  id: string;
  progress: ExportJobProgress;
}

export function ExportPanel(props: { api: ClipcrawlApi; state: UiState; index: string }) {
  const { api, state, index } = props;
  const [format, setFormat] = useState<ExportFormat>("parquet");
  const [rows, setRows] = useState(state.count);
  const [expand, setExpand] = useState(1000);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [job, setJob] = useState<JobView | null>(null);
  const polling = useRef<AbortController | null>(null);
  useEffect(() => () => polling.current?.abort(), []);

  const queryBody = async () => {
    const body = await knnBody(api, { ...state, page: 1 }, index);
    delete body.offset;
    return body;
  };

  const download = async () => {
    setBusy(true);
    setError(null);
    try {
      const chosen = state.query?.kind === "rows" ? state.query.ids : undefined;
      const { blob, filename } =
        chosen !== undefined
          ? await api.exportRows(
              index,
              chosen.slice(0, rows),
              format,
              state.safe === "hide" ? UNSAFE_THRESHOLD : undefined,
            )
          : await api.exportFile({ ...(await queryBody()), num_images: rows }, format);
      const url = URL.createObjectURL(blob);
      saveAs(url, filename);
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    } catch (caught) {
      setError(caught instanceof Error ? caught.message : String(caught));
    } finally {
      setBusy(false);
    }
  };

  const startExpand = async () => {
    polling.current?.abort();
    const controller = new AbortController();
    polling.current = controller;
    setError(null);
    try {
      const { id } = await api.startExportJob(await queryBody(), format, expand);
      let progress: ExportJobProgress = { state: "running", done: 0, total: expand };
      setJob({ id, progress });
      while (progress.state === "running" && !controller.signal.aborted) {
        await new Promise((resolve) => setTimeout(resolve, POLL_MS));
        progress = await api.exportJob(id, controller.signal);
        setJob({ id, progress });
      }
      if (progress.state === "done") saveAs(api.exportJobFileUrl(id), "");
    } catch (caught) {
      if (!controller.signal.aborted) {
        setError(caught instanceof Error ? caught.message : String(caught));
      }
    }
  };

  const running = job?.progress.state === "running";
  return (
    <details class="export">
      <summary>Export these results</summary>
      <fieldset>
        <legend>File format</legend>
        {FORMATS.map(([value, label]) => (
          <label key={value} class="choice">
            <input
              type="radio"
              name="export-format"
              value={value}
              checked={format === value}
              onChange={() => setFormat(value)}
            />
            {label}
          </label>
        ))}
      </fieldset>
      <div class="export-row">
        <label class="field">
          Rows
          <input
            type="number"
            name="export-rows"
            min={1}
            value={rows}
            onInput={(event) => setRows(Math.max(1, Number(event.currentTarget.value) || 1))}
          />
        </label>
        <button type="button" disabled={busy} onClick={download}>
          {busy ? "Preparing…" : "Download"}
        </button>
      </div>
      <div class="export-row" hidden={state.query?.kind === "rows"}>
        <label class="field">
          Expand to the nearest
          <input
            type="number"
            name="export-expand"
            min={1}
            value={expand}
            onInput={(event) => setExpand(Math.max(1, Number(event.currentTarget.value) || 1))}
          />
        </label>
        <button type="button" disabled={running} onClick={startExpand}>
          Start expanded export
        </button>
      </div>
      {job !== null && <JobProgress api={api} job={job} />}
      {error !== null && (
        <p class="error" role="alert">
          Export failed: {error}
        </p>
      )}
    </details>
  );
}

function JobProgress(props: { api: ClipcrawlApi; job: JobView }) {
  const { state, done, total, error } = props.job.progress;
  return (
    <div class="job-progress" aria-live="polite">
      <label>
        {state === "running"
          ? `Gathering neighbours: ${done.toLocaleString("en")} of ${total.toLocaleString("en")}`
          : state === "done"
            ? `Done: ${done.toLocaleString("en")} rows.`
            : `Failed: ${error ?? "unknown error"}`}
        <progress max={Math.max(1, total)} value={done} />
      </label>
      {state === "done" && (
        <a href={props.api.exportJobFileUrl(props.job.id)} download>
          Download the expanded export
        </a>
      )}
    </div>
  );
}

/** Starts a browser download of `url` (an object URL, or a route answering with an attachment). */
export function saveAs(url: string, filename: string): void {
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
}
