import assert from "node:assert/strict";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  parseShapeImageName,
  renderShapeImage,
  type ShapeColour,
  type ShapeName,
} from "../src/demo/sample/shape-images.js";
import { SHAPE_COLOURS, SHAPE_NAMES } from "../src/demo/sample/wat-generator.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { ClipModel } from "../src/models/clip-model.js";
import { ClipEmbedder, cosineSimilarity, embeddingRow } from "../src/models/embedder.js";
import { tempDir } from "./support/temp.js";

let workDir: string;
let modelDir: string;
let model: ClipModel;

before(async () => {
  workDir = await tempDir("tiny-clip");
  modelDir = join(workDir, "model");
  await generateTinyClipModel(modelDir);
  model = await ClipModel.load(modelDir, { intraOpThreads: 1 });
});

after(async () => {
  await model?.release();
  await rm(workDir, { recursive: true, force: true });
});

test("the generator writes the same bytes every run, a few KB of ONNX", async () => {
  const again = join(workDir, "again");
  const summary = await generateTinyClipModel(again);
  for (const { path, bytes } of summary.files) {
    assert.deepEqual(await readFile(join(again, path)), await readFile(join(modelDir, path)), path);
    if (path.endsWith(".onnx")) assert.ok(bytes < 32 * 1024, `${path} is ${bytes} bytes`);
  }
});

test("the tiny model loads like any CLIP folder: 48-d towers, 77-token context, 64 px crops", () => {
  assert.equal(model.embeddingSize, 48);
  assert.equal(model.tokenizer.contextLength, 77);
  assert.deepEqual(model.preprocessor.outputSize, { height: 64, width: 64 });
});

test("for every colour and shape, the true caption scores above 0.3 and every wrong one below 0.2", async () => {
  const embedder = new ClipEmbedder(model, { batchSize: 16 });
  const rows: string[] = [];
  let worstMatch = 1;
  let bestMismatch = -1;
  for (const colour of SHAPE_COLOURS) {
    for (const shape of SHAPE_NAMES) {
      const images = await Promise.all(
        [3, 57, 141].map((index) => renderShapeImage(colour, shape, index)),
      );
      const captions = [
        altFor(colour, shape),
        ...SHAPE_COLOURS.filter((other) => other !== colour).map((other) => altFor(other, shape)),
        ...SHAPE_NAMES.filter((other) => other !== shape).map((other) => altFor(colour, other)),
      ];
      const imageEmbeddings = await embedder.embedImages(images);
      assert.deepEqual(imageEmbeddings.failures, []);
      const textEmbeddings = await embedder.embedTexts(captions);
      let match = 1;
      let mismatch = -1;
      for (let image = 0; image < images.length; image++) {
        const similarities = captions.map((_, caption) =>
          cosineSimilarity(
            embeddingRow(imageEmbeddings.embeddings, image),
            embeddingRow(textEmbeddings.embeddings, caption),
          ),
        );
        match = Math.min(match, similarities[0] as number);
        mismatch = Math.max(mismatch, ...similarities.slice(1));
      }
      rows.push(
        `${colour}-${shape}: match ≥ ${match.toFixed(3)}, mismatch ≤ ${mismatch.toFixed(3)}`,
      );
      worstMatch = Math.min(worstMatch, match);
      bestMismatch = Math.max(bestMismatch, mismatch);
    }
  }
  const table = rows.join("\n");
  assert.ok(worstMatch > 0.3, table);
  assert.ok(bestMismatch < 0.2, table);
});

test("the sample's alt phrasings all describe the image, whatever words surround colour and shape", async () => {
  const embedder = new ClipEmbedder(model);
  const image = await renderShapeImage("white", "triangle", 7);
  const alts = [
    "a white triangle on a black background",
    "White triangle icon",
    "A simple white triangle shape",
    "Illustration of a white triangle",
    "White triangle sticker in a flat design",
    "Plain white triangle printed on a black card",
    "white triangle",
  ];
  const imageRow = embeddingRow((await embedder.embedImages([image])).embeddings, 0);
  const texts = (await embedder.embedTexts(alts)).embeddings;
  alts.forEach((alt, row) => {
    assert.ok(cosineSimilarity(imageRow, embeddingRow(texts, row)) > 0.9, alt);
  });
  // The colour of the background is not the colour of the shape.
  const wrong = (await embedder.embedTexts(["a black triangle on a white background"])).embeddings;
  assert.ok(cosineSimilarity(imageRow, embeddingRow(wrong, 0)) < 0.2);
});

test("captions and images outside the sample still get finite unit-length embeddings", async () => {
  const embedder = new ClipEmbedder(model);
  const texts = await embedder.embedTexts([
    "",
    "Golden retriever puppy on the grass",
    "東京の夜景",
  ]);
  for (let row = 0; row < texts.embeddings.rows; row++) {
    const embedding = embeddingRow(texts.embeddings, row);
    assert.ok(Math.abs(cosineSimilarity(embedding, embedding) - 1) < 1e-5, `row ${row}`);
  }
  const circle = await embedder.embedImages([await renderShapeImage("red", "circle", 1)]);
  const unrelated = cosineSimilarity(
    embeddingRow(circle.embeddings, 0),
    embeddingRow(texts.embeddings, 1),
  );
  assert.ok(unrelated < 0.2, `unrelated caption scores ${unrelated}`);
});

test("shape image names parse back into colour, shape and index", async () => {
  assert.deepEqual(
    parseShapeImageName("https://shapes.clipcrawl-sample.test/img/red-circle-0042.jpg"),
    { colour: "red", shape: "circle", index: 42 },
  );
  assert.equal(parseShapeImageName("/img/pink-circle-0001.jpg"), undefined);
  const first = await renderShapeImage("blue", "star", 42, 128, "png");
  assert.deepEqual(first, await renderShapeImage("blue", "star", 42, 128, "png"));
  assert.notDeepEqual(first, await renderShapeImage("blue", "star", 43, 128, "png"));
});

function altFor(colour: ShapeColour, shape: ShapeName): string {
  return `a ${colour} ${shape} on a ${colour === "white" ? "black" : "white"} background`;
}
