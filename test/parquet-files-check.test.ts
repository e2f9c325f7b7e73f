/**
 * checkParquetFiles, as subset runs it: the footers parsed in the SQL sandbox (external access
 * off), each sound file's rows from its footer, a footer that does not parse named.
 */
import assert from "node:assert/strict";
import { readFile, rm, writeFile } from "node:fs/promises";
import { after, before, test } from "node:test";
import { LocalStorage } from "../src/io/local-storage.js";
import { checkParquetFiles, type ParquetColumn, writeParquet } from "../src/io/parquet.js";
import { openSqlSandbox } from "../src/io/sql-sandbox.js";
import { tempDir } from "./support/temp.js";

let folder: string;
let storage: LocalStorage;
const columns: ParquetColumn<number>[] = [
  { name: "key", type: "VARCHAR", value: (n) => String(n).padStart(9, "0") },
  { name: "similarity", type: "DOUBLE", value: (n) => n / 1000 },
];

before(async () => {
  folder = await tempDir("parquet-check");
  storage = new LocalStorage(folder);
  await writeParquet(
    storage,
    "a.parquet",
    columns,
    Array.from({ length: 120 }, (_, n) => n),
  );
  await writeParquet(
    storage,
    "b.parquet",
    columns,
    Array.from({ length: 7 }, (_, n) => n),
  );
  await writeParquet(
    storage,
    "c.parquet",
    columns,
    Array.from({ length: 30 }, (_, n) => n),
  );
});

after(async () => {
  await rm(folder, { recursive: true, force: true });
});

test("footers parsed in the SQL sandbox give each file's rows; a footer that does not parse is named, the others still counted", async () => {
  const bytes = await readFile(await storage.localPath("c.parquet"));
  // The magic at both ends and the footer's length stay; the footer itself is garbage.
  const footerLength = bytes.readUInt32LE(bytes.length - 8);
  bytes.fill(0xff, bytes.length - 8 - footerLength, bytes.length - 8);
  await writeFile(await storage.localPath("c.parquet"), bytes);
  const paths = ["a.parquet", "b.parquet", "c.parquet", "missing.parquet"];
  const sandbox = await openSqlSandbox({
    readable: await Promise.all(paths.map((path) => storage.localPath(path))),
    outputFolder: folder,
  });
  try {
    const checks = await checkParquetFiles(storage, paths, sandbox.connection);
    assert.deepEqual(
      checks.map((check) => check.rows),
      [120, 7, undefined, undefined],
    );
    assert.equal(checks[0]?.damage, undefined);
    assert.equal(checks[0]?.bytes, (await storage.stat("a.parquet"))?.bytes);
    assert.match(checks[2]?.damage ?? "", /footer does not parse/);
    assert.equal(checks[3]?.damage, "missing");

    const sound = await checkParquetFiles(storage, ["a.parquet", "b.parquet"], sandbox.connection);
    assert.deepEqual(
      sound.map((check) => [check.damage, check.rows]),
      [
        [undefined, 120],
        [undefined, 7],
      ],
    );
  } finally {
    await sandbox.close();
  }
});
