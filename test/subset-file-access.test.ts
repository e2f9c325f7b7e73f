/**
 * `subset --where` is SQL from whoever wrote the condition: it reads the dataset's shards and
 * nothing else. A FIFO outside the root catches any open (a reader's open blocks until a writer
 * comes, and the test sees it as a reader and answers); a canary file outside the root catches
 * any of its contents in an error message.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { constants, existsSync } from "node:fs";
import { mkdir, open, readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { subset } from "../src/stages/subset/subset.js";
import { runCli } from "./support/cli.js";
import { writeDatasetRoot } from "./support/dataset-root.js";
import { tempDir } from "./support/temp.js";

const CANARY_LINE = "canary-user:x:4242:4242:do not show:/home/canary:/bin/sh";

let work: string;
let root: string;
let outside: string;
let fifo: string;
let canary: string;

before(async () => {
  work = await tempDir("subset-access");
  root = join(work, "root");
  await writeDatasetRoot(root, { shards: 2, perShard: 10 });
  outside = join(work, "outside");
  await mkdir(outside);
  fifo = join(outside, "trap.fifo");
  execFileSync("mkfifo", [fifo]);
  canary = join(outside, "passwd");
  await writeFile(canary, `${CANARY_LINE}\n12345\n`);
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * Runs `work` while watching the FIFO: when anything opens it for reading, the watcher opens it
 * for writing (which succeeds only then), writes a number and closes, so the reader goes on.
 */
async function watchingFifo<T>(work: () => Promise<T>): Promise<{ opened: boolean; result: T }> {
  let opened = false;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      try {
        const handle = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        opened = true;
        await handle.write("7\n").catch(() => {});
        await handle.close();
      } catch {
        // ENXIO: no reader has it open.
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  try {
    const result = await work();
    return { opened, result };
  } finally {
    watching = false;
    await watcher;
  }
}

async function whereFailure(where: string): Promise<string> {
  try {
    await subset({ root, where, output: join(work, "not-made", "out.parquet") });
  } catch (error) {
    return (error as Error).message;
  }
  return "(ran)";
}

test("--where never opens a file outside the root, whether the condition is run or refused", async () => {
  const openedBy: string[] = [];
  const notRefused: string[] = [];
  for (const where of [
    `similarity > (SELECT count(*) FROM read_csv('${fifo}', header = false))`,
    `similarity < (SELECT count(*) FROM read_parquet('${fifo}'))`,
    `TRUE) UNION ALL (SELECT * FROM read_csv('${fifo}')`,
  ]) {
    const { opened, result } = await watchingFifo(() => whereFailure(where));
    if (opened) openedBy.push(where);
    else if (!where.startsWith("TRUE)") && !/disabled by configuration/.test(result)) {
      notRefused.push(`${where}: ${result}`);
    }
  }
  assert.deepEqual(openedBy, [], "these conditions opened the file outside the root");
  assert.deepEqual(notRefused, [], "these conditions were not refused for want of access");
});

test("--where errors show nothing of a file outside the root, and DuckDB says access is off", async () => {
  const shown: string[] = [];
  const notRefused: string[] = [];
  for (const where of [
    `similarity > CAST((SELECT content FROM read_text('${canary}')) AS DOUBLE)`,
    `similarity > (SELECT column0 FROM read_csv('${canary}', header = false, delim = '|') LIMIT 1)::DOUBLE`,
    `TEXT = (SELECT content FROM read_blob('${canary}'))`,
    `similarity > (SELECT count(*) FROM glob('${outside}/*'))`,
    `TRUE) UNION ALL (SELECT * FROM read_csv('${canary}')`,
  ]) {
    const message = await whereFailure(where);
    if (message.includes("canary-user")) shown.push(message);
    else if (
      !where.startsWith("TRUE)") &&
      !/^--where.*Permission Error: .*disabled by configuration/s.test(message)
    ) {
      notRefused.push(`${where}: ${message}`);
    }
  }
  assert.deepEqual(shown, [], "these errors showed the file outside the root");
  assert.equal(
    existsSync(join(work, "not-made")),
    false,
    "a refused condition made the output folder",
  );
  assert.deepEqual(notRefused, [], "these conditions were not refused for want of access");
  const cli = await runCli([
    "subset",
    "--root",
    root,
    "-o",
    join(work, "cli.csv"),
    "--where",
    `similarity > CAST((SELECT content FROM read_text('${canary}')) AS DOUBLE)`,
  ]);
  assert.equal(cli.code, 1);
  assert.ok(!cli.stderr.includes("canary-user"), cli.stderr);
  assert.match(cli.stderr, /clipcrawl: --where.*disabled by configuration/);
});

test("a condition over the dataset's own shards still runs, and no scratch folder is left", async () => {
  const shard = join(root, "dataset", "00000.parquet");
  const summary = await subset({
    root,
    where: `similarity >= (SELECT min(similarity) FROM read_parquet('${shard}'))`,
    output: join(work, "made", "kept.csv"),
  });
  assert.ok(summary.rows > 0);
  assert.ok(existsSync(join(work, "made", "kept.csv")));
  const left = [...(await readdir(work)), ...(await readdir(join(work, "made")))].filter((name) =>
    name.startsWith(".clipcrawl-sql-"),
  );
  assert.deepEqual(left, []);
});
