import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { test } from "node:test";
import { readTarEntries, type TarEntry } from "../src/io/tar-reader.js";
import { tarHeader } from "../src/io/tar-writer.js";
import { tarHeaderClaiming, withChecksum } from "./support/hostile-inputs.js";

const BLOCK = 512;

/** A member as the tar writer lays it out: header, data, zero padding to a block. */
function member(name: string, data: Buffer, header = tarHeader(name, data.length)): Buffer {
  const padding = Buffer.alloc((BLOCK - (data.length % BLOCK)) % BLOCK);
  return Buffer.concat([header, data, padding]);
}

function withOctalSize(name: string, size: number): Buffer {
  const header = tarHeader(name, 0);
  header.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  return withChecksum(header);
}

async function entriesOf(bytes: Buffer, options?: { maxMemberBytes?: number }) {
  const chunks: Buffer[] = [];
  for (let start = 0; start < bytes.length; start += 4096) {
    chunks.push(bytes.subarray(start, start + 4096));
  }
  const entries: TarEntry[] = [];
  for await (const entry of readTarEntries(Readable.from(chunks), options)) entries.push(entry);
  return entries;
}

const shown = (entries: TarEntry[]) =>
  entries.map((entry) => (entry.kind === "file" ? entry.name : `damaged@${entry.offset}`));

const endOfArchive = Buffer.alloc(2 * BLOCK);

test("a member whose header claims 8 GB is reported once and the members after it are read", async () => {
  const before = member("a.txt", Buffer.from("first"));
  const bomb = member("b.jpg", Buffer.alloc(300, 9), tarHeaderClaiming("b.jpg", 8n * 1024n ** 3n));
  const tar = Buffer.concat([
    before,
    bomb,
    member("b.txt", Buffer.from("caption of b")),
    member("c.jpg", Buffer.alloc(2000, 3)),
    member("c.txt", Buffer.from("third")),
    endOfArchive,
  ]);
  const entries = await entriesOf(tar);
  assert.deepEqual(shown(entries), [
    "a.txt",
    `damaged@${before.length}`,
    "b.txt",
    "c.jpg",
    "c.txt",
  ]);
  const damaged = entries[1] as Extract<TarEntry, { kind: "damaged" }>;
  assert.match(damaged.message, /b\.jpg claims 8589934592 bytes, over the limit of \d+/);
  assert.equal((entries[3] as Extract<TarEntry, { kind: "file" }>).data.length, 2000);
});

test("a member claiming more than the tar holds resumes at the next header inside what it took", async () => {
  const before = member("a.txt", Buffer.from("first"));
  // 20 KB claimed, under the limit, but only 300 bytes are there before the next header.
  const liar = member("b.jpg", Buffer.alloc(300, 9), withOctalSize("b.jpg", 20_000));
  const tar = Buffer.concat([
    before,
    liar,
    member("b.txt", Buffer.from("caption of b")),
    member("c.txt", Buffer.from("third")),
    endOfArchive,
  ]);
  const entries = await entriesOf(tar);
  assert.deepEqual(shown(entries), ["a.txt", `damaged@${before.length}`, "b.txt", "c.txt"]);
});

test("a member that swallows the headers of the members after it gives them back", async () => {
  const before = member("a.txt", Buffer.from("first"));
  const after = Array.from({ length: 40 }, (_, index) =>
    member(`s${index}.txt`, Buffer.alloc(600, index)),
  );
  // Claims 10 KB while its own bytes are 300: the next members lie inside the claimed size.
  const liar = member("b.jpg", Buffer.alloc(300, 9), withOctalSize("b.jpg", 10_000));
  const tar = Buffer.concat([before, liar, ...after, endOfArchive]);
  const entries = await entriesOf(tar);
  assert.deepEqual(shown(entries), [
    "a.txt",
    `damaged@${before.length}`,
    ...after.map((_, index) => `s${index}.txt`),
  ]);
});

test("the reader never holds more than the member limit, whatever a header claims", async () => {
  const tar = Buffer.concat([
    member("a.bin", Buffer.alloc(64 * 1024, 1)),
    member("b.txt", Buffer.from("small")),
    endOfArchive,
  ]);
  const entries = await entriesOf(tar, { maxMemberBytes: 16 * 1024 });
  assert.deepEqual(shown(entries), ["damaged@0", "b.txt"]);
});

test("a tar cut inside a member still ends with one damaged entry", async () => {
  const tar = Buffer.concat([
    member("a.txt", Buffer.from("first")),
    member("b.bin", Buffer.alloc(5000, 1)),
  ]);
  const entries = await entriesOf(tar.subarray(0, tar.length - 3000));
  assert.deepEqual(shown(entries), ["a.txt", "damaged@1024"]);
});

test("a zeroed header in the middle is reported once and the members after it are read; zeros to the end are the end", async () => {
  const before = Buffer.concat([
    member("a.txt", Buffer.from("first")),
    member("a.jpg", Buffer.alloc(700, 1)),
  ]);
  const zeroed = member("b.jpg", Buffer.alloc(300, 9));
  zeroed.fill(0, 0, BLOCK);
  const tar = Buffer.concat([
    before,
    zeroed,
    member("b.txt", Buffer.from("caption of b")),
    member("c.txt", Buffer.from("third")),
    endOfArchive,
    Buffer.alloc(10 * BLOCK),
  ]);
  assert.deepEqual(shown(await entriesOf(tar)), [
    "a.txt",
    "a.jpg",
    `damaged@${before.length}`,
    "b.txt",
    "c.txt",
  ]);
});
