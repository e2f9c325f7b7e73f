import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, test } from "node:test";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { generateTinyClipModel } from "../src/demo/tiny-clip/generate.js";
import { ConfigError } from "../src/errors.js";
import { layout } from "../src/io/layout.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { decodeNpy, encodeNpy, NpyFormatError } from "../src/io/npy.js";
import { readParquet, writeParquet } from "../src/io/parquet.js";
import { readTarEntries, readWebdatasetSamples, type TarEntry } from "../src/io/tar-reader.js";
import { TarWriter } from "../src/io/tar-writer.js";
import { toFloat16Bits } from "../src/models/float16.js";
import { embed } from "../src/stages/embed/embed.js";
import { decodeReason } from "../src/stages/embed/embed-shard.js";
import { tempDir } from "./support/temp.js";

let workDir: string;

before(async () => {
  workDir = await tempDir("embed-units");
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

function hasNumpy(): boolean {
  try {
    execFileSync("/usr/bin/python3", ["-c", "import numpy"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

async function entriesOf(bytes: Buffer, chunkSize = 700): Promise<TarEntry[]> {
  const chunks: Buffer[] = [];
  for (let start = 0; start < bytes.length; start += chunkSize) {
    chunks.push(bytes.subarray(start, start + chunkSize));
  }
  const entries: TarEntry[] = [];
  for await (const entry of readTarEntries(Readable.from(chunks))) entries.push(entry);
  return entries;
}

async function tarOf(files: { name: string; data: Buffer }[]): Promise<Buffer> {
  const path = join(workDir, `t-${Math.random().toString(36).slice(2)}.tar`);
  const handle = await open(path, "w");
  const tar = new TarWriter(handle);
  for (const file of files) await tar.add(file.name, file.data);
  await tar.finish();
  await handle.close();
  return readFile(path);
}

test("npy: float16 and float32 matrices round-trip, headers are 64-byte aligned", () => {
  const values = Float32Array.from([0.5, -0.25, 1, 0, 0.125, -1]);
  const half = encodeNpy({ dtype: "<f2", shape: [2, 3], data: toFloat16Bits(values) });
  assert.equal((half.readUInt16LE(8) + 10) % 64, 0);
  const decodedHalf = decodeNpy(half);
  assert.equal(decodedHalf.dtype, "<f2");
  assert.deepEqual(decodedHalf.shape, [2, 3]);
  assert.deepEqual([...decodedHalf.data], [...toFloat16Bits(values)]);
  const single = decodeNpy(encodeNpy({ dtype: "<f4", shape: [6], data: values }));
  assert.deepEqual(single.shape, [6]);
  assert.deepEqual([...single.data], [...values]);
  const empty = decodeNpy(encodeNpy({ dtype: "<f4", shape: [0, 512], data: new Float32Array() }));
  assert.deepEqual(empty.shape, [0, 512]);
  assert.throws(() => decodeNpy(Buffer.from("not numpy at all")), NpyFormatError);
  assert.throws(() => decodeNpy(half.subarray(0, half.length - 2)), /needs 12/);
});

test("npy: files numpy writes read back with the same values (skipped without numpy)", async (context) => {
  if (!hasNumpy()) {
    context.skip("numpy is not installed for /usr/bin/python3");
    return;
  }
  const path = join(workDir, "numpy.npy");
  execFileSync("/usr/bin/python3", [
    "-c",
    "import sys, numpy as np; np.save(sys.argv[1], (np.arange(12, dtype=np.float32).reshape(3, 4) / 8).astype(np.float16))",
    path,
  ]);
  const array = decodeNpy(await readFile(path));
  assert.equal(array.dtype, "<f2");
  assert.deepEqual(array.shape, [3, 4]);
  assert.deepEqual(
    [...array.data],
    [...toFloat16Bits(Float32Array.from({ length: 12 }, (_, index) => index / 8))],
  );
});

test("tar reader: members come back in order with their bytes, whatever the chunking", async () => {
  const files = [
    { name: "000.jpg", data: Buffer.alloc(1000, 1) },
    { name: "000.txt", data: Buffer.from("a caption") },
    { name: "001.jpg", data: Buffer.alloc(512, 2) },
    { name: "001.txt", data: Buffer.alloc(0) },
  ];
  const tar = await tarOf(files);
  for (const chunkSize of [1, 511, 4096, tar.length]) {
    const entries = await entriesOf(tar, chunkSize);
    assert.deepEqual(
      entries.map((entry) => (entry.kind === "file" ? [entry.name, entry.data] : entry)),
      files.map((file) => [file.name, file.data]),
    );
  }
  const samples = [];
  for await (const sample of readWebdatasetSamples(readTarEntries(Readable.from([tar])))) {
    samples.push(sample);
  }
  assert.deepEqual(
    samples.map((sample) => ("key" in sample ? [sample.key, [...sample.files.keys()]] : sample)),
    [
      ["000", ["jpg", "txt"]],
      ["001", ["jpg", "txt"]],
    ],
  );
});

test("tar reader: a damaged header is reported once and the members after it are still read", async () => {
  const tar = await tarOf([
    { name: "a.jpg", data: Buffer.alloc(3000, 7) },
    { name: "a.txt", data: Buffer.from("first") },
    { name: "b.txt", data: Buffer.from("second") },
  ]);
  tar[1] = (tar[1] as number) ^ 0x20;
  const entries = await entriesOf(tar);
  assert.equal(entries[0]?.kind, "damaged");
  assert.deepEqual(
    entries.slice(1).map((entry) => (entry.kind === "file" ? entry.name : entry.kind)),
    ["a.txt", "b.txt"],
  );
  const truncated = await entriesOf(tar.subarray(0, 512 + 1000));
  assert.equal(truncated.at(-1)?.kind, "damaged");
});

test("tar reader: GNU and pax long names written by Python's tarfile are read (skipped without python3)", async (context) => {
  const path = join(workDir, "python.tar");
  const script = [
    "import io, sys, tarfile",
    "long = 'd/' + 'x' * 150 + '.txt'",
    "for fmt, name in ((tarfile.GNU_FORMAT, sys.argv[1] + '.gnu'), (tarfile.PAX_FORMAT, sys.argv[1] + '.pax')):",
    "    with tarfile.open(name, 'w', format=fmt) as tar:",
    "        for n, d in ((long, b'long'), ('short.txt', b'short')):",
    "            info = tarfile.TarInfo(n); info.size = len(d); tar.addfile(info, io.BytesIO(d))",
  ].join("\n");
  try {
    execFileSync("/usr/bin/python3", ["-c", script, path]);
  } catch {
    context.skip("/usr/bin/python3 is not available");
    return;
  }
  for (const suffix of [".gnu", ".pax"]) {
    const entries = await entriesOf(await readFile(path + suffix));
    assert.deepEqual(
      entries.map((entry) => (entry.kind === "file" ? `${entry.name}=${entry.data}` : entry.kind)),
      [`d/${"x".repeat(150)}.txt=long`, "short.txt=short"],
      suffix,
    );
  }
});

test("libvips' repeated decode reasons are kept once, so equal failures count together", () => {
  assert.equal(
    decodeReason(
      "Input buffer has corrupt header: VipsJpeg: premature end of JPEG image VipsJpeg: JPEG datastream contains no image VipsJpeg: premature end of JPEG image",
    ),
    "Input buffer has corrupt header: VipsJpeg: premature end of JPEG image VipsJpeg: JPEG datastream contains no image",
  );
});

test("embed reads a folder of webdataset tars and an image folder with .txt captions", async () => {
  const modelDir = join(workDir, "model");
  await generateTinyClipModel(modelDir);
  const tars = join(workDir, "tars");
  await mkdir(tars, { recursive: true });
  const tar = await tarOf([
    { name: "s0.jpg", data: await renderShapeImage("red", "square", 1) },
    { name: "s0.json", data: Buffer.from(JSON.stringify({ url: "https://x/0.jpg", width: 256 })) },
    { name: "s0.txt", data: Buffer.from("a red square") },
    { name: "s1.jpg", data: await renderShapeImage("blue", "star", 2) },
    { name: "s1.txt", data: Buffer.from("a green circle") },
  ]);
  await writeFile(join(tars, "part-0.tar"), tar);

  const folder = join(workDir, "folder");
  await mkdir(join(folder, "sub"), { recursive: true });
  await writeFile(join(folder, "a.png"), await renderShapeImage("yellow", "circle", 3, 128, "png"));
  await writeFile(join(folder, "a.txt"), "a yellow circle");
  await writeFile(join(folder, "sub", "b.jpg"), await renderShapeImage("purple", "triangle", 4));
  await writeFile(join(folder, "sub", "b.txt"), "a purple triangle");
  await writeFile(join(folder, "sub", "c.jpg"), Buffer.from("not an image"));

  const root = join(workDir, "inputs-root");
  const summary = await embed({
    root,
    inputs: [tars, folder],
    config: { model: modelDir, threads: 1, outputDtype: "float32" },
  });
  assert.equal(summary.ok, true, JSON.stringify(summary));
  assert.equal(summary.shards, 2);
  const storage = new LocalStorage(root);
  const fromTar = await readParquet(storage, layout.embeddingMetadata("00000"));
  assert.deepEqual(
    fromTar.map((row) => [row.key, row.caption, row.url]),
    [
      ["s0", "a red square", "https://x/0.jpg"],
      ["s1", "a green circle", null],
    ],
  );
  assert.ok((fromTar[0]?.similarity as number) > 0.3);
  assert.ok((fromTar[1]?.similarity as number) < 0.2);
  const images = decodeNpy(await storage.read(layout.imageEmbeddings("00000")));
  assert.equal(images.dtype, "<f4");
  assert.deepEqual(images.shape, [2, 48]);

  const fromFolder = await readParquet(storage, layout.embeddingMetadata("00001"));
  assert.deepEqual(
    fromFolder.map((row) => row.key),
    ["a", "sub/b"],
  );
  for (const row of fromFolder) assert.ok((row.similarity as number) > 0.3, String(row.caption));
  const failures = await readParquet(storage, layout.embeddingFailures("00001"));
  assert.deepEqual(
    failures.map((row) => [row.key, row.status]),
    [["sub/c", "failed_to_embed"]],
  );
});

test("a shard without its tar fails alone, and no model configured is a config error", async () => {
  const modelDir = join(workDir, "model-2");
  await generateTinyClipModel(modelDir);
  const root = join(workDir, "no-tar-root");
  const storage = new LocalStorage(root);
  await writeParquet(
    storage,
    layout.imageParquet("00000"),
    [
      { name: "key", type: "VARCHAR", value: () => "000000000" },
      { name: "url", type: "VARCHAR", value: () => "https://x/0.jpg" },
      { name: "caption", type: "VARCHAR", value: () => "a red circle" },
      { name: "status", type: "VARCHAR", value: () => "success" },
      { name: "error_message", type: "VARCHAR", value: () => null },
    ],
    [{}],
  );
  const summary = await embed({ root, config: { model: modelDir, threads: 1 } });
  assert.equal(summary.ok, false);
  assert.deepEqual(
    summary.failedShards.map((failed) => failed.shard),
    ["00000"],
  );
  assert.match(summary.failedShards[0]?.error ?? "", /00000\.tar: missing/);
  assert.equal(await storage.exists(layout.doneMarker("embed", "00000")), false);

  await assert.rejects(embed({ root }), (error: unknown) => {
    return error instanceof ConfigError && /embed\.model/.test(error.message);
  });
});
