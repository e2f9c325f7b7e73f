import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { locateClipModelFiles } from "../src/models/model-files.js";
import { ClipTokenizer } from "../src/models/tokenizer.js";
import { tempDir } from "./support/temp.js";

let workDir: string;
let tokenizer: ClipTokenizer;

before(async () => {
  workDir = await tempDir("clip-tokenizer");
  await generateTinyClipModel(join(workDir, "model"));
  tokenizer = await ClipTokenizer.load(await locateClipModelFiles(join(workDir, "model")));
});

after(() => rm(workDir, { recursive: true, force: true }));

test("captions are lower-cased, split as CLIP splits words, and marked with </w>", () => {
  assert.deepEqual(tokenizer.tokens("A  Red\tCircle!"), [
    "a</w>",
    "red</w>",
    "circle</w>",
    "!</w>",
  ]);
});

test("encoding wraps a caption in start and end tokens, and decoding gives the normalised text back", () => {
  const captions = [
    "a red circle on a white background",
    "Woman in a yellow raincoat walking her dog in the park",
    "Crème brûlée, 3 spoons & a zebra's 🦓 snack",
    "東京の夜景",
  ];
  for (const caption of captions) {
    const { ids, truncated } = tokenizer.encode(caption);
    assert.equal(truncated, false);
    assert.equal(ids[0], tokenizer.startId);
    assert.equal(ids.at(-1), tokenizer.endId);
    const expected = caption.toLowerCase().replace(/\s+/g, " ");
    // Words come back separated by spaces (CLIP's decoder puts one after every </w>).
    assert.equal(tokenizer.decode(ids).replace(/\s+/g, ""), expected.replace(/\s+/g, ""), caption);
  }
  assert.equal(tokenizer.decode(tokenizer.encode("a red circle").ids), "a red circle");
});

test("a caption over the context length is cut to 77 tokens that still end with the end token", () => {
  const words = Array.from({ length: 120 }, (_, index) => (index % 2 ? "red" : "circle"));
  const { ids, truncated } = tokenizer.encode(words.join(" "));
  assert.equal(truncated, true);
  assert.equal(ids.length, tokenizer.contextLength);
  assert.equal(ids[0], tokenizer.startId);
  assert.equal(ids.at(-1), tokenizer.endId);
  assert.equal(tokenizer.decode(ids), words.slice(0, tokenizer.contextLength - 2).join(" "));

  const exact = Array.from({ length: tokenizer.contextLength - 2 }, () => "red").join(" ");
  assert.equal(tokenizer.encode(exact).truncated, false);
  assert.equal(tokenizer.encode(`${exact} red`).truncated, true);
});

test("a batch is padded with the pad token to its longest caption, with an attention mask", () => {
  const batch = tokenizer.encodeBatch(["red", "a red circle", ""]);
  assert.equal(batch.batchSize, 3);
  assert.equal(batch.sequenceLength, 5);
  const row = (values: BigInt64Array, index: number) =>
    Array.from(values.subarray(index * 5, index * 5 + 5), Number);
  assert.deepEqual(row(batch.attentionMask, 0), [1, 1, 1, 0, 0]);
  assert.deepEqual(row(batch.attentionMask, 2), [1, 1, 0, 0, 0]);
  assert.equal(row(batch.inputIds, 0)[4], tokenizer.padId);
  assert.deepEqual(batch.truncated, [false, false, false]);
  assert.equal(tokenizer.encodeBatch(["red"], 77).sequenceLength, 77);
});
