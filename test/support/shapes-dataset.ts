/**
 * A small dataset built by the real stages for the browser tests: download from a local web of
 * coloured shapes (`/<colour>-<shape>-<n>.jpg`), embed with the tiny CLIP model and score heads
 * that flag red images as unsafe, filter, index. The tiny model makes answers exact: "a green
 * square" finds the green square.
 */
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { generateScoreHeads } from "../../scripts/score-heads/generate.js";
import {
  isShapeColour,
  isShapeName,
  renderShapeImage,
} from "../../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../../src/demo/tiny-clip/generate.js";
import { generateTinyMultilingualTextModel } from "../../src/demo/tiny-clip/generate-multilingual.js";
import { download } from "../../src/stages/download/download.js";
import { embed } from "../../src/stages/embed/embed.js";
import { filter } from "../../src/stages/filter/filter.js";
import { buildIndex } from "../../src/stages/index/build-index.js";

/** Image (served as /<image>.jpg by the shapes web), caption, language, language tier. */
export type ShapeSample = [image: string, caption: string, language: string, tier: string];

/** The shapes web on 127.0.0.1: /<colour>-<shape>-<n>.jpg is that picture, anything else a 404. */
export async function startShapesWeb(): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => {
    const [, colour, shape, index] = /^\/(\w+)-(\w+)-(\d+)\.jpg$/.exec(request.url ?? "") ?? [];
    if (!isShapeColour(colour) || !isShapeName(shape)) {
      response.writeHead(404).end();
      return;
    }
    void renderShapeImage(colour, shape, Number(index)).then((image) => {
      response.writeHead(200, { "content-type": "image/jpeg" }).end(image);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Downloads, embeds, filters and indexes `samples` into `<folder>/root`. */
export async function buildShapesDataset(
  folder: string,
  port: number,
  samples: readonly ShapeSample[],
  expectedDownloads: number,
  indexConfig: Parameters<typeof buildIndex>[0]["config"] = {},
): Promise<{ root: string; multilingual: string }> {
  const root = join(folder, "root");
  const model = join(folder, "tiny-clip");
  const multilingual = join(folder, "tiny-multilingual");
  const lines = ["url,caption,language,language_tier,page_url,source"];
  samples.forEach(([image, text, lang, languageTier], row) => {
    lines.push(
      [
        `http://shapes.test/${image}.jpg`,
        text,
        lang,
        languageTier,
        `http://shapes.test/page/${row}.html`,
        `CC-MAIN-SAMPLE-0000${row % 2}.warc.wat.gz`,
      ].join(","),
    );
  });
  await writeFile(join(folder, "list.csv"), `${lines.join("\n")}\n`);
  const downloaded = await download({
    root,
    inputs: [join(folder, "list.csv")],
    config: {
      captionCol: "caption",
      saveAdditionalColumns: ["language", "language_tier", "page_url", "source"],
      allowPrivateNetwork: true,
      connectTo: [`shapes.test:80:127.0.0.1:${port}`],
      retries: 0,
      workers: 1,
      imageSize: 64,
    },
  });
  assert.equal(downloaded.totals.successes, expectedDownloads, JSON.stringify(downloaded));
  await generateTinyClipModel(model);
  await generateTinyMultilingualTextModel(multilingual);
  // The example heads: punsafe is "the image is red", so safe mode hides the red shapes.
  await generateScoreHeads(join(root, "heads"));
  const configPath = join(root, "clipcrawl.json");
  const config = JSON.parse(await readFile(configPath, "utf8")) as Record<string, unknown>;
  const scores = JSON.parse(await readFile(join(root, "heads", "scores.json"), "utf8")) as Record<
    string,
    { model?: string; weights?: string }
  >;
  for (const head of Object.values(scores)) {
    if (head.model !== undefined) head.model = `heads/${head.model}`;
    if (head.weights !== undefined) head.weights = `heads/${head.weights}`;
  }
  config.scores = scores;
  await writeFile(configPath, JSON.stringify(config));
  const embedded = await embed({
    root,
    config: { model, multilingualModel: multilingual, threads: 1 },
  });
  assert.equal(embedded.ok, true, JSON.stringify(embedded));
  const filtered = await filter({ root });
  assert.equal(filtered.ok, true, JSON.stringify(filtered));
  const indexed = await buildIndex({ root, config: indexConfig });
  assert.equal(indexed.ok, true, JSON.stringify(indexed));
  return { root, multilingual };
}
