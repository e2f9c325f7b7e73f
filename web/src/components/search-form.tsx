/**
 * The query form: text (Enter searches), an image file (picker, drag-and-drop onto the form, or
 * paste anywhere on the page) and an image URL (typed, or an image dragged from another page).
 */
import { useEffect, useState } from "preact/hooks";
import type { Navigate } from "../app.js";
import type { Query } from "../state.js";
import { storeUpload } from "../uploads.js";

export function SearchForm(props: { query: Query | null; navigate: Navigate }) {
  const { query, navigate } = props;
  const [text, setText] = useState(query?.kind === "text" ? query.text : "");
  const [imageUrl, setImageUrl] = useState(query?.kind === "imageUrl" ? query.url : "");
  const [dragging, setDragging] = useState(false);
  const [uploadError, setUploadError] = useState<string | null>(null);

  // Back/forward and "search this caption" change the query from outside the form.
  useEffect(() => {
    if (query?.kind === "text") setText(query.text);
    if (query?.kind === "imageUrl") setImageUrl(query.url);
  }, [query]);

  const searchImage = async (file: Blob) => {
    if (!file.type.startsWith("image/")) {
      setUploadError(`Not an image: ${file.type || "unknown type"}.`);
      return;
    }
    setUploadError(null);
    try {
      navigate({ query: { kind: "upload", ref: await storeUpload(file) } });
    } catch (error) {
      setUploadError(`Cannot read the image: ${String(error)}`);
    }
  };

  useEffect(() => {
    const onPaste = (event: ClipboardEvent) => {
      const file = [...(event.clipboardData?.files ?? [])].find((item) =>
        item.type.startsWith("image/"),
      );
      if (file === undefined) return;
      event.preventDefault();
      void searchImage(file);
    };
    document.addEventListener("paste", onPaste);
    return () => document.removeEventListener("paste", onPaste);
  });

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    setDragging(false);
    const transfer = event.dataTransfer;
    if (transfer === null) return;
    const file = [...transfer.files].find((item) => item.type.startsWith("image/"));
    if (file !== undefined) {
      void searchImage(file);
      return;
    }
    const url = transfer.getData("text/uri-list").split("\n")[0]?.trim() ?? "";
    if (/^https?:\/\//.test(url)) navigate({ query: { kind: "imageUrl", url } });
  };

  return (
    <search
      class={dragging ? "search-form dragging" : "search-form"}
      aria-label="Query"
      onDragOver={(event) => {
        event.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <form
        class="text-query"
        onSubmit={(event) => {
          event.preventDefault();
          if (text.trim() !== "") navigate({ query: { kind: "text", text: text.trim() } });
        }}
      >
        <label for="query-text">Search by text</label>
        <div class="input-row">
          <input
            id="query-text"
            type="search"
            name="query"
            value={text}
            placeholder="a red circle"
            autoComplete="off"
            onInput={(event) => setText(event.currentTarget.value)}
          />
          <button type="submit">Search</button>
        </div>
      </form>
      <div class="image-query">
        <label class="file-button">
          Search by image…
          <input
            type="file"
            accept="image/*"
            onChange={(event) => {
              const file = event.currentTarget.files?.[0];
              if (file !== undefined) void searchImage(file);
              event.currentTarget.value = "";
            }}
          />
        </label>
        <span class="hint">or drop or paste an image here</span>
      </div>
      <form
        class="url-query"
        onSubmit={(event) => {
          event.preventDefault();
          const url = imageUrl.trim();
          if (url !== "") navigate({ query: { kind: "imageUrl", url } });
        }}
      >
        <label for="query-image-url">Search by image URL</label>
        <div class="input-row">
          <input
            id="query-image-url"
            type="url"
            value={imageUrl}
            placeholder="https://…/picture.jpg"
            onInput={(event) => setImageUrl(event.currentTarget.value)}
          />
          <button type="submit">Search</button>
        </div>
      </form>
      {uploadError !== null && (
        <p class="error" role="alert">
          {uploadError}
        </p>
      )}
    </search>
  );
}
