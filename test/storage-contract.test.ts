/**
 * The DatasetStorage contract, checked on both roots: a local folder, and an s3:// prefix on an
 * S3-compatible server (s3rver) that the test starts on 127.0.0.1. Stages rely on every guarantee
 * here without knowing which root they write to.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { after, before, describe, test } from "node:test";
import { fileIdentity } from "../src/io/file-info.js";
import { LocalFileCache } from "../src/io/local-file-cache.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { localRootOf, openRoot, s3OptionsFromEnv } from "../src/io/open-root.js";
import { acquireRootLock } from "../src/io/root-lock.js";
import { S3Storage, type S3StorageOptions } from "../src/io/s3-storage.js";
import type { DatasetStorage } from "../src/io/storage.js";
import { faultyProxy, startS3Server, type TestS3Server } from "./support/s3-server.js";
import { tempDir } from "./support/temp.js";

const MIB = 1024 * 1024;

interface Backend {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A storage on a fresh, empty root. */
  fresh(options?: S3StorageOptions): Promise<DatasetStorage>;
}

const cleanups: (() => Promise<void>)[] = [];
let s3: TestS3Server;
let roots = 0;

const backends: Backend[] = [
  {
    name: "a local root",
    start: async () => {},
    stop: async () => {},
    fresh: async () => {
      const folder = await tempDir("contract");
      cleanups.push(() => rm(folder, { recursive: true, force: true }));
      return new LocalStorage(folder);
    },
  },
  {
    name: "an s3:// root",
    start: async () => {
      s3 = await startS3Server();
    },
    stop: async () => s3.close(),
    fresh: (options = {}) => freshS3(options),
  },
];

async function freshS3(options: S3StorageOptions = {}): Promise<S3Storage> {
  const cacheDir = await tempDir("s3-cache");
  cleanups.push(() => rm(cacheDir, { recursive: true, force: true }));
  return new S3Storage(`s3://${s3.bucket}/runs/root-${++roots}`, {
    endpoint: s3.endpoint,
    cacheDir,
    ...options,
  });
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

after(async () => {
  for (const cleanup of cleanups) await cleanup();
});

for (const backend of backends) {
  describe(`the storage contract on ${backend.name}`, () => {
    before(() => backend.start());
    after(() => backend.stop());

    test("a written file reads back whole, as bytes, text, a stream and a local file", async () => {
      const store = await backend.fresh();
      const bytes = randomBytes(70_000);
      await store.writeAtomic("a/b/data.bin", bytes);
      await store.writeAtomic("a/note.txt", "héllo");
      assert.equal(await store.exists("a/b/data.bin"), true);
      assert.deepEqual(await store.read("a/b/data.bin"), bytes);
      assert.equal(await store.readText("a/note.txt"), "héllo");
      assert.deepEqual(await collect(store.openRead("a/b/data.bin")), bytes);
      assert.deepEqual(await readFile(await store.localPath("a/b/data.bin")), bytes);
      const info = await store.stat("a/b/data.bin");
      assert.equal(info?.bytes, bytes.length);
      assert.equal(info?.path, "a/b/data.bin");
      assert.ok((info?.modified ?? 0) > Date.now() - 10 * 60_000, "a recent modification time");
    });

    test("a missing file: exists and stat say so, reads fail with ENOENT, a folder is not a file", async () => {
      const store = await backend.fresh();
      await store.writeAtomic("folder/inside.txt", "x");
      assert.equal(await store.exists("missing.txt"), false);
      assert.equal(await store.stat("missing.txt"), undefined);
      assert.equal(await store.stat("folder"), undefined);
      await assert.rejects(async () => store.read("missing.txt"), { code: "ENOENT" });
      await assert.rejects(collect(store.openRead("missing.txt")), { code: "ENOENT" });
      await assert.rejects(store.readRange("missing.txt", 0, 10), { code: "ENOENT" });
      assert.deepEqual(await store.list("no-such-folder"), []);
    });

    test("readRange returns the bytes asked for, fewer at the end, none past it", async () => {
      const store = await backend.fresh();
      const bytes = randomBytes(1000);
      await store.writeAtomic("r.bin", bytes);
      assert.deepEqual(await store.readRange("r.bin", 100, 50), bytes.subarray(100, 150));
      assert.deepEqual(await store.readRange("r.bin", 990, 50), bytes.subarray(990));
      assert.equal((await store.readRange("r.bin", 1000, 10)).length, 0);
      assert.equal((await store.readRange("r.bin", 5000, 10)).length, 0);
      assert.equal((await store.readRange("r.bin", 0, 0)).length, 0);
    });

    test("list gives the files directly in a folder, sorted, not those of its subfolders", async () => {
      const store = await backend.fresh();
      for (const path of ["f/b.json", "f/a.json", "f/sub/c.json", "f2/d.json", "top.json"]) {
        await store.writeAtomic(path, "{}");
      }
      assert.deepEqual(await store.list("f"), ["a.json", "b.json"]);
      assert.deepEqual(await store.list("f/"), ["a.json", "b.json"]);
      assert.deepEqual(await store.list("f/sub"), ["c.json"]);
      assert.deepEqual(await store.list("."), ["top.json"]);
    });

    test("listFolders gives the folders directly in a folder, sorted, and none of a missing one", async () => {
      const store = await backend.fresh();
      for (const path of ["idx/s2/a.bin", "idx/s1/b.bin", "idx/s1/deep/c.bin", "idx/file.json"]) {
        await store.writeAtomic(path, "{}");
      }
      assert.deepEqual(await store.listFolders("idx"), ["s1", "s2"]);
      assert.deepEqual(await store.listFolders("idx/s1"), ["deep"]);
      assert.deepEqual(await store.listFolders("idx/s2"), []);
      assert.deepEqual(await store.listFolders("no-such-folder"), []);
      await store.remove("idx/s2");
      assert.deepEqual(await store.listFolders("idx"), ["s1"]);
    });

    test("list pages through more than 1000 files", async () => {
      const store = await backend.fresh();
      const names = Array.from(
        { length: 1013 },
        (_, index) => `${String(index).padStart(5, "0")}.json`,
      );
      for (let start = 0; start < names.length; start += 32) {
        await Promise.all(
          names.slice(start, start + 32).map((name) => store.writeAtomic(`_state/x/${name}`, "1")),
        );
      }
      assert.deepEqual(await store.list("_state/x"), names);
    });

    test("a file being written is invisible until it is whole, and a failed writer leaves nothing", async () => {
      const store = await backend.fresh();
      const bytes = randomBytes(300_000);
      await store.writeAtomicWith("out/shard.parquet", async (local) => {
        await writeFile(local, bytes.subarray(0, 1000));
        assert.equal(await store.exists("out/shard.parquet"), false);
        assert.deepEqual(await store.list("out"), []);
        await writeFile(local, bytes);
      });
      assert.deepEqual(await store.read("out/shard.parquet"), bytes);
      await assert.rejects(
        store.writeAtomicWith("out/other.parquet", async (local) => {
          await writeFile(local, "part");
          throw new Error("disk full");
        }),
        /disk full/,
      );
      assert.equal(await store.exists("out/other.parquet"), false);
      assert.deepEqual(await store.list("out"), ["shard.parquet"]);
    });

    test("a rewrite (a retried job) replaces the file whole and changes its identity", async () => {
      const store = await backend.fresh();
      await store.writeAtomic("s.json", "first version, longer");
      const before = await fileIdentity(store, "s.json");
      const firstLocal = await readFile(await store.localPath("s.json"), "utf8");
      await new Promise((resolve) => setTimeout(resolve, 5));
      await store.writeAtomic("s.json", "second version, longer");
      assert.equal(await store.readText("s.json"), "second version, longer");
      assert.notDeepEqual(await fileIdentity(store, "s.json"), before);
      assert.equal(firstLocal, "first version, longer");
      assert.equal(
        await readFile(await store.localPath("s.json"), "utf8"),
        "second version, longer",
      );
    });

    test("a file larger than the multipart threshold goes up whole", async () => {
      const store = await backend.fresh({ multipartBytes: 5 * MIB, partBytes: 5 * MIB });
      const bytes = randomBytes(12 * MIB);
      await store.writeAtomicWith("images/00000.tar", (local) => writeFile(local, bytes));
      assert.equal((await store.stat("images/00000.tar"))?.bytes, bytes.length);
      assert.equal(sha256(await store.read("images/00000.tar")), sha256(bytes));
      await store.writeAtomic("images/00001.tar", bytes);
      assert.equal(sha256(await store.read("images/00001.tar")), sha256(bytes));
    });

    test("a copy keeps what the file held, whatever later happens to the file", async () => {
      const store = await backend.fresh();
      await store.writeAtomic("dataset/00000.parquet", "version 1");
      await store.copy("dataset/00000.parquet", "_versions/v1/00000.parquet");
      await store.writeAtomic("dataset/00000.parquet", "version 2");
      assert.equal(await store.readText("_versions/v1/00000.parquet"), "version 1");
      await store.remove("dataset/00000.parquet");
      assert.equal(await store.readText("_versions/v1/00000.parquet"), "version 1");
      await assert.rejects(store.copy("dataset/missing.parquet", "x.parquet"));
      assert.equal(await store.exists("x.parquet"), false);
    });

    test("remove takes a file or a whole folder, and nothing to remove is no error", async () => {
      const store = await backend.fresh();
      for (const path of ["images/00000/a.jpg", "images/00000/b.jpg", "images/00000.parquet"]) {
        await store.writeAtomic(path, "x");
      }
      await store.remove("images/00000");
      assert.deepEqual(await store.list("images/00000"), []);
      assert.deepEqual(await store.list("images"), ["00000.parquet"]);
      await store.remove("images/00000.parquet");
      assert.equal(await store.exists("images/00000.parquet"), false);
      await store.remove("never/written.txt");
    });

    test("paths that leave the root are refused", async () => {
      const store = await backend.fresh();
      await assert.rejects(
        async () => store.writeAtomic("../escape.txt", "x"),
        /outside the dataset root/,
      );
      await assert.rejects(
        async () => store.read("a/../../escape.txt"),
        /outside the dataset root/,
      );
    });
  });
}

describe("object storage beyond the common contract", () => {
  before(async () => {
    s3 = await startS3Server("clipcrawl-s3-only");
  });
  after(() => s3.close());

  test("describe names the object by its s3:// URL", async () => {
    const store = await freshS3();
    assert.match(store.root, /^s3:\/\/clipcrawl-s3-only\/runs\/root-\d+$/);
    assert.equal(
      store.describe("candidates/00000.parquet"),
      `${store.root}/candidates/00000.parquet`,
    );
    assert.equal(store.describe("."), store.root);
  });

  test("a multipart upload cut mid-way leaves nothing visible, and the old version intact", async () => {
    const direct = await freshS3();
    await direct.writeAtomic("images/00000.tar", "the previous shard");
    const proxy = await faultyProxy(s3.endpoint, (request) =>
      /[?&]partNumber=2(&|$)/.test(request.url ?? "") ? "cut" : "pass",
    );
    try {
      const throughProxy = new S3Storage(direct.root, {
        endpoint: proxy.endpoint,
        multipartBytes: 5 * MIB,
        partBytes: 5 * MIB,
        maxAttempts: 2,
        cacheDir: await tempDir("s3-cache"),
      });
      await assert.rejects(
        throughProxy.writeAtomicWith("images/00000.tar", (local) =>
          writeFile(local, randomBytes(12 * MIB)),
        ),
        (error: Error) => error.message.startsWith(`${direct.root}/images/00000.tar: `),
      );
      await assert.rejects(
        throughProxy.writeAtomicWith("images/00001.tar", (local) =>
          writeFile(local, randomBytes(11 * MIB)),
        ),
      );
      assert.ok(proxy.cut >= 2, "the second part was cut on every attempt");
    } finally {
      await proxy.close();
    }
    assert.equal(await direct.readText("images/00000.tar"), "the previous shard");
    assert.equal(await direct.exists("images/00001.tar"), false);
    assert.deepEqual(await direct.list("images"), ["00000.tar"]);
  });

  test("an object whose parts are all up is not visible until the upload completes", async () => {
    const direct = await freshS3();
    let release = () => {};
    let held = () => {};
    const completing = new Promise<void>((resolve) => {
      held = resolve;
    });
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const proxy = await faultyProxy(s3.endpoint, (request) => {
      if (request.method === "POST" && /[?&]uploadId=/.test(request.url ?? "")) {
        held();
        return gate;
      }
      return "pass";
    });
    try {
      const throughProxy = new S3Storage(direct.root, {
        endpoint: proxy.endpoint,
        multipartBytes: 5 * MIB,
        partBytes: 5 * MIB,
        cacheDir: await tempDir("s3-cache"),
      });
      const bytes = randomBytes(11 * MIB);
      const writing = throughProxy.writeAtomic("embeddings/img_emb/img_emb_00000.npy", bytes);
      await completing;
      assert.equal(await direct.exists("embeddings/img_emb/img_emb_00000.npy"), false);
      assert.deepEqual(await direct.list("embeddings/img_emb"), []);
      release();
      await writing;
      assert.equal(
        sha256(await direct.read("embeddings/img_emb/img_emb_00000.npy")),
        sha256(bytes),
      );
    } finally {
      release();
      await proxy.close();
    }
  });

  test("the local cache stays within its bound, evicting the least recently used files", async () => {
    const cacheDir = await tempDir("s3-cache");
    const store = new S3Storage(`s3://${s3.bucket}/runs/cache-${++roots}`, {
      endpoint: s3.endpoint,
      cacheDir,
      cacheBytes: 350_000,
      cacheGraceMs: 0,
    });
    const files = Array.from({ length: 5 }, (_, index) => `dataset/0000${index}.parquet`);
    const contents = files.map(() => randomBytes(100_000));
    for (const [index, file] of files.entries())
      await store.writeAtomic(file, contents[index] as Buffer);
    const first = await store.localPath(files[0] as string);
    for (const file of files.slice(1)) {
      await store.localPath(file);
      await store.localPath(files[0] as string); // kept in use: the most recent each time
    }
    const cache = new LocalFileCache({ folder: cacheDir, maxBytes: 0 });
    const entries = await cache.entries();
    const total = entries.reduce((sum, entry) => sum + entry.bytes, 0);
    assert.ok(total <= 350_000, `the cache holds ${total} bytes`);
    assert.equal(entries.length, 3);
    assert.ok(
      entries.some((entry) => entry.path === first),
      "the file used most is still there",
    );
    assert.ok(entries.some((entry) => entry.path.endsWith("00004.parquet")));
    // An evicted file comes back, whole, on its next use.
    assert.deepEqual(await readFile(await store.localPath(files[1] as string)), contents[1]);
  });

  test("files used within the grace period are kept past the bound, for readers about to open them", async () => {
    const cacheDir = await tempDir("s3-cache");
    const store = new S3Storage(`s3://${s3.bucket}/runs/cache-${++roots}`, {
      endpoint: s3.endpoint,
      cacheDir,
      cacheBytes: 150_000,
    });
    const paths: string[] = [];
    for (const index of [0, 1, 2]) {
      await store.writeAtomic(`f${index}.bin`, randomBytes(100_000));
      paths.push(await store.localPath(`f${index}.bin`));
    }
    for (const path of paths) assert.equal((await readFile(path)).length, 100_000);
  });

  test("a missing bucket and a store that does not answer each give one line naming the URL and the fix", async () => {
    const missing = new S3Storage("s3://no-such-bucket-here/root", {
      endpoint: s3.endpoint,
      maxAttempts: 1,
    });
    await assert.rejects(missing.writeAtomic("clipcrawl.json", "{}"), (error: Error) => {
      assert.match(
        error.message,
        /^s3:\/\/no-such-bucket-here\/root\/clipcrawl\.json: the bucket does not exist/,
      );
      assert.doesNotMatch(error.message, /\n/);
      return true;
    });
    const down = await faultyProxy(s3.endpoint, () => "pass");
    const endpoint = down.endpoint;
    await down.close();
    const unreachable = new S3Storage(`s3://${s3.bucket}/root`, { endpoint, maxAttempts: 1 });
    await assert.rejects(unreachable.list("candidates"), (error: Error) => {
      assert.match(
        error.message,
        /^s3:\/\/clipcrawl-s3-only\/root\/candidates: the store did not answer \(ECONNREFUSED\): check the endpoint \(AWS_ENDPOINT_URL\) and that the store is up$/,
      );
      return true;
    });
  });

  test("a store that answers 503 or hangs is tried again with backoff; one that keeps answering 503 is one line, leaving nothing", async () => {
    const direct = await freshS3();
    const refusals = new Map<string, number>();
    let held = 0;
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const proxy = await faultyProxy(s3.endpoint, (request) => {
      const key = `${request.method} ${request.url?.split("?")[0]}`;
      if (key.endsWith("/hung.json") && request.method === "PUT" && held++ === 0) return gate;
      if (key.endsWith("/always.json")) return { status: 503 };
      if (!key.endsWith("/busy.json")) return "pass";
      const count = refusals.get(key) ?? 0;
      refusals.set(key, count + 1);
      return count < 2 ? { status: 503 } : "pass";
    });
    try {
      const store = new S3Storage(direct.root, {
        endpoint: proxy.endpoint,
        maxAttempts: 3,
        requestTimeoutMs: 1000,
        cacheDir: await tempDir("s3-cache"),
      });
      await store.writeAtomic("busy.json", '{"try": 3}');
      assert.equal(await store.readText("busy.json"), '{"try": 3}');
      assert.equal(proxy.answered, 4, "two 503s for the PUT and two for the GET, then through");
      await store.writeAtomic("hung.json", "{}");
      assert.equal(held, 2, "the hung request was abandoned and tried again");
      assert.equal(await direct.readText("hung.json"), "{}");
      await assert.rejects(store.writeAtomic("always.json", "{}"), (error: Error) => {
        assert.equal(
          error.message,
          `${direct.root}/always.json: the store answered 503 (SlowDown) to every try: it is overloaded or failing; run again later, or with fewer workers`,
        );
        return true;
      });
      assert.equal(proxy.answered, 7, "three tries of always.json");
    } finally {
      release();
      await proxy.close();
    }
    assert.equal(await direct.exists("always.json"), false);
  });

  // s3rver does not check SigV4 signatures, so an unknown key stands for wrong credentials.
  test("a root lock has one holder at a time across contenders: counting under it loses no step", async () => {
    const store = await freshS3();
    const lock = { waitMs: 60_000, holderName: "test", code: "CC_TEST_LOCKED" };
    await store.writeAtomic("counter.txt", "0");
    // Each step reads, pauses and writes back: without the lock, contenders overwrite each other.
    const contender = async () => {
      for (let step = 0; step < 3; step++) {
        const release = await acquireRootLock(store, "locks/count.lock", lock);
        const value = Number(await store.readText("counter.txt"));
        await new Promise((resolve) => setTimeout(resolve, 20));
        await store.writeAtomic("counter.txt", String(value + 1));
        await release();
      }
    };
    await Promise.all([contender(), contender(), contender(), contender()]);
    assert.equal(await store.readText("counter.txt"), "12");
    assert.deepEqual(await store.list("locks/count.lock"), [], "every claim is deleted");

    const held = await acquireRootLock(store, "locks/count.lock", lock);
    await assert.rejects(
      acquireRootLock(store, "locks/count.lock", { ...lock, waitMs: 300 }),
      /^ClipcrawlError: another clipcrawl test \(process \d+\) holds this root's lock \(s3:\/\/\S+\/locks\/count\.lock\); wait for it to finish$/,
    );
    await held();
  });

  test("a lock claim left by a process that ended, or not renewed in time, is taken over", async () => {
    const store = await freshS3();
    const lock = { waitMs: 0, holderName: "test", code: "CC_TEST_LOCKED", staleMs: 1_000 };
    const ended = spawnSync(process.execPath, ["-e", "0"]).pid;
    await store.writeAtomic(
      "a.lock/left.json",
      JSON.stringify({ pid: ended, host: hostname(), since: new Date().toISOString() }),
    );
    const first = await acquireRootLock(store, "a.lock", lock);
    assert.deepEqual((await store.list("a.lock")).length, 1, "the dead process's claim is gone");
    await first();

    // A holder on another machine that stopped renewing: live until its claim is stale.
    await store.writeAtomic("b.lock/elsewhere.json", JSON.stringify({ pid: 1, host: "elsewhere" }));
    await assert.rejects(
      acquireRootLock(store, "b.lock", lock),
      /another clipcrawl test \(process 1 on elsewhere\) holds this root's lock/,
    );
    // S3 times are whole seconds: past the 1 s bound for sure.
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    const second = await acquireRootLock(store, "b.lock", lock);
    await second();
    assert.deepEqual(await store.list("b.lock"), []);
  });

  test("wrong credentials name the URL and the variables to check", async () => {
    const saved = process.env.AWS_ACCESS_KEY_ID;
    process.env.AWS_ACCESS_KEY_ID = "NOT-A-KNOWN-KEY";
    try {
      const store = new S3Storage(`s3://${s3.bucket}/root`, {
        endpoint: s3.endpoint,
        maxAttempts: 1,
      });
      await assert.rejects(
        store.writeAtomic("x.json", "{}"),
        /: access denied \(InvalidAccessKeyId\): check AWS_ACCESS_KEY_ID/,
      );
    } finally {
      process.env.AWS_ACCESS_KEY_ID = saved;
    }
  });
});

describe("opening a root from the command line's string", () => {
  test("s3:// opens object storage, a path a local folder, another scheme is refused", () => {
    const s3Root = openRoot("s3://my-bucket/crawls/2024/");
    assert.ok(s3Root instanceof S3Storage);
    assert.equal(s3Root.root, "s3://my-bucket/crawls/2024");
    assert.ok(openRoot("./data") instanceof LocalStorage);
    assert.throws(
      () => openRoot("gs://bucket/data"),
      /gs:\/\/bucket\/data: gs:\/\/ roots are not supported/,
    );
    assert.throws(() => openRoot("s3://B/x"), /not an s3:\/\/bucket\/prefix URL/);
  });

  test("the endpoint and the cache come from the environment every command and worker shares", () => {
    assert.deepEqual(
      s3OptionsFromEnv({
        AWS_ENDPOINT_URL: "http://127.0.0.1:9000",
        CLIPCRAWL_CACHE_DIR: "/var/cache/cc",
        CLIPCRAWL_CACHE_BYTES: "20G",
      }),
      { endpoint: "http://127.0.0.1:9000", cacheDir: "/var/cache/cc", cacheBytes: 20 * 1024 ** 3 },
    );
    assert.equal(
      s3OptionsFromEnv({ AWS_ENDPOINT_URL: "http://a", AWS_ENDPOINT_URL_S3: "http://b" }).endpoint,
      "http://b",
    );
    assert.throws(
      () => s3OptionsFromEnv({ CLIPCRAWL_CACHE_BYTES: "lots" }),
      /CLIPCRAWL_CACHE_BYTES=lots: not a size/,
    );
  });

  test("a command that needs a local folder (the demo) refuses an s3:// root before any work, in one line", () => {
    assert.throws(
      () => localRootOf(openRoot("s3://my-bucket/data"), "clipcrawl demo"),
      /^ConfigError: clipcrawl demo needs a local --root; s3:\/\/my-bucket\/data is object storage/,
    );
  });
});
