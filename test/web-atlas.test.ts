/**
 * The Atlas page in a real browser against the real server: Debian's Chromium (WebGL through
 * SwiftShader) driven by playwright-core, `serve` over a dataset of coloured shapes built by the
 * real stages (the index stage writes the atlas), and the UI built by Vite from web/ for this
 * run. The score heads flag red images as unsafe, so safe mode has points to hide.
 *
 * Skipped, with the reason, when /usr/bin/chromium is missing outside CI.
 */
import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import type { Server } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Download, type Page } from "playwright-core";
import sharp from "sharp";
import { build } from "vite";
import { SHAPE_COLOURS, SHAPE_NAMES } from "../src/demo/sample/wat-generator.js";
import { readAtlas } from "../src/formats/atlas/atlas-files.js";
import { openRoot } from "../src/io/open-root.js";
import { duckdbConnection, quoteLiteral } from "../src/io/parquet.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { CHROMIUM, chromiumSkipReason, WEBGL_CHROMIUM_ARGS } from "./support/chromium.js";
import { buildShapesDataset, type ShapeSample, startShapesWeb } from "./support/shapes-dataset.js";
import { tempDir } from "./support/temp.js";

const REPO = fileURLToPath(new URL("..", import.meta.url));
const SCREENSHOTS = join(REPO, "test-results", "web-atlas");
const INDEX = "shapes";

/** Every colour and shape once: 32 images, the 4 red ones flagged unsafe. */
const SAMPLES: ShapeSample[] = SHAPE_COLOURS.flatMap((colour, c) =>
  SHAPE_NAMES.map((shape, s): ShapeSample => {
    const article = /^[aeiou]/.test(colour) ? "an" : "a";
    return [`${colour}-${shape}-${c * 4 + s + 1}`, `${article} ${colour} ${shape}`, "en", "en"];
  }),
);

let work: string;
let web: { server: Server; port: number };
let server: RunningServer;
let browser: Browser;
let root: string;
/** URL → punsafe of every row of the dataset. */
let punsafeOf: Map<string, number | null>;

describe("the Atlas page in Chromium", { skip: chromiumSkipReason }, () => {
  before(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: WEBGL_CHROMIUM_ARGS });
    web = await startShapesWeb();
    work = await tempDir("web-atlas");
    const webRoot = join(work, "web");
    await build({
      configFile: join(REPO, "web", "vite.config.ts"),
      logLevel: "warn",
      build: { outDir: webRoot, emptyOutDir: true },
    });
    const dataset = await buildShapesDataset(work, web.port, SAMPLES, SAMPLES.length);
    root = dataset.root;
    punsafeOf = await datasetPunsafe(root);
    server = await serve({
      indices: [{ name: INDEX, root, multilingualModel: dataset.multilingual }],
      config: { port: 0 },
      webRoot,
    });
    await mkdir(SCREENSHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await new Promise((resolve) => web?.server.close(resolve));
    if (work !== undefined) await rm(work, { recursive: true, force: true });
  });

  test("the index stage maps every row, and labels each region with its captions' words", async () => {
    const atlas = await readAtlas(openRoot(root));
    assert.ok(atlas !== undefined, "clipcrawl index wrote _atlas/");
    assert.equal(atlas.manifest.points, SAMPLES.length);
    assert.deepEqual([...atlas.rows], [...SAMPLES.keys()]);
    assert.ok(atlas.points.every(Number.isFinite));
    const words = new Set(atlas.manifest.clusters.flatMap((cluster) => cluster.words));
    assert.ok(
      [...words].every((word) => /^(an?|[a-z]+)$/.test(word) && word !== "a" && word !== "an"),
    );
    assert.ok(
      SHAPE_COLOURS.some((colour) => words.has(colour)),
      `colour words label the regions: ${[...words]}`,
    );
  });

  test("the map draws: the canvas has the points' pixels, and the clusters their labels", async () => {
    const page = await openPage("/?view=atlas&safe=off");
    await mapDrawn(page);
    assert.equal(await page.locator(".atlas-map").getAttribute("data-points"), "32");
    const painted = await paintedPixels(page);
    assert.ok(painted > 200, `the canvas shows the points (${painted} painted pixels)`);
    const labels = await page.locator(".atlas-labels span:not([hidden])").allTextContents();
    assert.ok(labels.length > 0 && labels.every((label) => label.length > 0), `${labels}`);
    await page.screenshot({ path: join(SCREENSHOTS, "atlas.png") });

    // Colouring by another column repaints the same points.
    await page.getByLabel("Colour by").selectOption("punsafe");
    await page.waitForTimeout(300);
    assert.ok((await paintedPixels(page)) > 200);

    // Hovering a point (a label names its cluster's central point) shows its thumbnail.
    const map = await boxOf(page, ".atlas-map");
    const label = page.locator(".atlas-labels span:not([hidden])").first();
    const [x, y] = [
      Number(await label.getAttribute("data-x")),
      Number(await label.getAttribute("data-y")),
    ];
    await page.mouse.move(map.x + x, map.y + y);
    await page.waitForFunction(
      "document.querySelector('.atlas-hover img')?.naturalWidth === 64",
      undefined,
      { timeout: 10_000 },
    );
    await closePage(page);
  });

  test("safe mode hides the flagged points, on the server's answer and on the map", async () => {
    const flagged = [...punsafeOf.values()].filter((value) => value !== null && value > 0.5);
    assert.ok(flagged.length > 0, "the red shapes are flagged");

    const page = await openPage("/?view=atlas");
    await mapDrawn(page);
    assert.equal(
      Number(await page.locator(".atlas-map").getAttribute("data-points")),
      SAMPLES.length - flagged.length,
    );
    // What the page received holds no flagged row.
    const rows = await page.evaluate(async () => {
      const buffer = await (await fetch("api/atlas/shapes/points?max_punsafe=0.5")).arrayBuffer();
      const count = new DataView(buffer).getUint32(8, true);
      return [...new Uint32Array(buffer, 16 + count * 8, count)];
    });
    const metadata = (await (
      await fetch(new URL("/metadata", server.url), {
        method: "POST",
        body: JSON.stringify({ indice_name: INDEX, ids: rows }),
      })
    ).json()) as { metadata: { url: string; punsafe: number | null } }[];
    assert.equal(metadata.length, SAMPLES.length - flagged.length);
    assert.ok(
      metadata.every((row) => row.metadata.punsafe === null || row.metadata.punsafe <= 0.5),
    );
    assert.ok(!metadata.some((row) => /\/red-/.test(row.metadata.url)));

    await page.getByLabel("Safe mode").selectOption("off");
    await page.waitForFunction(
      `document.querySelector('.atlas-map')?.dataset.points === "${SAMPLES.length}"`,
    );
    await closePage(page);
  });

  test("a lasso around the map exports its points; the file parses and holds only safe rows", async () => {
    const page = await openPage("/?view=atlas");
    await mapDrawn(page);
    const shown = Number(await page.locator(".atlas-map").getAttribute("data-points"));
    await page.getByRole("button", { name: "Lasso" }).click();
    const box = await boxOf(page, ".atlas-map canvas");
    const inset = 6;
    const start: [number, number] = [box.x + inset, box.y + inset];
    const corners: [number, number][] = [
      [box.x + box.width - inset, box.y + inset],
      [box.x + box.width - inset, box.y + box.height - inset],
      [box.x + inset, box.y + box.height - inset],
      [box.x + inset, box.y + inset + 1],
    ];
    await page.mouse.move(...start);
    await page.mouse.down();
    for (const [x, y] of corners) {
      await page.mouse.move(x, y, { steps: 12 });
      // A timer in the page, not here: the lasso keeps a corner only once its own 10 ms timer
      // has fired, and on a loaded machine the page's timers run late.
      await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 30)));
    }
    await page.mouse.up();
    await page.waitForFunction(
      `Number(document.querySelector('.atlas-map')?.dataset.selected) === ${shown}`,
    );
    await page.getByLabel("Format").selectOption("jsonl");
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByRole("button", { name: "Export selection" }).click(),
    ]);
    const path = join(work, (download as Download).suggestedFilename());
    await (download as Download).saveAs(path);
    const rows = await readJsonLines(path);
    assert.equal(rows.length, shown);
    for (const row of rows) {
      assert.ok(punsafeOf.has(String(row.url)), `${row.url} is a row of the dataset`);
      const punsafe = punsafeOf.get(String(row.url));
      assert.ok(punsafe === null || (punsafe ?? 0) <= 0.5, `${row.url} is not flagged`);
    }
    await closePage(page);
  });

  test("the lasso takes a drag that starts as its button is pressed", async () => {
    const page = await openPage("/?view=atlas");
    await mapDrawn(page);
    const shown = Number(await page.locator(".atlas-map").getAttribute("data-points"));
    const box = await boxOf(page, ".atlas-map canvas");
    const inset = 6;
    const [left, top] = [box.x + inset, box.y + inset];
    const [right, bottom] = [box.x + box.width - inset, box.y + box.height - inset];
    const drag = [
      ["mousedown", left, top],
      ["mousemove", right, top],
      ["mousemove", right, bottom],
      ["mousemove", left, bottom],
      ["mousemove", left, top + 1],
      ["mouseup", left, top + 1],
    ];
    // The press and the mouse going down in one task: the page paints nothing in between.
    await page.evaluate(`(async () => {
      const canvas = document.querySelector(".atlas-map canvas");
      [...document.querySelectorAll("button")].find((button) => button.textContent === "Lasso").click();
      for (const [type, clientX, clientY] of ${JSON.stringify(drag)}) {
        const event = new MouseEvent(type, { bubbles: true, buttons: 1, clientX, clientY });
        (type === "mousedown" ? canvas : window).dispatchEvent(event);
        await new Promise((resolve) => setTimeout(resolve, 40));
      }
    })()`);
    await page.waitForFunction(
      `Number(document.querySelector('.atlas-map')?.dataset.selected) === ${shown}`,
      undefined,
      { timeout: 5_000 },
    );
    await closePage(page);
  });

  test("a text query selects its nearest images; Open in Explore lists them", async () => {
    const page = await openPage("/?view=atlas&safe=off");
    await mapDrawn(page);
    const input = page.getByLabel("Highlight a text query");
    await input.fill("a green square");
    await input.press("Enter");
    await page.waitForURL((url) => url.searchParams.get("query") === "a green square");
    await page.waitForFunction(
      "Number(document.querySelector('.atlas-map')?.dataset.selected) > 0",
    );
    assert.match((await page.locator(".atlas-page .status").textContent()) ?? "", /nearest images/);
    await page.getByRole("button", { name: /Open in Explore/ }).click();
    await page.waitForURL((url) => url.searchParams.has("rows"));
    await page.locator(".results-grid li").first().waitFor();
    const urls = await page
      .locator(".results-grid li")
      .evaluateAll((items) => items.map((item) => item.getAttribute("data-url") ?? ""));
    assert.ok(
      urls.some((url) => /green-square/.test(url)),
      `${urls}`,
    );
    await closePage(page);
  });
});

const pageProblems = new WeakMap<Page, string[]>();

async function openPage(path: string): Promise<Page> {
  const page = await browser.newPage({
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  const problems: string[] = [];
  pageProblems.set(page, problems);
  page.on("pageerror", (error) => problems.push(`uncaught error: ${error.message}`));
  page.on("request", (request) => {
    const url = request.url();
    if (!url.startsWith(server.url) && !/^(data|blob):/.test(url)) {
      problems.push(`request to ${url}`);
    }
  });
  await page.goto(new URL(path, server.url).href);
  return page;
}

async function closePage(page: Page): Promise<void> {
  await page.close();
  assert.deepEqual(pageProblems.get(page), []);
}

async function boxOf(
  page: Page,
  selector: string,
): Promise<{ x: number; y: number; width: number; height: number }> {
  const box = await page.locator(selector).first().boundingBox();
  assert.ok(box !== null, `${selector} is on screen`);
  return box;
}

async function mapDrawn(page: Page): Promise<void> {
  await page.waitForFunction(
    "(document.querySelector('.atlas-map')?.dataset.drawnMs ?? '') !== ''",
    undefined,
    { timeout: 30_000 },
  );
}

/** Pixels of the map's canvas that are not its white background. */
async function paintedPixels(page: Page): Promise<number> {
  const png = await page.locator(".atlas-map canvas").screenshot();
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  let painted = 0;
  for (let at = 0; at < data.length; at += info.channels) {
    if ((data[at] as number) + (data[at + 1] as number) + (data[at + 2] as number) < 700) painted++;
  }
  return painted;
}

async function datasetPunsafe(datasetRoot: string): Promise<Map<string, number | null>> {
  const connection = await duckdbConnection();
  try {
    const result = await connection.runAndReadAll(
      `SELECT URL, punsafe FROM read_parquet(${quoteLiteral(join(datasetRoot, "dataset", "*.parquet"))})`,
    );
    return new Map(
      (result.getRowObjectsJson() as { URL: string; punsafe: number | null }[]).map((row) => [
        row.URL,
        row.punsafe === null ? null : Number(row.punsafe),
      ]),
    );
  } finally {
    connection.closeSync();
  }
}

async function readJsonLines(path: string): Promise<Record<string, unknown>[]> {
  const connection = await duckdbConnection();
  try {
    const result = await connection.runAndReadAll(`SELECT * FROM read_json(${quoteLiteral(path)})`);
    return result.getRowObjectsJson() as Record<string, unknown>[];
  } finally {
    connection.closeSync();
  }
}
