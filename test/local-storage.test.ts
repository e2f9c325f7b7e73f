import assert from "node:assert/strict";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { LocalStorage } from "../src/io/local-storage.js";
import { digestOf, ShardState } from "../src/shard/shard-state.js";

async function storage(): Promise<LocalStorage> {
  return new LocalStorage(await mkdtemp(join(tmpdir(), "clipcrawl-storage-")));
}

test("an atomic write creates folders and leaves no temporary file behind", async () => {
  const store = await storage();
  await store.writeAtomic("a/b/c.json", "{}");
  assert.equal(await store.readText("a/b/c.json"), "{}");
  assert.deepEqual(await readdir(join(store.root, "a/b")), ["c.json"]);
});

test("a writer that fails leaves neither the target nor a temporary file", async () => {
  const store = await storage();
  await assert.rejects(
    store.writeAtomicWith("out/x.parquet", async () => {
      throw new Error("disk full");
    }),
    /disk full/,
  );
  assert.equal(await store.exists("out/x.parquet"), false);
  assert.deepEqual(await readdir(join(store.root, "out")), []);
});

test("paths outside the dataset root are refused", async () => {
  const store = await storage();
  await assert.rejects(store.writeAtomic("../escape.txt", "x"), /outside the dataset root/);
});

test("a done marker counts only for the same input digest and while its outputs are intact", async () => {
  const store = await storage();
  const state = new ShardState(store, "extract");
  await store.writeAtomic("candidates/00000.parquet", "12345");
  const digest = digestOf({ input: "a", config: { b: 1 } });
  await state.markDone({
    shard: "00000",
    inputDigest: digest,
    outputs: [{ path: "candidates/00000.parquet", bytes: 5 }],
    counts: {},
  });
  assert.ok(await state.findDone("00000", digest));
  assert.equal(await state.findDone("00000", digestOf({ input: "b" })), undefined);
  await store.writeAtomic("candidates/00000.parquet", "123");
  assert.equal(await state.findDone("00000", digest), undefined, "a changed output is redone");
});

test("digests do not depend on key order", () => {
  assert.equal(
    digestOf({ a: 1, b: [1, { c: 2, d: 3 }] }),
    digestOf({ b: [1, { d: 3, c: 2 }], a: 1 }),
  );
  assert.notEqual(digestOf({ a: 1 }), digestOf({ a: 2 }));
});
