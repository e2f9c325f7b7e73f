/**
 * A dataset root for the serve tests, built by the real stages from a local web of coloured-shape
 * images: download (a URL list, from 127.0.0.1) → embed (the tiny CLIP model, its multilingual
 * text tower, and the example score heads: red images are "unsafe", red circles "beautiful") →
 * filter → index. The tiny model sees colour and shape, so what a query should find first is
 * known: "a red circle" finds the red circles.
 *
 * Planted on purpose: one image under two URLs (a near-duplicate pair), one URL with two
 * captions (a repeated URL), German captions (the multilingual tier), two mismatched captions
 * (dropped by filter) and a missing image (a download error).
 */
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { generateScoreHeads } from "../../scripts/score-heads/generate.js";
import {
  renderShapeImage,
  type ShapeColour,
  type ShapeName,
} from "../../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../../src/demo/tiny-clip/generate.js";
import { generateTinyMultilingualTextModel } from "../../src/demo/tiny-clip/generate-multilingual.js";
import { download } from "../../src/stages/download/download.js";
import { embed } from "../../src/stages/embed/embed.js";
import { filter } from "../../src/stages/filter/filter.js";
import { buildIndex } from "../../src/stages/index/build-index.js";

export const FIXTURE_COLOURS: ShapeColour[] = [
  "red",
  "green",
  "blue",
  "yellow",
  "purple",
  "orange",
];
export const FIXTURE_SHAPES: ShapeName[] = ["circle", "square", "triangle", "star"];
/** The image served under two URLs, and the URL listed with two captions. */
export const DUPLICATED_IMAGE = "green-square-1.jpg";
export const REPEATED_URL = "blue-triangle-2.jpg";

export interface ShapeWeb {
  server: Server;
  /** http://127.0.0.1:PORT */
  origin: string;
  close(): Promise<void>;
}

/** Serves `/COLOUR-SHAPE-N.jpg` (any query string) and 404 for anything else. */
export async function startShapeWeb(): Promise<ShapeWeb> {
  const server = createServer((request, response) => {
    const match = /^\/(\w+)-(\w+)-(\d+)\.jpg(\?.*)?$/.exec(request.url ?? "");
    if (match === null) {
      response.writeHead(404).end();
      return;
    }
    const [, colour, shape, index] = match;
    renderShapeImage(colour as ShapeColour, shape as ShapeName, Number(index)).then(
      (image) => response.writeHead(200, { "content-type": "image/jpeg" }).end(image),
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    server,
    origin,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

export interface ServeFixture {
  root: string;
  model: string;
  multilingualModel: string;
  /** Rows of the URL list: url path, caption, language. */
  listed: { path: string; caption: string; language: string }[];
}

const GERMAN_COLOURS: Partial<Record<ShapeColour, string>> = { red: "roter", blue: "blauer" };
const GERMAN_SHAPES: Partial<Record<ShapeName, string>> = { circle: "Kreis", star: "Stern" };

/** Builds the root in `work` (about 60 listed pairs) through download, embed, filter and index. */
export async function buildServeFixture(work: string, web: ShapeWeb): Promise<ServeFixture> {
  const root = join(work, "root");
  const model = join(work, "tiny-clip");
  const multilingualModel = join(work, "tiny-multilingual");
  await generateTinyClipModel(model);
  await generateTinyMultilingualTextModel(multilingualModel);

  const listed: ServeFixture["listed"] = [];
  for (const colour of FIXTURE_COLOURS) {
    for (const shape of FIXTURE_SHAPES) {
      for (const index of [1, 2]) {
        listed.push({
          path: `${colour}-${shape}-${index}.jpg`,
          caption: `a ${colour} ${shape}`,
          language: "en",
        });
      }
    }
  }
  for (const [colour, german] of Object.entries(GERMAN_COLOURS)) {
    for (const [shape, noun] of Object.entries(GERMAN_SHAPES)) {
      listed.push({
        path: `${colour}-${shape}-3.jpg`,
        caption: `ein ${german} ${noun}`,
        language: "de",
      });
    }
  }
  listed.push({ path: `${DUPLICATED_IMAGE}?copy=1`, caption: "a green square", language: "en" });
  listed.push({ path: REPEATED_URL, caption: "a blue triangle on paper", language: "en" });
  listed.push({ path: "purple-star-4.jpg", caption: "a yellow circle", language: "en" });
  listed.push({ path: "orange-circle-4.jpg", caption: "a blue square", language: "en" });
  listed.push({ path: "missing.jpg", caption: "a missing picture", language: "en" });
  const csv = listed
    .map(
      (row) =>
        `http://shapes.test/${row.path},${row.caption},${row.language},${row.language === "en" ? "en" : "multi"}`,
    )
    .join("\n");
  await writeFile(join(work, "list.csv"), `url,caption,language,language_tier\n${csv}\n`);

  const port = new URL(web.origin).port;
  const downloaded = await download({
    root,
    inputs: [join(work, "list.csv")],
    config: {
      captionCol: "caption",
      saveAdditionalColumns: ["language", "language_tier"],
      allowPrivateNetwork: true,
      connectTo: [`shapes.test:80:127.0.0.1:${port}`],
      retries: 0,
      workers: 1,
      imageSize: 128,
    },
  });
  if (!downloaded.ok) throw new Error(`fixture download failed: ${JSON.stringify(downloaded)}`);

  const heads = join(root, "heads");
  await generateScoreHeads(heads);
  const configPath = join(root, "clipcrawl.json");
  const config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
  const scores = JSON.parse(await readFile(join(heads, "scores.json"), "utf8")) as Record<
    string,
    Record<string, unknown>
  >;
  for (const head of Object.values(scores)) {
    for (const key of ["model", "weights"]) {
      if (typeof head[key] === "string") head[key] = `heads/${head[key]}`;
    }
  }
  config.scores = scores;
  await writeFile(configPath, JSON.stringify(config));

  const embedded = await embed({
    root,
    config: { model, multilingualModel, threads: 1, preprocessWorkers: 1 },
  });
  if (!embedded.ok) throw new Error(`fixture embed failed: ${JSON.stringify(embedded)}`);
  const filtered = await filter({ root });
  if (!filtered.ok) throw new Error(`fixture filter failed: ${JSON.stringify(filtered)}`);
  // A graph index even at this size, so queries take the graph path with its filters.
  const indexed = await buildIndex({ root, config: { threads: 1, flatMaxVectors: 8 } });
  if (!indexed.ok) throw new Error(`fixture index failed: ${JSON.stringify(indexed)}`);
  return { root, model, multilingualModel, listed };
}
