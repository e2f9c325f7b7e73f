import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { MetadataValue } from "../src/formats/index/metadata-columns.js";
import {
  encodeMetadataRows,
  keyHash,
  MetadataRows,
  MetadataRowsError,
} from "../src/formats/index/metadata-rows.js";
import { tempDir } from "./support/temp.js";

const COLUMNS = ["URL", "TEXT", "WIDTH", "punsafe", "hash", "key"];

function rowsOf(segment: number, count: number): MetadataValue[][] {
  return Array.from({ length: count }, (_, row) => [
    `https://cdn${row % 7}.example.org/${segment}/photos/${row}-résumé.jpg`,
    row % 5 === 0 ? null : `Ein Bild ${row} — 写真 ${segment} "quoted" \\ slash`,
    row % 3 === 0 ? null : 100 + row,
    row / count,
    row === 1 ? "9223372036854775807" : row * 1_000_003,
    `${segment}${String(row).padStart(5, "0")}`,
  ]);
}

let folder: string;
const segments = [rowsOf(0, 1000), rowsOf(1, 31), rowsOf(2, 65)];
let paths: string[];

before(async () => {
  folder = await tempDir("metadata-rows");
  paths = [];
  for (const [index, rows] of segments.entries()) {
    const path = join(folder, `s${index}.rows`);
    await writeFile(path, encodeMetadataRows(COLUMNS, "key", rows));
    paths.push(path);
  }
});

after(async () => {
  await rm(folder, { recursive: true, force: true });
});

const open = (files = paths) =>
  MetadataRows.open(
    files.map((path, index) => ({ path, rows: (segments[index] as unknown[]).length })),
    COLUMNS,
    "key",
  );

test("every row reads back by id across blocks and segments, nulls, big integers and any script included", () => {
  const rows = open();
  try {
    const all = segments.flat();
    assert.equal(rows.rows, all.length);
    // Out of order, so blocks are read again rather than only in turn.
    for (const id of [1095, 0, 999, 1000, 1030, 1031, 31, 32, 500, 1, 1094]) {
      for (const [position, column] of COLUMNS.entries()) {
        assert.deepEqual(
          rows.value(column, id),
          (all[id] as MetadataValue[])[position],
          `${column} of ${id}`,
        );
      }
    }
    assert.equal(rows.value("no such column", 3), null);
    assert.equal(rows.has("TEXT"), true);
    assert.equal(rows.has("LANGUAGE"), false);
  } finally {
    rows.close();
  }
});

test("the rows a set of keys names are found by their hashes and checked against the key", () => {
  const rows = open();
  try {
    assert.deepEqual(
      rows.idsWithKeys(new Set(["000007", "100030", "200064", "nope", "2"])),
      [7, 1030, 1095],
    );
    assert.equal(rows.keyHashes[7], keyHash("000007"));
    assert.deepEqual(rows.idsWithKeys(new Set()), []);
  } finally {
    rows.close();
  }
});

test("a damaged or foreign rows file is refused at open with its path; a damaged block when read", async () => {
  const bytes = await readFile(paths[0] as string);
  const damaged = join(folder, "damaged.rows");
  const openOne = () => MetadataRows.open([{ path: damaged, rows: 1000 }], COLUMNS, "key");

  await writeFile(damaged, bytes.subarray(0, bytes.length - 10));
  assert.throws(
    openOne,
    (error: Error) =>
      error instanceof MetadataRowsError &&
      error.message.startsWith(`${damaged}: `) &&
      /bytes/.test(error.message),
  );

  await writeFile(damaged, bytes.subarray(0, 40));
  assert.throws(
    openOne,
    (error: Error) => error instanceof MetadataRowsError && error.message.includes(damaged),
  );

  await writeFile(damaged, Buffer.from("PAR1 not a rows file at all"));
  assert.throws(openOne, /not a clipcrawl metadata rows file/);

  const headerLength = bytes.readUInt32LE(8);
  const flippedIndex = Buffer.from(bytes);
  flippedIndex[12 + headerLength + 40] = (flippedIndex[12 + headerLength + 40] as number) ^ 0xff;
  await writeFile(damaged, flippedIndex);
  assert.throws(openOne, /checksum mismatch/);

  const flippedBlock = Buffer.from(bytes);
  flippedBlock[bytes.length - 20] = (flippedBlock[bytes.length - 20] as number) ^ 0xff;
  await writeFile(damaged, flippedBlock);
  const rows = openOne();
  try {
    assert.deepEqual(rows.value("key", 0), "000000");
    assert.throws(
      () => rows.value("key", 999),
      (error: Error) => error.message.startsWith(`${damaged}: block 31 is damaged`),
    );
  } finally {
    rows.close();
  }

  await writeFile(damaged, bytes);
  assert.throws(
    () => MetadataRows.open([{ path: damaged, rows: 999 }], COLUMNS, "key"),
    /holds 1000 rows, the manifest says 999/,
  );
  assert.throws(
    () => MetadataRows.open([{ path: damaged, rows: 1000 }], ["URL", "key"], "key"),
    /columns URL, TEXT, WIDTH, punsafe, hash, key, expected URL, key/,
  );
});

test("an empty segment writes and opens", async () => {
  const empty = join(folder, "empty.rows");
  await writeFile(empty, encodeMetadataRows(COLUMNS, "key", []));
  const rows = MetadataRows.open([{ path: empty, rows: 0 }], COLUMNS, "key");
  assert.equal(rows.rows, 0);
  assert.deepEqual(rows.idsWithKeys(new Set(["a"])), []);
  rows.close();
  assert.throws(() => encodeMetadataRows(COLUMNS, "KEY", []), /no key column KEY/);
});
