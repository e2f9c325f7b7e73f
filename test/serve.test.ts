import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cp, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { ClipClient, ClipClientError } from "../src/client/clip-client.js";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { decodeNpy } from "../src/io/npy.js";
import { duckdbConnection, quoteLiteral, readParquet } from "../src/io/parquet.js";
import { fromFloat16Bits } from "../src/models/float16.js";
import { readIndicesFile } from "../src/server/indices-file.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { startCliServer } from "./support/cli.js";
import {
  buildServeFixture,
  DUPLICATED_IMAGE,
  REPEATED_URL,
  type ServeFixture,
  type ShapeWeb,
  startShapeWeb,
} from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";

type Result = Record<string, unknown> & { id: number; similarity: number; url?: string };

let work: string;
let web: ShapeWeb;
let fixture: ServeFixture;
/** The main server: private URLs allowed (the local web), the multilingual model, no rate limit. */
let server: RunningServer;

before(async () => {
  work = await tempDir("serve");
  web = await startShapeWeb();
  fixture = await buildServeFixture(work, web);
  server = await serve({
    indices: [{ name: "shapes", root: fixture.root, multilingualModel: fixture.multilingualModel }],
    config: {
      port: 0,
      allowPrivateNetwork: true,
      rateLimitPerMinute: 0,
      // The tiny model knows colours and shapes only: red circles stand in for violence.
      violencePrompts: ["a red circle"],
      safePrompts: ["a blue square"],
    },
  });
});

after(async () => {
  await server?.close();
  await web?.close();
  await rm(work, { recursive: true, force: true });
});

async function call(
  base: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: unknown; headers: Headers }> {
  const response = await fetch(`${base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, json, headers: response.headers };
}

async function knn(body: Record<string, unknown>, base = server.url): Promise<Result[]> {
  const answer = await call(base, "/knn-service", {
    indice_name: "shapes",
    modality: "image",
    ...body,
  });
  assert.equal(answer.status, 200, JSON.stringify(answer.json));
  return answer.json as Result[];
}

function runProcess(
  command: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** The element at `index`, which the test expects to be there. */
function nth<T>(list: readonly T[], index: number): T {
  const value = list[index];
  assert.ok(value !== undefined, `no element ${index} in a list of ${list.length}`);
  return value;
}

/** colour-shape of a result, from its URL (…/red-circle-1.jpg → red-circle). */
const concept = (result: Result) => /\/(\w+-\w+)-\d+\.jpg/.exec(String(result.url))?.[1];

test("/indices-list, /api/indices and /health name the served index", async () => {
  assert.deepEqual((await call(server.url, "/indices-list")).json, ["shapes"]);
  const [described] = (await call(server.url, "/api/indices")).json as Record<string, unknown>[];
  assert.equal(described?.name, "shapes");
  assert.equal(described?.dimensions, 48);
  assert.equal(described?.hasMultilingual, true);
  assert.deepEqual(described?.modalities, ["image", "text"]);
  assert.ok((described?.rows as number) > 50);
  assert.ok((described?.columns as string[] | undefined)?.includes("caption"));
  assert.deepEqual((await call(server.url, "/health")).json, { status: "ok", indices: ["shapes"] });
  assert.ok(server.url.startsWith("http://127.0.0.1:"), "binds to loopback unless told otherwise");
});

test("a text query finds the red circles first, with clip-back's result columns", async () => {
  const results = await knn({ text: "a red circle", num_images: 5 });
  assert.equal(results.length, 5);
  assert.deepEqual(results.slice(0, 3).map(concept), ["red-circle", "red-circle", "red-circle"]);
  assert.ok(nth(results, 0).similarity > 0.9 && nth(results, 3).similarity < 0.5);
  for (const column of [
    "id",
    "similarity",
    "url",
    "caption",
    "key",
    "punsafe",
    "pwatermark",
    "ptoxic",
    "AESTHETIC_SCORE",
    "LANGUAGE",
    "WIDTH",
    "HEIGHT",
    "page_url",
    "source",
    "dup_group",
  ]) {
    assert.ok(column in (results[0] as object), `result has ${column}`);
  }
  const similarities = results.map((result) => result.similarity);
  assert.deepEqual(
    similarities,
    [...similarities].sort((a, b) => b - a),
    "best first",
  );
  assert.equal(new Set(results.map((result) => result.id)).size, 5, "no id twice");
});

test("an image query (base64) finds images of the same colour and shape first", async () => {
  const image = await renderShapeImage("yellow", "star", 42);
  const results = await knn({ image: image.toString("base64"), num_images: 3 });
  // The fixture has two yellow stars; the third result is another shape.
  assert.deepEqual(results.slice(0, 2).map(concept), ["yellow-star", "yellow-star"]);
  assert.ok(nth(results, 0).similarity > 0.99 && nth(results, 2).similarity < 0.5);
  // A data: URL, as a browser's FileReader gives it, is read the same.
  const viaDataUrl = await knn({
    image: `data:image/jpeg;base64,${image.toString("base64")}`,
    num_images: 3,
  });
  assert.deepEqual(
    viaDataUrl.map((result) => result.id),
    results.map((result) => result.id),
  );
});

test("an image_url query downloads the image (private addresses allowed by the option)", async () => {
  const results = await knn({ image_url: `${web.origin}/blue-star-9.jpg`, num_images: 3 });
  assert.equal(concept(nth(results, 0)), "blue-star");
  assert.ok(nth(results, 0).similarity > 0.9);
});

test("an embedding query returns the row it was taken from first, on either index", async () => {
  const storage = new LocalStorage(fixture.root);
  const metadata = await readParquet(storage, layout.embeddingMetadata("00000"), ["url"]);
  const row = metadata.findIndex((entry) => String(entry.url).endsWith("/purple-square-2.jpg"));
  for (const modality of ["image", "text"] as const) {
    const path =
      modality === "image" ? layout.imageEmbeddings("00000") : layout.textEmbeddings("00000");
    const array = decodeNpy(await storage.read(path));
    const dimensions = array.shape[1] as number;
    const vector = fromFloat16Bits(
      array.data.subarray(row * dimensions, (row + 1) * dimensions) as Uint16Array,
    );
    const results = await knn({ embedding_input: Array.from(vector), modality, num_images: 3 });
    assert.equal(concept(nth(results, 0)), "purple-square", modality);
    assert.ok(nth(results, 0).similarity > 0.99, `${modality}: ${nth(results, 0).similarity}`);
  }
});

test("like_id queries by a row's stored embedding (more like this)", async () => {
  const [row] = await knn({ text: "a orange triangle", num_images: 1 });
  const similar = await knn({ like_id: row?.id, num_images: 2 });
  assert.equal(nth(similar, 0).id, row?.id);
  assert.deepEqual(similar.map(concept), ["orange-triangle", "orange-triangle"]);
  const byCaption = await knn({
    like_id: row?.id,
    like_modality: "text",
    modality: "text",
    num_images: 1,
  });
  assert.equal(concept(nth(byCaption, 0)), "orange-triangle");
  const missing = await call(server.url, "/knn-service", {
    indice_name: "shapes",
    like_id: 1_000_000,
  });
  assert.equal(missing.status, 400);
  assert.equal((missing.json as { field: string }).field, "like_id");
});

test("use_mclip embeds the text with the multilingual text model", async () => {
  const results = await knn({ text: "ein blauer Stern", use_mclip: true, num_images: 3 });
  assert.deepEqual(results.map(concept), ["blue-star", "blue-star", "blue-star"]);
});

test("safe mode drops punsafe above 0.5 inside the search, so num_images results still come back", async () => {
  const unsafe = await knn({ text: "a red circle", num_images: 10 });
  assert.ok(unsafe.some((result) => (result.punsafe as number) > 0.5));
  const safe = await knn({ text: "a red circle", num_images: 10, use_safety_model: true });
  assert.equal(safe.length, 10);
  for (const result of safe) {
    assert.ok((result.punsafe as number) <= 0.5, `${result.url} punsafe ${result.punsafe}`);
    assert.ok(
      !String(result.url).includes("/red-"),
      `${result.url} is red, which the fixture head calls unsafe`,
    );
  }
});

test("deduplicate keeps one row per near-duplicate group and one per URL", async () => {
  const all = await knn({ text: "a green square", num_images: 8 });
  const greenSquares = all.filter((result) => concept(result) === "green-square");
  assert.ok(greenSquares.length >= 3, "two URLs of one image and a second image");
  assert.ok(
    greenSquares.some((result) => String(result.url).endsWith(`${DUPLICATED_IMAGE}?copy=1`)),
  );
  const deduplicated = await knn({ text: "a green square", num_images: 8, deduplicate: true });
  assert.equal(deduplicated.length, 8);
  assert.equal(deduplicated.filter((result) => concept(result) === "green-square").length, 1);
  const groups = deduplicated.map((result) => result.dup_group);
  assert.equal(new Set(groups).size, groups.length, "one row per near-duplicate group");

  const repeated = (results: Result[]) =>
    results.filter((result) => String(result.url).endsWith(`/${REPEATED_URL}`)).length;
  assert.equal(repeated(await knn({ text: "a blue triangle", num_images: 6 })), 2);
  const urls = (await knn({ text: "a blue triangle", num_images: 40, deduplicate: true })).map(
    (result) => result.url,
  );
  assert.equal(new Set(urls).size, urls.length, "no URL twice");
});

test("the violence detector drops what its prompts flag and still fills num_images", async () => {
  const results = await knn({ text: "a red circle", num_images: 12, use_violence_detector: true });
  assert.equal(results.length, 12);
  assert.ok(!results.some((result) => concept(result) === "red-circle"));
});

test("aesthetic_score and aesthetic_weight pull the query toward the best-rated images", async () => {
  // The fixture's aesthetic head rates red circles 10 (score 9 and up), blue squares 0.
  const plain = await knn({ text: "a blue star", num_images: 3 });
  assert.equal(concept(nth(plain, 0)), "blue-star");
  const mild = await knn({
    text: "a blue star",
    num_images: 3,
    aesthetic_score: 9,
    aesthetic_weight: 0.5,
  });
  assert.equal(
    concept(nth(mild, 0)),
    "blue-star",
    "a mild pull keeps the query's own matches first",
  );
  const strong = await knn({
    text: "a blue star",
    num_images: 3,
    aesthetic_score: "9",
    aesthetic_weight: "5",
  });
  assert.equal(concept(nth(strong, 0)), "red-circle");
  const off = await knn({
    text: "a blue star",
    num_images: 3,
    aesthetic_score: "",
    aesthetic_weight: "",
  });
  assert.deepEqual(
    off.map((result) => result.id),
    plain.map((result) => result.id),
  );
});

test("clipcrawl's filters (languages, scores) are applied inside the search", async () => {
  const german = await knn({ text: "a red circle", num_images: 4, languages: ["de"] });
  assert.equal(german.length, 4);
  assert.ok(german.every((result) => result.LANGUAGE === "de"));
  assert.equal(concept(nth(german, 0)), "red-circle");
  const clean = await knn({ text: "a red circle", num_images: 5, max_pwatermark: 0.5 });
  assert.ok(clean.every((result) => (result.pwatermark as number) <= 0.5));
  const pretty = await knn({ text: "a blue square", num_images: 3, min_aesthetic_score: 9 });
  assert.ok(pretty.every((result) => (result.AESTHETIC_SCORE as number) >= 9));
});

test("num_result_ids returns more ids than images with metadata; offset pages through them", async () => {
  const results = await knn({ text: "a orange star", num_images: 3, num_result_ids: 10 });
  assert.equal(results.length, 10);
  assert.ok(results.slice(0, 3).every((result) => typeof result.url === "string"));
  assert.ok(
    results.slice(3).every((result) => !("url" in result) && typeof result.similarity === "number"),
  );
  const page = await knn({ text: "a orange star", num_images: 4, offset: 3 });
  assert.deepEqual(
    page.map((result) => result.id),
    results.slice(3, 7).map((result) => result.id),
  );
  const metadata = await call(server.url, "/metadata", {
    ids: results.slice(3, 5).map((result) => result.id),
    indice_name: "shapes",
  });
  assert.equal(metadata.status, 200);
  const rows = metadata.json as { id: number; metadata: Record<string, unknown> }[];
  assert.deepEqual(
    rows.map((row) => row.id),
    results.slice(3, 5).map((result) => result.id),
  );
  assert.equal(rows[0]?.metadata.url, page[0]?.url);
  assert.deepEqual(
    (await call(server.url, "/metadata", { ids: [], indice_name: "shapes" })).json,
    [],
  );
});

test("every bad request is a 400 naming the field, never a crash", async () => {
  const cases: [unknown, string | undefined][] = [
    [{ modality: "image", num_images: 3, indice_name: "shapes" }, "text"],
    [{ text: "", image: null, modality: "image", num_images: 3 }, "text"],
    [{ text: "a red circle", indice_name: "nope" }, "indice_name"],
    [{ embedding_input: [1, 2, 3] }, "embedding_input"],
    [{ embedding_input: new Array(48).fill(0) }, "embedding_input"],
    [{ embedding_input: "1,2,3" }, "embedding_input"],
    [{ image: "this is not base64!" }, "image"],
    [{ image: Buffer.from("plain text, not an image").toString("base64") }, "image"],
    [
      {
        image: Buffer.from(
          "<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>",
        ).toString("base64"),
      },
      "image",
    ],
    [{ image: "A".repeat(11 * 1024 * 1024) }, "image"],
    [{ image_url: "file:///etc/passwd" }, "image_url"],
    [{ image_url: "not a url" }, "image_url"],
    [{ image_url: `${web.origin}/missing.png` }, "image_url"],
    [{ text: "a red circle", num_images: 10_001 }, "num_images"],
    [{ text: "a red circle", num_images: 0 }, "num_images"],
    [{ text: "a red circle", num_images: "many" }, "num_images"],
    [{ text: "a red circle", num_result_ids: 2.5 }, "num_result_ids"],
    [{ text: "a red circle", modality: "audio" }, "modality"],
    [{ text: 42 }, "text"],
    [{ text: "a red circle", deduplicate: "yes" }, "deduplicate"],
    [{ text: "a red circle", aesthetic_score: 12 }, "aesthetic_score"],
    [{ text: "a red circle", aesthetic_score: 9, aesthetic_weight: "heavy" }, "aesthetic_weight"],
    [{ text: "a red circle", languages: "en" }, "languages"],
    [{ text: "a red circle", max_punsafe: "low" }, "max_punsafe"],
    [[1, 2, 3], undefined],
    ["{not json", undefined],
  ];
  for (const [body, field] of cases) {
    const withDefaults =
      body !== null && typeof body === "object" && !Array.isArray(body)
        ? { indice_name: "shapes", ...body }
        : body;
    const answer = await call(server.url, "/knn-service", withDefaults);
    const label = JSON.stringify(body).slice(0, 80);
    assert.equal(answer.status, 400, `${label}: ${JSON.stringify(answer.json)}`);
    const error = answer.json as { error: string; field?: string };
    assert.equal(typeof error.error, "string", label);
    assert.equal(error.field, field, `${label}: ${error.error}`);
  }
  const metadataCases: [unknown, string][] = [
    [{ ids: [0, 100_000], indice_name: "shapes" }, "ids"],
    [{ ids: "0,1", indice_name: "shapes" }, "ids"],
    [{ ids: [0.5], indice_name: "shapes" }, "ids"],
    [{ ids: [0], indice_name: "other" }, "indice_name"],
  ];
  for (const [body, field] of metadataCases) {
    const answer = await call(server.url, "/metadata", body);
    assert.equal(answer.status, 400, JSON.stringify(body));
    assert.equal((answer.json as { field?: string }).field, field);
  }
  assert.equal((await call(server.url, "/health")).status, 200, "still alive");
});

test("thumbnails come from the dataset's own image tar; unknown keys are 404", async () => {
  const [first] = await knn({ text: "a green star", num_images: 1 });
  const response = await fetch(`${server.url}/api/thumbnail/shapes/${first?.key}`);
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "image/jpeg");
  assert.match(response.headers.get("cache-control") ?? "", /max-age=\d{5,}/);
  const image = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
  assert.equal(image.width, 128, "the image as download stored it (resized to 128)");
  assert.equal((await fetch(`${server.url}/api/thumbnail/shapes/999999999`)).status, 404);
  assert.equal((await fetch(`${server.url}/api/thumbnail/nope/${first?.key}`)).status, 404);
});

test("/api/stats gives the funnel, the drop reasons and the histograms", async () => {
  const answer = await call(server.url, "/api/stats/shapes");
  assert.equal(answer.status, 200);
  // biome-ignore lint/suspicious/noExplicitAny: the stats JSON is checked field by field below
  const stats = answer.json as Record<string, any>;
  const listed = fixture.listed.length;
  assert.equal(stats.funnel.downloaded, listed - 1, "all but the missing image");
  assert.equal(stats.funnel.embedded, listed - 1);
  assert.equal(stats.funnel.kept, listed - 3, "two mismatched captions dropped");
  assert.deepEqual(stats.thresholds, { en: 0.28, multi: 0.26, nolang: 0.26 });
  assert.deepEqual(stats.downloadErrors, [["HTTP 404", 1]]);
  assert.deepEqual(stats.dropReasons, [["below_similarity_en", 2]]);
  const count = (bins: [number, number, number][]) => bins.reduce((sum, bin) => sum + bin[2], 0);
  assert.equal(stats.similarity.bins.length, 100);
  assert.deepEqual(stats.similarity.bins[0].slice(0, 2), [-1, -0.98]);
  assert.equal(count(stats.similarity.bins), listed - 1, "every embedded pair");
  assert.equal(count(stats.punsafe.bins), listed - 3, "every kept row");
  assert.equal(count(stats.sizes.width.bins), listed - 3);
  assert.deepEqual(new Map(stats.languages).get("de"), 4);
});

test("export writes the results as CSV, JSON lines or Parquet; expand gathers more", async () => {
  const query = {
    indice_name: "shapes",
    modality: "image",
    text: "a purple triangle",
    num_images: 5,
  };
  const csv = await fetch(`${server.url}/api/export`, {
    method: "POST",
    body: JSON.stringify({ ...query, format: "csv" }),
  });
  assert.equal(csv.status, 200);
  assert.equal(csv.headers.get("content-disposition"), "attachment; filename=clipcrawl-subset.csv");
  const lines = (await csv.text()).trim().split("\n");
  assert.equal(
    lines[0],
    "url,caption,similarity,punsafe,pwatermark,ptoxic,AESTHETIC_SCORE,LANGUAGE,key",
  );
  assert.equal(lines.length, 6);
  assert.match(lines[1] ?? "", /purple-triangle/);

  const jsonl = await fetch(`${server.url}/api/export`, {
    method: "POST",
    body: JSON.stringify({ ...query, format: "jsonl", expand: 20 }),
  });
  const rows = (await jsonl.text())
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));
  assert.equal(rows.length, 20);
  assert.equal(typeof rows[0].similarity, "number");

  const parquet = await fetch(`${server.url}/api/export`, {
    method: "POST",
    body: JSON.stringify({ ...query, format: "parquet" }),
  });
  const path = join(work, "subset.parquet");
  await writeFile(path, Buffer.from(await parquet.arrayBuffer()));
  const connection = await duckdbConnection();
  try {
    const reader = await connection.runAndReadAll(
      `SELECT url, caption FROM read_parquet(${quoteLiteral(path)})`,
    );
    assert.equal(reader.getRows().length, 5);
  } finally {
    connection.closeSync();
  }

  const bad = await call(server.url, "/api/export", { ...query, format: "xlsx" });
  assert.equal(bad.status, 400);
  assert.equal((bad.json as { field: string }).field, "format");
  const tooMany = await call(server.url, "/api/export", {
    ...query,
    format: "csv",
    expand: 10_000_000,
  });
  assert.equal((tooMany.json as { field: string }).field, "expand");
});

test("an export job reports its progress and then serves its file", async () => {
  const started = await call(server.url, "/api/export/jobs", {
    indice_name: "shapes",
    text: "a yellow square",
    format: "jsonl",
    expand: 30,
  });
  assert.equal(started.status, 200, JSON.stringify(started.json));
  const { id } = started.json as { id: string };
  let status: Record<string, unknown> = {};
  for (let attempt = 0; attempt < 100; attempt++) {
    status = (await call(server.url, `/api/export/jobs/${id}`)).json as Record<string, unknown>;
    if (status.state !== "running") break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.deepEqual(status, { state: "done", done: 30, total: 30 });
  const file = await fetch(`${server.url}/api/export/jobs/${id}/file`);
  assert.equal((await file.text()).trim().split("\n").length, 30);
  assert.equal((await call(server.url, "/api/export/jobs/nope")).status, 404);
});

test("/metrics has per-route and per-step latencies; /metrics-summary clip-back's averages", async () => {
  const metrics = (await call(server.url, "/metrics")).json as string;
  assert.match(
    metrics,
    /clipcrawl_http_request_duration_seconds_count\{route="\/knn-service",method="POST",status="200"\} \d+/,
  );
  for (const step of ["download", "embed", "search", "metadata"]) {
    assert.match(
      metrics,
      new RegExp(
        `clipcrawl_query_step_duration_seconds_count\\{step="${step}",index="shapes"\\} \\d+`,
      ),
    );
  }
  assert.match(
    (await call(server.url, "/metrics-summary")).json as string,
    /average latency of [\d.]+s/,
  );
});

test("CORS is open by default; a preflight is answered", async () => {
  const answer = await fetch(`${server.url}/knn-service`, {
    method: "OPTIONS",
    headers: { origin: "https://example.org", "access-control-request-method": "POST" },
  });
  assert.ok(answer.status < 300);
  assert.equal(answer.headers.get("access-control-allow-origin"), "*");
});

test("the TypeScript ClipClient and a Python requests client get the same answers", async (t) => {
  const python = await runProcess("/usr/bin/python3", ["-c", "import requests"]).catch(() => ({
    code: 1,
  }));
  if (python.code !== 0) {
    if (process.env.CI === "true")
      assert.fail("python3 with requests is needed (apt-get install python3-requests)");
    t.skip("no /usr/bin/python3 with requests here (apt-get install python3-requests)");
    return;
  }
  const imagePath = join(work, "query.jpg");
  await writeFile(imagePath, await renderShapeImage("green", "circle", 5));
  const row = nth(await knn({ text: "a orange square", num_images: 1 }), 0);
  const queries: Record<string, unknown>[] = [
    { text: "a red circle" },
    {
      text: "a blue star",
      num_images: 5,
      deduplicate: false,
      use_safety_model: false,
      use_violence_detector: false,
      aesthetic_score: null,
      aesthetic_weight: null,
    },
    {
      text: "ein roter Kreis",
      use_mclip: true,
      num_images: 4,
      use_safety_model: false,
      use_violence_detector: false,
    },
    { image: imagePath, num_images: 6 },
    { image: `${web.origin}/purple-circle-3.jpg`, num_images: 6, modality: "text" },
    {
      embedding_input: Array.from({ length: 48 }, (_, index) => Math.sin(index + row.id)),
      num_images: 7,
    },
  ];
  const url = `${server.url}/knn-service`;
  const script = fileURLToPath(new URL("./support/clip_client_requests.py", import.meta.url));
  // Asynchronously: the server answering the script runs in this process.
  const run = await runProcess("/usr/bin/python3", [
    script,
    url,
    "shapes",
    JSON.stringify(queries),
  ]);
  assert.equal(run.code, 0, run.stderr);
  const fromPython = JSON.parse(run.stdout) as Result[][];
  for (const [position, query] of queries.entries()) {
    const client = new ClipClient(url, {
      indiceName: "shapes",
      ...(query.num_images === undefined ? {} : { numImages: query.num_images as number }),
      ...(query.deduplicate === undefined ? {} : { deduplicate: query.deduplicate as boolean }),
      ...(query.use_safety_model === undefined
        ? {}
        : { useSafetyModel: query.use_safety_model as boolean }),
      ...(query.use_violence_detector === undefined
        ? {}
        : { useViolenceDetector: query.use_violence_detector as boolean }),
      ...(query.aesthetic_score === undefined
        ? {}
        : { aestheticScore: query.aesthetic_score as null }),
      ...(query.aesthetic_weight === undefined
        ? {}
        : { aestheticWeight: query.aesthetic_weight as null }),
      ...(query.use_mclip === undefined ? {} : { useMclip: query.use_mclip as boolean }),
      ...(query.modality === undefined ? {} : { modality: query.modality as "text" }),
    });
    const fromTypeScript = await client.query({
      text: query.text as string | undefined,
      image: query.image as string | undefined,
      embeddingInput: query.embedding_input as number[] | undefined,
    });
    assert.ok(fromTypeScript.length > 0, `query ${position} found something`);
    assert.deepEqual(
      fromTypeScript,
      fromPython[position],
      `query ${position}: ${JSON.stringify(query).slice(0, 80)}`,
    );
  }
  // ClipClient's defaults: safe mode and the violence detector on, so no red circle survives.
  assert.ok(!nth(fromPython, 0).some((result) => concept(result) === "red-circle"));
  assert.equal(concept(nth(nth(fromPython, 2), 0)), "red-circle");
  await assert.rejects(
    new ClipClient(url, { indiceName: "nope" }).query({ text: "a red circle" }),
    (error: unknown) =>
      error instanceof ClipClientError && error.status === 400 && error.field === "indice_name",
  );
});

test("without --allow-private-network image_url refuses loopback; thumbnails missing from the shards redirect to the URL", async () => {
  const copy = join(work, "copy");
  await cp(fixture.root, copy, { recursive: true });
  await rm(join(copy, layout.imageTar("00000")));
  const strict = await serve({ indices: [{ name: "shapes", root: copy }], config: { port: 0 } });
  try {
    const answer = await call(strict.url, "/knn-service", {
      indice_name: "shapes",
      image_url: `${web.origin}/red-star-1.jpg`,
    });
    assert.equal(answer.status, 400);
    assert.equal((answer.json as { field: string }).field, "image_url");
    assert.match((answer.json as { error: string }).error, /private address 127\.0\.0\.1 refused/);
    const noMclip = await call(strict.url, "/knn-service", {
      indice_name: "shapes",
      text: "ein Stern",
      use_mclip: true,
    });
    assert.equal(
      (noMclip.json as { field: string }).field,
      "use_mclip",
      "no multilingual model for this index",
    );
    const [first] = (
      await call(strict.url, "/knn-service", {
        indice_name: "shapes",
        text: "a red star",
        num_images: 1,
      })
    ).json as Result[];
    const thumbnail = await fetch(`${strict.url}/api/thumbnail/shapes/${first?.key}`, {
      redirect: "manual",
    });
    assert.equal(thumbnail.status, 302);
    assert.equal(thumbnail.headers.get("location"), first?.url);
  } finally {
    await strict.close();
  }
});

test("several indices from an indices file, each with its own model; an index served without a model", async () => {
  const file = join(work, "indices.json");
  await writeFile(
    file,
    JSON.stringify({
      shapes: { root: "root", model: "tiny-clip", multilingualModel: "tiny-multilingual" },
      bare: { root: fixture.root, model: null },
    }),
  );
  const both = await serve({ indices: await readIndicesFile(file), config: { port: 0 } });
  try {
    assert.deepEqual((await call(both.url, "/indices-list")).json, ["shapes", "bare"]);
    const described = (await call(both.url, "/api/indices")).json as {
      name: string;
      hasModel: boolean;
    }[];
    assert.deepEqual(
      described.map((index) => [index.name, index.hasModel]),
      [
        ["shapes", true],
        ["bare", false],
      ],
    );
    const byText = await knn({ text: "a red circle", num_images: 1 }, both.url);
    const [row] = (
      await call(both.url, "/knn-service", {
        indice_name: "bare",
        like_id: byText[0]?.id,
        num_images: 1,
      })
    ).json as Result[];
    assert.equal(row?.id, byText[0]?.id);
    const refused = await call(both.url, "/knn-service", {
      indice_name: "bare",
      text: "a red circle",
    });
    assert.equal(refused.status, 400);
    assert.equal((refused.json as { field: string }).field, "text");
    assert.match((refused.json as { error: string }).error, /without a CLIP model/);
  } finally {
    await both.close();
  }
  await writeFile(file, JSON.stringify({ "bad name!": fixture.root }));
  await assert.rejects(readIndicesFile(file), /index name "bad name!"/);
});

test("hardening: per-client rate limit, bearer token on export jobs, body size limit", async () => {
  const guarded = await serve({
    indices: [{ name: "shapes", root: fixture.root }],
    config: { port: 0, rateLimitPerMinute: 6, maxImageBytes: 1024 },
    token: "s3cret",
  });
  try {
    const job = { indice_name: "shapes", text: "a red star", format: "csv" };
    const refused = await call(guarded.url, "/api/export/jobs", job);
    assert.equal(refused.status, 401);
    assert.equal((refused.json as { field: string }).field, "authorization");
    const wrong = await call(guarded.url, "/api/export/jobs", job, {
      authorization: "Bearer guess",
    });
    assert.equal(wrong.status, 401);
    const accepted = await call(guarded.url, "/api/export/jobs", job, {
      authorization: "Bearer s3cret",
    });
    assert.equal(accepted.status, 200);
    const huge = await call(guarded.url, "/knn-service", {
      indice_name: "shapes",
      image: "A".repeat(2 * 1024 * 1024),
    });
    assert.equal(huge.status, 413);
    assert.equal(typeof (huge.json as { error: string }).error, "string");
    let limited: Awaited<ReturnType<typeof call>> | undefined;
    for (let attempt = 0; attempt < 6 && limited === undefined; attempt++) {
      const answer = await call(guarded.url, "/indices-list");
      if (answer.status === 429) limited = answer;
    }
    assert.ok(limited !== undefined, "the seventh request in a minute is refused");
    assert.match((limited.json as { error: string }).error, /rate limit/);
    assert.equal((await call(guarded.url, "/health")).status, 200, "health is never limited");
  } finally {
    await guarded.close();
  }
});

test("clipcrawl serve --root starts the server from the command line and stops on SIGTERM", async () => {
  const server = await startCliServer([
    "serve",
    "--root",
    fixture.root,
    "--port",
    "0",
    "--name",
    "cli",
  ]);
  assert.deepEqual((await call(server.url, "/indices-list")).json, ["cli"]);
  assert.equal((await server.stop()).code, 0, server.stderr());
});
