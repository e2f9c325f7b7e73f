/**
 * The web UI in a real browser against the real server: Debian's Chromium driven by
 * playwright-core, `serve` over a small dataset built by the real stages (download from a local
 * web of coloured shapes, embed with the tiny CLIP model and score heads that flag red images as
 * unsafe, filter, index), and the UI built by Vite from web/ for this run. The tiny model makes
 * the answers exact: "a green square" finds the green square. Screenshots of the main views go to
 * test-results/web-ui/ for a person to look at.
 *
 * Skipped, with the reason, when /usr/bin/chromium is missing outside CI; in CI (`.ci/run`
 * installs the `chromium` package) a missing browser fails.
 */
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Download, type Locator, type Page } from "playwright-core";
import { build } from "vite";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { duckdbConnection, quoteLiteral } from "../src/io/parquet.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { CHROMIUM, CHROMIUM_ARGS, chromiumSkipReason } from "./support/chromium.js";
import { buildShapesDataset, type ShapeSample, startShapesWeb } from "./support/shapes-dataset.js";
import { tempDir } from "./support/temp.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const SCREENSHOTS = join(REPO, "test-results", "web-ui");
const INDEX = "shapes";

const skipReason = chromiumSkipReason;

/** Image (served as /<image>.jpg by the shapes web), caption, language, tier; one repeated image, one mismatch per tier, one dead link. */
const SAMPLES: ShapeSample[] = [
  ["red-circle-1", "a red circle", "en", "en"],
  ["blue-star-2", "a blue star", "en", "en"],
  ["blue-star-2", "a blue star shape", "en", "en"],
  ["green-square-3", "a green square", "en", "en"],
  ["yellow-triangle-4", "a yellow triangle", "en", "en"],
  ["purple-circle-5", "a purple circle", "en", "en"],
  ["orange-star-6", "an orange star", "en", "en"],
  ["black-square-7", "a black square", "en", "en"],
  ["white-triangle-8", "a white triangle on a black background", "en", "en"],
  ["blue-circle-9", "a blue circle", "en", "en"],
  ["green-triangle-10", "a green triangle", "en", "en"],
  ["yellow-star-11", "a yellow star", "en", "en"],
  ["orange-square-12", "an orange square", "en", "en"],
  ["red-square-13", "a red square", "en", "en"],
  ["blue-star-15", "ein blauer Stern", "de", "multi"],
  ["green-square-16", "un carré vert", "fr", "multi"],
  ["green-triangle-17", "a yellow star", "en", "en"],
  ["missing-18", "a picture that is gone", "en", "en"],
];

let work: string;
let shapesWeb: { server: Server; port: number };
let server: RunningServer;
/** The dataset root and the built UI, for a test that starts a server of its own. */
let servedRoot: string;
let builtWeb: string;
let browser: Browser;

describe("web UI in Chromium", { skip: skipReason }, () => {
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    shapesWeb = await startShapesWeb();
    work = await tempDir("web-ui");
    const webRoot = join(work, "web");
    await build({
      configFile: join(REPO, "web", "vite.config.ts"),
      logLevel: "warn",
      build: { outDir: webRoot, emptyOutDir: true },
    });
    const dataset = await buildShapesDataset(work, shapesWeb.port, SAMPLES, SAMPLES.length - 1);
    servedRoot = dataset.root;
    builtWeb = webRoot;
    server = await serve({
      indices: [{ name: INDEX, root: dataset.root, multilingualModel: dataset.multilingual }],
      // The image-URL query fetches from the shapes web on 127.0.0.1.
      config: { port: 0, allowPrivateNetwork: true },
      webRoot,
    });
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await new Promise((resolve) => shapesWeb.server.close(resolve));
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("a text search shows the matching picture first, from the dataset's own image shard", async () => {
    const page = await openPage("/");
    await searchText(page, "a green square");
    assert.equal(new URL(page.url()).searchParams.get("query"), "a green square");
    const first = page.locator(".results-grid li").first();
    assert.match((await first.getAttribute("data-url")) ?? "", /green-square-(3|16)\.jpg$/);
    const thumbnail = first.locator("img");
    assert.match((await thumbnail.getAttribute("src")) ?? "", /\/api\/thumbnail\/shapes\/\d+$/);
    await page.waitForFunction(
      "document.querySelector('.results-grid li img')?.naturalWidth === 64",
    );
    await page.screenshot({ path: join(SCREENSHOTS, "explore.png"), fullPage: true });

    // Keyboard: the first result opens its details with Enter, Escape closes them.
    await page.locator(".results-grid .thumb").first().focus();
    await page.keyboard.press("Enter");
    const dialog = page.locator("dialog.result-detail");
    await dialog.waitFor();
    const fields = await text(dialog.locator("dl"));
    for (const field of ["Similarity", "URL", "Page URL", "Language", "Size", "punsafe"]) {
      assert.ok(fields.includes(field), `the detail view shows ${field}: ${fields}`);
    }
    assert.match(fields, /Source WAT\s*CC-MAIN-SAMPLE-0000\d\.warc\.wat\.gz/);
    await page.screenshot({ path: join(SCREENSHOTS, "detail.png") });
    await page.keyboard.press("Escape");
    await dialog.waitFor({ state: "detached" });
    await closePage(page);
  });

  test("a partial answer (an index shard down) shows a notice naming the shard above the results", async () => {
    // A port nothing listens on any more: the shard is down.
    const gone = await serve({
      indices: [{ name: INDEX, root: servedRoot, model: null }],
      config: { port: 0 },
    });
    const downUrl = gone.url;
    await gone.close();
    const partial = await serve({
      indices: [{ name: INDEX, root: servedRoot, remoteShards: [downUrl] }],
      config: { port: 0 },
      webRoot: builtWeb,
      onWarning: () => {},
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await page.goto(new URL("/?query=a+green+square", partial.url).href);
      const notice = page.locator(".partial-notice");
      await notice.waitFor();
      const said = (await notice.textContent()) ?? "";
      assert.match(said, /Partial results: 1 index shard did not answer/);
      assert.ok(said.includes(downUrl), said);
      await page.locator(".results-grid li").first().waitFor();
    } finally {
      await page.close();
      await partial.close();
    }
  });

  test("safe mode hides the flagged red shapes; blur mode blurs them; off shows them", async () => {
    const page = await openPage("/");
    await searchText(page, "a red circle");
    const safeUrls = await resultUrls(page);
    assert.ok(safeUrls.length > 0);
    assert.ok(
      safeUrls.every((url) => !/\/red-/.test(url)),
      `safe mode shows no red shape: ${safeUrls}`,
    );

    await page.getByLabel("Safe mode").selectOption("off");
    await resultsShown(page);
    assert.equal(new URL(page.url()).searchParams.get("safe"), "off");
    assert.match((await resultUrls(page))[0] ?? "", /red-circle-1\.jpg$/);

    await page.getByLabel("Safe mode").selectOption("blur");
    await resultsShown(page);
    const first = page.locator(".results-grid li").first();
    assert.match((await first.getAttribute("data-url")) ?? "", /red-circle-1\.jpg$/);
    assert.equal(await first.locator("img").getAttribute("class"), "blurred");
    await first.locator(".thumb").click();
    assert.equal(await first.locator("img").getAttribute("class"), null, "a click reveals it");
    await closePage(page);
  });

  test("a shared URL restores query and filters; reload and back/forward keep the state", async () => {
    const page = await openPage("/?query=a+yellow+triangle&modality=text&languages=en&count=20");
    await resultsShown(page);
    const check = async () => {
      assert.equal(await page.getByLabel("Search by text").inputValue(), "a yellow triangle");
      assert.equal(await page.getByLabel("Captions").isChecked(), true);
      assert.equal(await page.getByLabel("Languages").inputValue(), "en");
      assert.equal(await page.getByLabel("Results per page").inputValue(), "20");
      const urls = await resultUrls(page);
      assert.match(urls[0] ?? "", /yellow-triangle-4\.jpg$/);
      assert.ok(!urls.some((url) => /-(15|16)\.jpg$/.test(url)), "only English captions");
    };
    await check();
    await page.reload();
    await resultsShown(page);
    await check();

    await searchText(page, "a purple circle");
    assert.match((await resultUrls(page))[0] ?? "", /purple-circle-5\.jpg$/);
    await page.goBack();
    await resultsShown(page);
    await check();
    await page.goForward();
    await resultsShown(page);
    assert.equal(await page.getByLabel("Search by text").inputValue(), "a purple circle");
    assert.match((await resultUrls(page))[0] ?? "", /purple-circle-5\.jpg$/);
    await closePage(page);
  });

  test("pages follow one another through the URL", async () => {
    const page = await openPage("/?query=a+blue+circle&count=5&safe=off&duplicates=show");
    await resultsShown(page);
    const first = await resultIds(page);
    assert.equal(first.length, 5);
    await page.getByRole("button", { name: "Next →" }).click();
    await page.waitForURL((url) => url.searchParams.get("page") === "2");
    await resultsShown(page);
    const second = await resultIds(page);
    assert.equal(second.length, 5);
    assert.deepEqual(
      first.filter((id) => second.includes(id)),
      [],
      "page 2 goes on where page 1 stopped",
    );
    await page.goBack();
    await resultsShown(page);
    assert.deepEqual(await resultIds(page), first);
    await closePage(page);
  });

  test("the multilingual text encoder finds the picture of a German caption", async () => {
    const page = await openPage("/?query=ein+gelbes+Dreieck&safe=off");
    await resultsShown(page);
    const english = await resultUrls(page);
    await page.getByLabel("Multilingual text encoder").check();
    await resultsShown(page);
    assert.equal(new URL(page.url()).searchParams.get("useMclip"), "true");
    const multilingual = await resultUrls(page);
    assert.match(multilingual[0] ?? "", /yellow-triangle-4\.jpg$/);
    assert.notDeepEqual(english, multilingual, "the English tower ranks it differently");
    await closePage(page);
  });

  test("hide duplicates drops the repeated image; showing them brings it back", async () => {
    const page = await openPage("/");
    await searchText(page, "a blue star");
    const hidden = await resultUrls(page);
    assert.ok(hidden.filter((url) => url.endsWith("/blue-star-2.jpg")).length <= 1, `${hidden}`);
    await page.getByLabel("Hide duplicates").uncheck();
    await resultsShown(page);
    const shown = await resultUrls(page);
    assert.equal(shown.filter((url) => url.endsWith("/blue-star-2.jpg")).length, 2, `${shown}`);
    assert.ok(shown.length > hidden.length);
    await closePage(page);
  });

  test("an uploaded, pasted or URL-addressed image finds the same shape; more like this follows a result", async () => {
    const page = await openPage("/");
    const orangeStar = await renderShapeImage("orange", "star", 40);
    await page.locator('input[type="file"]').setInputFiles({
      name: "query.jpg",
      mimeType: "image/jpeg",
      buffer: orangeStar,
    });
    await resultsShown(page);
    assert.match(new URL(page.url()).searchParams.get("upload") ?? "", /^[0-9a-f]{16}$/);
    assert.match((await resultUrls(page))[0] ?? "", /orange-star-6\.jpg$/);
    await page.reload();
    await resultsShown(page);
    assert.match((await resultUrls(page))[0] ?? "", /orange-star-6\.jpg$/, "survives a reload");

    const greenSquare = (await renderShapeImage("green", "square", 41)).toString("base64");
    await page.evaluate(`(async () => {
      const bytes = Uint8Array.from(atob(${JSON.stringify(greenSquare)}), (c) => c.charCodeAt(0));
      const data = new DataTransfer();
      data.items.add(new File([bytes], "pasted.jpg", { type: "image/jpeg" }));
      document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data }));
    })()`);
    await page.waitForURL((url) => url.searchParams.get("upload") !== null);
    await resultsShown(page);
    assert.match((await resultUrls(page))[0] ?? "", /green-square-(3|16)\.jpg$/);

    const { port } = shapesWeb;
    await page
      .getByLabel("Search by image URL")
      .fill(`http://127.0.0.1:${port}/yellow-star-50.jpg`);
    await page.getByLabel("Search by image URL").press("Enter");
    await page.waitForURL((url) => url.searchParams.get("imageUrl") !== null);
    await resultsShown(page);
    assert.match((await resultUrls(page))[0] ?? "", /yellow-star-11\.jpg$/);

    const second = page.locator(".results-grid li").nth(1);
    const id = await second.getAttribute("data-id");
    const url = await second.getAttribute("data-url");
    await page.getByRole("button", { name: "More like this: result 2" }).click();
    await page.waitForURL((address) => address.searchParams.get("like") === id);
    await resultsShown(page);
    const first = page.locator(".results-grid li").first();
    assert.equal(await first.getAttribute("data-url"), url, "the result itself comes first");
    await closePage(page);
  });

  test("export downloads the results as CSV, JSONL and Parquet; expand gathers more with progress", async () => {
    const page = await openPage("/?query=a+green+triangle&count=20");
    await resultsShown(page);
    const urls = await resultUrls(page);
    await page.getByText("Export these results").click();
    for (const format of ["CSV", "JSONL", "Parquet"]) {
      await page.getByLabel(format, { exact: true }).check();
      const file = await saved(page, () =>
        page.getByRole("button", { name: "Download", exact: true }).click(),
      );
      assert.equal(file.name, `clipcrawl-subset.${format.toLowerCase()}`);
      const rows = await readExport(file.path, format);
      assert.deepEqual(
        rows.map((row) => row.url),
        urls,
        `${format} has the page's rows, in order`,
      );
      assert.ok(rows.every((row) => typeof row.caption === "string" && row.similarity !== null));
    }

    await page.getByLabel("CSV", { exact: true }).check();
    await page.getByLabel("Expand to the nearest").fill("5");
    const expanded = await saved(page, () =>
      page.getByRole("button", { name: "Start expanded export" }).click(),
    );
    assert.equal(expanded.name, "clipcrawl-subset.csv");
    assert.match(await text(page.locator(".job-progress")), /Done: 5 rows/);
    assert.equal(await page.locator(".job-progress progress").getAttribute("value"), "5");
    const rows = await readExport(expanded.path, "CSV");
    assert.deepEqual(
      rows.map((row) => row.url),
      urls.slice(0, 5),
    );
    await closePage(page);
  });

  test("the statistics page draws every plot", async () => {
    const page = await openPage("/");
    await page.getByRole("link", { name: "Statistics" }).click();
    await page.waitForURL((url) => url.searchParams.get("view") === "stats");
    const charts = page.locator("figure.chart");
    await page.locator('figure.chart[data-chart="drop-reasons"] svg').waitFor();
    const ids = await Promise.all(
      (await charts.all()).map((chart) => chart.getAttribute("data-chart")),
    );
    assert.deepEqual(ids, [
      "funnel",
      "similarity",
      "languages",
      "sizes",
      "punsafe",
      "pwatermark",
      "aesthetic",
      "download-errors",
      "drop-reasons",
    ]);
    for (const chart of await charts.all()) {
      assert.equal((await chart.locator("svg").count()) > 0, true, await text(chart));
    }
    const similarity = await text(page.locator('figure[data-chart="similarity"]'));
    assert.match(similarity, /en ≥ 0\.28/);
    assert.match(similarity, /multi, nolang ≥ 0\.26/);
    assert.match(await text(page.locator('figure[data-chart="download-errors"]')), /HTTP 404/);
    assert.match(
      await text(page.locator('figure[data-chart="languages"]')),
      /en[\s\S]*de[\s\S]*fr/,
    );
    await page.screenshot({ path: join(SCREENSHOTS, "stats.png"), fullPage: true });
    await closePage(page);
  });

  test("at a phone's width the page fits the screen with two result columns", async () => {
    const page = await openPage("/", { width: 390, height: 844 });
    await searchText(page, "a yellow star");
    const layout = (await page.evaluate(`({
      scrollWidth: document.documentElement.scrollWidth,
      columns: getComputedStyle(document.querySelector(".results-grid")).gridTemplateColumns.split(" ").length,
    })`)) as { scrollWidth: number; columns: number };
    assert.ok(layout.scrollWidth <= 390, `no horizontal scrolling: ${layout.scrollWidth}px`);
    assert.equal(layout.columns, 2);
    await page.screenshot({ path: join(SCREENSHOTS, "phone.png"), fullPage: true });
    await closePage(page);
  });
});

const pageProblems = new WeakMap<Page, string[]>();

/** Closes the page; it must have thrown nothing and asked nothing of another origin. */
async function closePage(page: Page): Promise<void> {
  await page.close();
  assert.deepEqual(pageProblems.get(page), []);
}

async function openPage(path: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport, acceptDownloads: true });
  const problems: string[] = [];
  pageProblems.set(page, problems);
  page.on("pageerror", (error) => problems.push(`uncaught error: ${error.message}`));
  // Offline: the page loads nothing but the server's own files and API (no CDN, no hot-links).
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(server.url) && !/^(data|blob):/.test(url)) {
      problems.push(`request to ${url}`);
    }
  });
  await page.goto(new URL(path, server.url).href);
  return page;
}

async function searchText(page: Page, text: string): Promise<void> {
  const input = page.getByLabel("Search by text");
  await input.fill(text);
  await input.press("Enter");
  await page.waitForURL((url) => url.searchParams.get("query") === text);
  await resultsShown(page);
}

/** Waits until the results on screen are those of the page's current URL. */
async function resultsShown(page: Page): Promise<void> {
  await page.waitForFunction(
    "document.querySelector('section.results')?.dataset.resultsFor === location.search",
  );
}

async function resultUrls(page: Page): Promise<string[]> {
  const items = await page.locator(".results-grid li").all();
  return Promise.all(items.map(async (item) => (await item.getAttribute("data-url")) ?? ""));
}

async function resultIds(page: Page): Promise<string[]> {
  const items = await page.locator(".results-grid li").all();
  return Promise.all(items.map(async (item) => (await item.getAttribute("data-id")) ?? ""));
}

async function saved(
  page: Page,
  action: () => Promise<void>,
): Promise<{ name: string; path: string }> {
  const [file] = await Promise.all([page.waitForEvent("download"), action()]);
  const path = join(work, `${Date.now()}-${(file as Download).suggestedFilename()}`);
  await (file as Download).saveAs(path);
  return { name: (file as Download).suggestedFilename(), path };
}

/** An export file's rows, read by DuckDB as a downloader would read it. */
async function readExport(path: string, format: string): Promise<Record<string, unknown>[]> {
  const reader = { CSV: "read_csv", JSONL: "read_json", Parquet: "read_parquet" }[format];
  const connection = await duckdbConnection();
  try {
    const result = await connection.runAndReadAll(`SELECT * FROM ${reader}(${quoteLiteral(path)})`);
    return result.getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
  }
}

async function text(locator: Locator): Promise<string> {
  return (await locator.textContent()) ?? "";
}
