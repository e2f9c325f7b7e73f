import assert from "node:assert/strict";
import { open, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { decodeNpy, encodeNpy, NpyFormatError } from "../src/io/npy.js";
import { copyNpyWithoutRows, readNpyFileHeader } from "../src/io/npy-file.js";
import { copyTarRanges, readTarMemberRanges } from "../src/io/tar-ranges.js";
import { TarWriter, tarHeader } from "../src/io/tar-writer.js";
import { tempDir } from "./support/temp.js";

let work: string;

before(async () => {
  work = await tempDir("io-rewrites");
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

async function writeTar(name: string, files: { name: string; data: Buffer }[]): Promise<string> {
  const path = join(work, name);
  const handle = await open(path, "w");
  const tar = new TarWriter(handle);
  for (const file of files) await tar.add(file.name, file.data);
  await tar.finish();
  await handle.close();
  return path;
}

const members = (keys: string[]) =>
  keys.flatMap((key) => [
    { name: `${key}.jpg`, data: Buffer.alloc(600 + Number(key), Number(key)) },
    { name: `${key}.txt`, data: Buffer.from(`caption ${key}`) },
  ]);

test("an .npy copy without some rows keeps the others in order, under a header that says so", async () => {
  const source = join(work, "matrix.npy");
  const values = Float32Array.from({ length: 5 * 3 }, (_, index) => index);
  await writeFile(source, encodeNpy({ dtype: "<f4", shape: [5, 3], data: values }));
  assert.deepEqual(await readNpyFileHeader(source), {
    dtype: "<f4",
    shape: [5, 3],
    dataOffset: 128,
  });

  const target = join(work, "kept.npy");
  assert.deepEqual(await copyNpyWithoutRows(source, target, new Set([1, 3])), {
    rowsBefore: 5,
    rowsAfter: 3,
  });
  const kept = decodeNpy(await readFile(target));
  assert.deepEqual(kept.shape, [3, 3]);
  assert.deepEqual([...kept.data], [0, 1, 2, 6, 7, 8, 12, 13, 14]);
  // The same bytes the in-memory writer gives for those rows.
  assert.deepEqual(
    await readFile(target),
    encodeNpy({ dtype: "<f4", shape: [3, 3], data: Float32Array.from(kept.data) }),
  );
});

test("a file that is not .npy, or ends before its data does, is one NpyFormatError", async () => {
  const notNpy = join(work, "not.npy");
  await writeFile(notNpy, "hello, not an array");
  await assert.rejects(readNpyFileHeader(notNpy), NpyFormatError);
  const cut = join(work, "cut.npy");
  const whole = encodeNpy({ dtype: "<f2", shape: [4, 2], data: new Uint16Array(8) });
  await writeFile(cut, whole.subarray(0, whole.length - 3));
  await assert.rejects(
    copyNpyWithoutRows(cut, join(work, "cut-out.npy"), new Set([0])),
    (error: unknown) => error instanceof NpyFormatError && /ends early/.test(error.message),
  );
});

test("a plain tar's members are found from their headers; copied as byte ranges they give the tar the writer would", async () => {
  const source = await writeTar("all.tar", members(["1", "2", "3", "4"]));
  const ranges = await readTarMemberRanges(source);
  assert.deepEqual(
    ranges?.map((range) => range.name),
    ["1.jpg", "1.txt", "2.jpg", "2.txt", "3.jpg", "3.txt", "4.jpg", "4.txt"],
  );
  const kept = (ranges ?? []).filter((range) => !range.name.startsWith("2."));
  const copy = join(work, "copy.tar");
  const handle = await open(copy, "w");
  const tar = new TarWriter(handle);
  await copyTarRanges(source, kept, tar);
  await tar.finish();
  await handle.close();
  const expected = await writeTar("expected.tar", members(["1", "3", "4"]));
  assert.deepEqual(await readFile(copy), await readFile(expected));
});

test("a tar that is not plain (damaged header, member cut short, pax header) has no ranges: it is read member by member", async () => {
  const bytes = await readFile(await writeTar("plain.tar", members(["1", "2"])));
  const damaged = Buffer.from(bytes);
  const second = damaged.indexOf("1.txt");
  damaged[second] = (damaged[second] as number) ^ 1;
  // A valid pax header (type x, checksum right) before the members.
  const paxHeader = tarHeader("PaxHeader", 0);
  paxHeader.fill(0x20, 148, 156);
  paxHeader[156] = "x".charCodeAt(0);
  const sum = paxHeader.reduce((total, byte) => total + byte, 0);
  paxHeader.write(`${sum.toString(8).padStart(6, "0")}\u0000 `, 148, "latin1");
  const pax = Buffer.concat([paxHeader, bytes]);
  for (const [name, content] of [
    ["damaged.tar", damaged],
    ["cut.tar", bytes.subarray(0, 1024 + 100)],
    ["pax.tar", pax],
  ] as const) {
    await writeFile(join(work, name), content);
    assert.equal(await readTarMemberRanges(join(work, name)), undefined, name);
  }
});
