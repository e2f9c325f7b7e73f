import assert from "node:assert/strict";
import { copyFile, cp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import onnxProto from "onnx-proto";
import {
  SHAPE_ALT_LANGUAGES,
  type ShapeAltLanguage,
  shapeAltPhrasings,
} from "../src/demo/sample/sample-captions.js";
import {
  parseShapeImageName,
  renderShapeImage,
  type ShapeColour,
  type ShapeName,
} from "../src/demo/sample/shape-images.js";
import {
  SAMPLE_SEED,
  SHAPE_COLOURS,
  SHAPE_IMAGE_HOST,
  SHAPE_NAMES,
  writeWatFile,
} from "../src/demo/sample/wat-generator.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { generateTinyMultilingualTextModel } from "../src/demo/tiny-clip/generate-multilingual.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { readParquet } from "../src/io/parquet.js";
import { ClipModel } from "../src/models/clip-model.js";
import {
  ClipEmbedder,
  cosineSimilarity,
  embeddingRow,
  TextEmbedder,
} from "../src/models/embedder.js";
import { ModelError } from "../src/models/model-error.js";
import { checkEmbeddingSizesMatch, TextModel } from "../src/models/text-model.js";
import { extract } from "../src/stages/extract/extract.js";
import { tempDir } from "./support/temp.js";

const { onnx } = onnxProto;

/** LAION-5B's threshold for the multilingual tier. */
const MULTILINGUAL_THRESHOLD = 0.26;

let workDir: string;
let clipDir: string;
let textDir: string;
let clip: ClipModel;
let multilingual: TextModel;
let copies = 0;

before(async () => {
  workDir = await tempDir("multilingual");
  clipDir = join(workDir, "clip");
  textDir = join(workDir, "multilingual");
  await generateTinyClipModel(clipDir);
  await generateTinyMultilingualTextModel(textDir);
  clip = await ClipModel.load(clipDir, { intraOpThreads: 1 });
  multilingual = await TextModel.load(textDir, { intraOpThreads: 1 });
});

after(async () => {
  await clip?.release();
  await multilingual?.release();
  await rm(workDir, { recursive: true, force: true });
});

/** A fresh copy of the multilingual model to break. */
async function modelCopy(): Promise<string> {
  const copy = join(workDir, `copy-${copies++}`);
  await cp(textDir, copy, { recursive: true });
  return copy;
}

async function editGraph(
  path: string,
  edit: (graph: onnxProto.onnx.IGraphProto) => void,
): Promise<void> {
  const model = onnx.ModelProto.decode(await readFile(path));
  edit(model.graph as onnxProto.onnx.IGraphProto);
  await writeFile(path, onnx.ModelProto.encode(model).finish());
}

function renameValue(graph: onnxProto.onnx.IGraphProto, from: string, to: string): void {
  for (const value of [...(graph.input ?? []), ...(graph.output ?? [])]) {
    if (value.name === from) value.name = to;
  }
  for (const node of graph.node ?? []) {
    node.input = (node.input ?? []).map((name) => (name === from ? to : name));
    node.output = (node.output ?? []).map((name) => (name === from ? to : name));
  }
}

async function loadError(folder: string, options = {}): Promise<ModelError> {
  try {
    const model = await TextModel.load(folder, options);
    await model.release();
  } catch (error) {
    assert.ok(error instanceof ModelError, String(error));
    assert.doesNotMatch(error.message, /\n/);
    return error;
  }
  assert.fail("the model loaded");
}

/** Unit-length image embeddings of rendered shape images, through the tiny CLIP vision tower. */
async function imageEmbeddings(
  requests: readonly { colour: ShapeColour; shape: ShapeName; index: number }[],
): Promise<Float32Array[]> {
  const images = await Promise.all(
    requests.map(({ colour, shape, index }) => renderShapeImage(colour, shape, index)),
  );
  const embedded = await new ClipEmbedder(clip, { batchSize: 32 }).embedImages(images);
  assert.deepEqual(embedded.failures, []);
  return requests.map((_, row) => embeddingRow(embedded.embeddings, row));
}

async function textEmbeddings(
  model: ClipModel | TextModel,
  captions: readonly string[],
): Promise<Float32Array[]> {
  const embedded = await new TextEmbedder(model, { batchSize: 64 }).embedTexts(captions);
  return captions.map((_, row) => embeddingRow(embedded.embeddings, row));
}

test("the generator writes the same bytes every run: a text-only folder with a few KB of ONNX", async () => {
  const again = join(workDir, "again");
  const summary = await generateTinyMultilingualTextModel(again);
  assert.deepEqual(summary.files.map(({ path }) => path).sort(), [
    "config.json",
    "onnx/text_model.onnx",
    "tokenizer.json",
    "tokenizer_config.json",
  ]);
  for (const { path, bytes } of summary.files) {
    assert.deepEqual(await readFile(join(again, path)), await readFile(join(textDir, path)), path);
    if (path.endsWith(".onnx")) assert.ok(bytes < 32 * 1024, `${path} is ${bytes} bytes`);
  }
});

test("the text-only folder loads: 48-d text_embeds, its own context length and XLM-R's special tokens", () => {
  assert.equal(multilingual.embeddingSize, 48);
  assert.equal(multilingual.tokenizer.contextLength, 128);
  const { tokenizer } = multilingual;
  assert.notEqual(tokenizer.padId, tokenizer.endId, "<pad> is not </s>");
  const batch = tokenizer.encodeBatch(["roter Kreis", "Ein roter Kreis auf weißem Hintergrund"]);
  const first = [...batch.inputIds.slice(0, batch.sequenceLength)].map(Number);
  assert.deepEqual(first.slice(0, 4), [tokenizer.startId, first[1], first[2], tokenizer.endId]);
  assert.ok(first.slice(4).every((id) => id === tokenizer.padId));
  assert.deepEqual([...batch.attentionMask.slice(0, 5)], [1n, 1n, 1n, 1n, 0n]);
  assert.equal(multilingual.fixedSequenceLength, undefined);
  checkEmbeddingSizesMatch(multilingual, clip);
});

test("every meaningful word of every language is one token", () => {
  for (const caption of ["weißem Hintergrund", "étoile blanche", "triángulo amarillo", "cartão"]) {
    const words = caption.toLowerCase().split(" ");
    assert.equal(multilingual.tokenizer.tokens(caption).length, words.length, caption);
  }
});

test("German, French and Spanish colour-shape captions score high on the matching image and low on the others", async () => {
  const requests = SHAPE_COLOURS.flatMap((colour) =>
    SHAPE_NAMES.flatMap((shape) => [3, 141].map((index) => ({ colour, shape, index }))),
  );
  const images = await imageEmbeddings(requests);
  const rows: string[] = [];
  let worstMatch = 1;
  let bestMismatch = -1;
  for (const language of ["de", "fr", "es"] as const) {
    for (const colour of SHAPE_COLOURS) {
      for (const shape of SHAPE_NAMES) {
        const right = shapeAltPhrasings(language, colour, shape);
        const wrong = [
          ...SHAPE_COLOURS.filter((other) => other !== colour).map((other) => [other, shape]),
          ...SHAPE_NAMES.filter((other) => other !== shape).map((other) => [colour, other]),
        ].map(([c, s]) => shapeAltPhrasings(language, c as ShapeColour, s as ShapeName)[0]);
        const texts = await textEmbeddings(multilingual, [...right, ...(wrong as string[])]);
        const own = requests.flatMap((request, row) =>
          request.colour === colour && request.shape === shape ? [images[row] as Float32Array] : [],
        );
        const scores = own.map((image) => texts.map((text) => cosineSimilarity(image, text)));
        const match = Math.min(...scores.flatMap((row) => row.slice(0, right.length)));
        const mismatch = Math.max(...scores.flatMap((row) => row.slice(right.length)));
        rows.push(
          `${language} ${colour}-${shape}: match ≥ ${match.toFixed(3)}, mismatch ≤ ${mismatch.toFixed(3)}`,
        );
        worstMatch = Math.min(worstMatch, match);
        bestMismatch = Math.max(bestMismatch, mismatch);
      }
    }
  }
  const table = rows.join("\n");
  assert.ok(worstMatch > 0.3, table);
  assert.ok(bestMismatch < 0.2, table);
  const [redCircle] = await imageEmbeddings([{ colour: "red", shape: "circle", index: 42 }]);
  const [roterKreis, blauerKreis] = await textEmbeddings(multilingual, [
    "roter Kreis",
    "blauer Kreis",
  ]);
  assert.ok(cosineSimilarity(redCircle as Float32Array, roterKreis as Float32Array) > 0.9);
  assert.ok(cosineSimilarity(redCircle as Float32Array, blauerKreis as Float32Array) < 0.2);
});

test("every shape alt of every sample language embeds where the tiny CLIP model puts the English one", async () => {
  const english = (colour: ShapeColour, shape: ShapeName) =>
    shapeAltPhrasings("en", colour, shape)[0] as string;
  const pairs = SHAPE_COLOURS.flatMap((colour) => SHAPE_NAMES.map((shape) => ({ colour, shape })));
  const reference = await textEmbeddings(
    clip,
    pairs.map(({ colour, shape }) => english(colour, shape)),
  );
  const stray: string[] = [];
  for (const language of SHAPE_ALT_LANGUAGES) {
    const alts = pairs.flatMap(({ colour, shape }) => shapeAltPhrasings(language, colour, shape));
    const embedded = await textEmbeddings(multilingual, alts);
    const perPair = alts.length / pairs.length;
    embedded.forEach((embedding, row) => {
      const target = reference[Math.floor(row / perPair)] as Float32Array;
      const similarity = cosineSimilarity(embedding, target);
      if (similarity < 0.999) stray.push(`${language} "${alts[row]}": ${similarity.toFixed(3)}`);
    });
  }
  assert.deepEqual(stray, []);
});

test("a caption the model has no words for still gets a finite unit vector, far from every shape", async () => {
  const captions = [
    "",
    "Красное кожаное кресло в светлой гостиной",
    "東京の夜景",
    "Frisch gebackenes Bauernbrot auf einem Holzbrett",
  ];
  const texts = await textEmbeddings(multilingual, captions);
  const [circle] = await imageEmbeddings([{ colour: "red", shape: "circle", index: 1 }]);
  texts.forEach((text, row) => {
    assert.ok(Math.abs(cosineSimilarity(text, text) - 1) < 1e-5, captions[row]);
    assert.ok(cosineSimilarity(circle as Float32Array, text) < 0.2, captions[row]);
  });
});

test("padding to a longer caption and the attention mask leave an embedding unchanged", async () => {
  const alone = await textEmbeddings(multilingual, ["Une étoile blanche sur fond noir"]);
  const batched = await textEmbeddings(multilingual, [
    "Une étoile blanche sur fond noir",
    `Un cercle rouge ${"et encore quelques mots ".repeat(10)}`,
  ]);
  assert.deepEqual(batched[0], alone[0]);
});

test("a caption over the context length is cut to 128 tokens ending with </s>, flagged, and still embedded by its start", async () => {
  const long = `Ein roter Kreis auf weißem Hintergrund ${"und noch viele andere Wörter ".repeat(40)}`;
  const encoded = multilingual.tokenizer.encode(long);
  assert.equal(encoded.truncated, true);
  assert.equal(encoded.ids.length, 128);
  assert.equal(encoded.ids.at(-1), multilingual.tokenizer.endId);
  const embedder = new TextEmbedder(multilingual);
  const { embeddings, truncated } = await embedder.embedTexts([long, "roter Kreis"]);
  assert.deepEqual(truncated, [true, false]);
  const similarity = cosineSimilarity(embeddingRow(embeddings, 0), embeddingRow(embeddings, 1));
  assert.ok(similarity > 0.99, `long caption vs its start: ${similarity}`);
});

test("a text model whose embedding size differs from the CLIP model's is refused, naming both", async () => {
  const copy = await modelCopy();
  await editGraph(join(copy, "onnx/text_model.onnx"), (graph) => {
    const projection = graph.initializer?.find((tensor) => tensor.name === "joint_projection");
    assert.ok(projection?.dims && projection.rawData);
    const [rows, columns] = projection.dims.map(Number) as [number, number];
    const values = new Float32Array(new Uint8Array(projection.rawData).buffer);
    const narrower = new Float32Array(rows * 32);
    for (let row = 0; row < rows; row++) {
      narrower.set(values.subarray(row * columns, row * columns + 32), row * 32);
    }
    projection.dims = [rows, 32];
    projection.rawData = new Uint8Array(narrower.buffer);
    const output = graph.output?.[0]?.type?.tensorType?.shape?.dim?.[1];
    if (output) output.dimValue = 32;
  });
  const narrow = await TextModel.load(copy);
  try {
    assert.equal(narrow.embeddingSize, 32);
    assert.throws(
      () => checkEmbeddingSizesMatch(narrow, clip),
      (error: unknown) => {
        assert.ok(error instanceof ModelError);
        assert.equal(error.code, "CC_MODEL_EMBEDDING_SIZE");
        assert.equal(
          error.message,
          `text model folder ${copy}: text_embeds has 32 dimensions but the CLIP model ${clip.files.folder} embeds images in 48`,
        );
        return true;
      },
    );
  } finally {
    await narrow.release();
  }
});

test("every required file, when missing, is named with the folder; the vision files are not required", async () => {
  for (const file of [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "onnx/text_model.onnx",
  ]) {
    const copy = await modelCopy();
    await rm(join(copy, file));
    const error = await loadError(copy);
    assert.equal(error.code, "CC_MODEL_MISSING_FILE");
    assert.equal(error.message, `model folder ${copy} has no ${file}`);
  }
  const missingFolder = await loadError(join(workDir, "nowhere"));
  assert.match(missingFolder.message, /model folder .*nowhere does not exist/);
  // A CLIP folder holds a text-only one: its text tower loads on its own.
  const clipText = await TextModel.load(clipDir);
  assert.equal(clipText.tokenizer.contextLength, 77);
  await clipText.release();
});

test("a precision variant is loaded when asked for, and its absence is named", async () => {
  const copy = await modelCopy();
  const missing = await loadError(copy, { precision: "fp16" });
  assert.equal(
    missing.message,
    `model folder ${copy} has no onnx/text_model_fp16.onnx (precision fp16)`,
  );
  await copyFile(join(copy, "onnx/text_model.onnx"), join(copy, "onnx/text_model_quantized.onnx"));
  const model = await TextModel.load(copy, { precision: "quantized" });
  assert.match(model.files.textModel, /text_model_quantized\.onnx$/);
  await model.release();
});

test("a text tower without input_ids or text_embeds is refused, naming what it has", async () => {
  const renamedInput = await modelCopy();
  await editGraph(join(renamedInput, "onnx/text_model.onnx"), (graph) =>
    renameValue(graph, "input_ids", "token_ids"),
  );
  const inputError = await loadError(renamedInput);
  assert.equal(inputError.code, "CC_MODEL_INPUT");
  assert.equal(
    inputError.message,
    `${join(renamedInput, "onnx/text_model.onnx")}: expected input input_ids (+ optional attention_mask), found token_ids, attention_mask`,
  );

  const renamedOutput = await modelCopy();
  await editGraph(join(renamedOutput, "onnx/text_model.onnx"), (graph) =>
    renameValue(graph, "text_embeds", "sentence_embedding"),
  );
  const outputError = await loadError(renamedOutput);
  assert.equal(outputError.code, "CC_MODEL_OUTPUT");
  assert.match(outputError.message, /expected output text_embeds, found sentence_embedding$/);
});

test("in the sample, the shape alts of the multilingual tiers pass LAION's 0.26 exactly when they describe the image", async () => {
  const sampleDir = join(workDir, "sample");
  const wat = join(workDir, "sample.warc.wat.gz");
  await writeWatFile(wat, { seed: SAMPLE_SEED, fileIndex: 0 });
  const summary = await extract({ root: sampleDir, inputs: [wat], config: { workers: 1 } });
  assert.equal(summary.ok, true);
  const candidates = await readParquet(new LocalStorage(sampleDir), "candidates/00000.parquet");
  const shapes = candidates.filter(
    (row) =>
      String(row.url).includes(SHAPE_IMAGE_HOST) &&
      (row.language_tier === "multi" || row.language_tier === "nolang"),
  );
  assert.ok(shapes.length >= 80, `${shapes.length} shape pairs in the multilingual tiers`);
  const languages = ["de", "fr", "es", "it", "pt", "nl"].filter((language) =>
    shapes.some((row) => row.language === language),
  );
  assert.ok(languages.length >= 5, `shape alts detected in ${languages.join(", ")} only`);

  const sampled = shapes;
  const requests = sampled.map((row) => {
    const request = parseShapeImageName(String(row.url));
    assert.ok(request, String(row.url));
    return request;
  });
  const images = await imageEmbeddings(requests);
  const texts = await textEmbeddings(
    multilingual,
    sampled.map((row) => String(row.text)),
  );
  let right = 0;
  const disagreements: string[] = [];
  sampled.forEach((row, index) => {
    const { colour, shape } = requests[index] as { colour: ShapeColour; shape: ShapeName };
    const describes = SHAPE_ALT_LANGUAGES.some((language: ShapeAltLanguage) =>
      shapeAltPhrasings(language, colour, shape).includes(String(row.text)),
    );
    if (describes) right++;
    const similarity = cosineSimilarity(
      images[index] as Float32Array,
      texts[index] as Float32Array,
    );
    if (describes !== similarity >= MULTILINGUAL_THRESHOLD) {
      disagreements.push(`${row.url} "${row.text}": ${similarity.toFixed(3)}`);
    }
  });
  assert.deepEqual(disagreements, []);
  const share = right / sampled.length;
  assert.ok(share > 0.7 && share < 0.9, `right alts ${share.toFixed(2)}`);
});
