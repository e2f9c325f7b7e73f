import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { DownloadBlocklist } from "../src/formats/download-blocklist.js";
import { BodyHashes } from "../src/io/fetch/body-hashes.js";
import { parseConnectToRules } from "../src/io/fetch/connector.js";
import { runWithHostLimits } from "../src/io/fetch/host-limits.js";
import { userAgent } from "../src/io/fetch/image-fetcher.js";
import { disallowingDirective } from "../src/io/fetch/opt-out.js";
import { isTruncated } from "../src/io/image-format.js";
import { LocalStorage } from "../src/io/local-storage.js";
import { isPublicAddress } from "../src/io/network-guard.js";
import { writeParquet } from "../src/io/parquet.js";
import { TarWriter } from "../src/io/tar-writer.js";
import { ImageSpill, type SpilledImage } from "../src/stages/download/image-spill.js";
import { planGeometry, roundHalfEven } from "../src/stages/download/resizer.js";
import { sampleKey } from "../src/stages/download/samples.js";
import {
  readUrlListFile,
  resolveUrlListFiles,
  urlListMapping,
} from "../src/stages/download/url-lists.js";
import { testImage } from "./support/image-server.js";
import { tempDir } from "./support/temp.js";

test("keys are the shard id and the index padded to the digits of samplesPerShard − 1", () => {
  assert.equal(sampleKey(1, 5, 10_000), "000010005");
  assert.equal(sampleKey(0, 0, 10_000), "000000000");
  assert.equal(sampleKey(12, 7, 8), "000127");
  assert.equal(sampleKey(3, 99, 100), "0000399");
});

test("resize geometry matches img2dataset's modes and rounding", () => {
  const plan = (
    width: number,
    height: number,
    resizeMode: "no" | "border" | "keep_ratio" | "keep_ratio_largest" | "center_crop",
    resizeOnlyIfBigger = false,
  ) => planGeometry(width, height, { imageSize: 256, resizeMode, resizeOnlyIfBigger });
  assert.deepEqual(plan(640, 480, "border"), {
    resize: { width: 256, height: 192 },
    pad: { top: 32, bottom: 32, left: 0, right: 0 },
  });
  assert.deepEqual(plan(640, 480, "keep_ratio"), { resize: { width: 341, height: 256 } });
  assert.deepEqual(plan(640, 480, "keep_ratio_largest"), { resize: { width: 256, height: 192 } });
  assert.deepEqual(plan(640, 480, "center_crop"), {
    resize: { width: 341, height: 256 },
    crop: { left: 42, top: 0, width: 256, height: 256 },
  });
  assert.deepEqual(plan(640, 480, "no"), {});
  assert.deepEqual(plan(100, 50, "border", true), {}, "small images stay as they are");
  assert.deepEqual(plan(100, 50, "border"), {
    resize: { width: 256, height: 128 },
    pad: { top: 64, bottom: 64, left: 0, right: 0 },
  });
  assert.deepEqual(plan(257, 255, "border"), {
    resize: { width: 256, height: 254 },
    pad: { top: 1, bottom: 1, left: 0, right: 0 },
  });
  assert.deepEqual(plan(256, 256, "center_crop"), {});
});

test("rounding is Python's: halves go to the even neighbour", () => {
  assert.deepEqual([0.5, 1.5, 2.5, 2.4, 2.6, 341.33].map(roundHalfEven), [0, 2, 2, 2, 3, 341]);
});

test("X-Robots-Tag directives apply when addressed to everyone or to us", () => {
  const disallowed = ["noai", "noimageai", "noindex", "noimageindex"];
  assert.equal(disallowingDirective(["noai"], disallowed), "noai");
  assert.equal(disallowingDirective(["NoImageAI, nofollow"], disallowed), "noimageai");
  assert.equal(disallowingDirective(["googlebot: noai"], disallowed), undefined);
  assert.equal(disallowingDirective(["img2dataset: noai"], disallowed), "noai");
  assert.equal(disallowingDirective(["mybot: noindex"], disallowed, "MyBot"), "noindex");
  assert.equal(disallowingDirective(["nofollow", "noarchive"], disallowed), undefined);
  assert.equal(disallowingDirective(["noai"], []), undefined, "an empty list honours nothing");
});

test("the blocklist matches whole URLs and domains with their subdomains", () => {
  const list = DownloadBlocklist.parse(
    "# comment\nexample.com\nhttps://other.org/a.jpg\n*.wild.net\n",
  );
  assert.equal(list.match(new URL("https://example.com/x.jpg")), "blocklisted domain");
  assert.equal(list.match(new URL("https://cdn.example.com/x.jpg")), "blocklisted domain");
  assert.equal(list.match(new URL("https://notexample.com/x.jpg")), undefined);
  assert.equal(list.match(new URL("https://other.org/a.jpg")), "blocklisted url");
  assert.equal(list.match(new URL("https://other.org/b.jpg")), undefined);
  assert.equal(list.match(new URL("https://img.wild.net/b.jpg")), "blocklisted domain");
});

test("only public addresses are public", () => {
  for (const address of ["8.8.8.8", "1.1.1.1", "2606:4700::1111"]) {
    assert.equal(isPublicAddress(address), true, address);
  }
  for (const address of [
    "127.0.0.1",
    "10.0.0.1",
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "0.0.0.0",
    "::1",
    "::",
    "fe80::1",
    "fd00::1",
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "not an address",
  ]) {
    assert.equal(isPublicAddress(address), false, address);
  }
});

test("connect-to rules map host:port to a target", () => {
  const rules = parseConnectToRules(["Shapes.Example:80:127.0.0.1:8080"]);
  assert.deepEqual(rules.get("shapes.example:80"), { hostname: "127.0.0.1", port: 8080 });
});

test("the User-Agent names clipcrawl and carries the contact token", () => {
  assert.match(userAgent(""), /^Mozilla\/5\.0 \(compatible; clipcrawl\/\d+\.\d+\.\d+\)$/);
  assert.match(userAgent("+mailto:crawl@example.org"), /; \+mailto:crawl@example\.org\)$/);
});

test("truncation is recognised from the bytes, whatever libvips said", async () => {
  const jpeg = await testImage(64, 48, "jpeg");
  const png = await testImage(64, 48, "png");
  assert.equal(isTruncated(jpeg), false);
  assert.equal(isTruncated(jpeg.subarray(0, 200)), true);
  assert.equal(isTruncated(png), false);
  assert.equal(isTruncated(png.subarray(0, png.length - 20)), true);
});

test("images parked beyond the memory share come back from the spill file intact", async () => {
  const folder = await tempDir("spill");
  const spill = new ImageSpill({ folder, memoryBytes: 1000, batchBytes: 4096 });
  const images = Array.from({ length: 40 }, (_, index) =>
    Buffer.alloc(300 + index * 37, index + 1),
  );
  // Parked out of order, as the network finishes them; read back in key order.
  const order = images.map((_, index) => (index * 7) % images.length);
  const parked = new Map(order.map((index) => [index, spill.append(images[index] as Buffer)]));
  assert.ok([...parked.values()].some((image) => image.kind === "file"));
  for (const [index, image] of images.entries()) {
    assert.deepEqual(await spill.read(parked.get(index) as SpilledImage), image);
  }
  await spill.dispose();
});

test("hashes taken chunk by chunk are the hashes of the whole body", () => {
  const body = Buffer.from("an image body that arrives in several chunks".repeat(100));
  const streamed = new BodyHashes();
  for (let offset = 0; offset < body.length; offset += 333) {
    streamed.update(body.subarray(offset, offset + 333));
  }
  assert.deepEqual(streamed.digest(), {
    sha256: createHash("sha256").update(body).digest("hex"),
    md5: createHash("md5").update(body).digest("hex"),
    sha1: createHash("sha1").update(body).digest("hex"),
  });
});

test("the host limit holds while other hosts go ahead", async () => {
  const items = ["a", "a", "a", "a", "b", "c", "a", "b"];
  const active = new Map<string, number>();
  let maxA = 0;
  const order: number[] = [];
  await runWithHostLimits(
    items.map((host, index) => ({ host, index })),
    (item) => item.host,
    { concurrency: 4, perHost: 2 },
    async (item) => {
      active.set(item.host, (active.get(item.host) ?? 0) + 1);
      if (item.host === "a") maxA = Math.max(maxA, active.get("a") ?? 0);
      order.push(item.index);
      await new Promise((resolve) => setTimeout(resolve, 5));
      active.set(item.host, (active.get(item.host) ?? 1) - 1);
    },
  );
  assert.equal(maxA, 2);
  assert.deepEqual(order.slice(0, 4), [0, 1, 4, 5], "b and c start before a's third item");
  assert.equal(order.length, items.length);
});

test("every URL list format gives the same samples", async () => {
  const folder = await tempDir("url-lists");
  const rows = [
    { url: "http://a.test/1.jpg", caption: "first, with a comma", license: "cc0" },
    { url: "http://a.test/2.jpg", caption: 'second "quoted"', license: "cc-by" },
    { url: "http://b.test/3.png", caption: "third", license: "cc0" },
  ];
  const csv = (separator: string) =>
    `url${separator}caption${separator}license\n${rows
      .map((row) =>
        [row.url, row.caption, row.license]
          .map((value) =>
            separator === "," && /[",]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value,
          )
          .join(separator),
      )
      .join("\n")}\n`;
  await writeFile(join(folder, "list.csv"), csv(","));
  await writeFile(join(folder, "list.tsv"), csv("\t"));
  await writeFile(join(folder, "list.tsv.gz"), gzipSync(csv("\t")));
  await writeFile(join(folder, "list.json"), JSON.stringify(rows));
  await writeFile(join(folder, "list.jsonl"), rows.map((row) => JSON.stringify(row)).join("\n"));
  await writeParquet(
    new LocalStorage(folder),
    "list.parquet",
    [
      { name: "url", type: "VARCHAR", value: (row: (typeof rows)[number]) => row.url },
      { name: "caption", type: "VARCHAR", value: (row: (typeof rows)[number]) => row.caption },
      { name: "license", type: "VARCHAR", value: (row: (typeof rows)[number]) => row.license },
    ],
    rows,
  );
  const expected = rows.map((row) => ({
    url: row.url,
    caption: row.caption,
    extra: { license: row.license },
  }));
  const files = await resolveUrlListFiles([folder], "auto");
  assert.deepEqual(
    files.map((file) => file.format),
    ["csv", "json", "jsonl", "parquet", "tsv", "tsv.gz"],
  );
  for (const file of files) {
    const mapping = await urlListMapping(file, {
      urlCol: "url",
      captionCol: "caption",
      saveAdditionalColumns: ["license"],
    });
    const samples = [];
    for await (const batch of readUrlListFile(file, mapping)) samples.push(...batch);
    assert.deepEqual(samples, expected, file.format);
  }

  await writeFile(join(folder, "urls.txt"), "http://a.test/1.jpg\n\n  http://a.test/2.jpg  \r\n");
  const [txt] = await resolveUrlListFiles([join(folder, "urls.txt")], "auto");
  const txtSamples = [];
  if (txt !== undefined) {
    const mapping = await urlListMapping(txt, {
      urlCol: "url",
      captionCol: "",
      saveAdditionalColumns: [],
    });
    for await (const batch of readUrlListFile(txt, mapping)) txtSamples.push(...batch);
  }
  assert.deepEqual(
    txtSamples.map((sample) => sample.url),
    ["http://a.test/1.jpg", "http://a.test/2.jpg"],
  );
});

test("the tar writer's archives read back with Python's tarfile", async (context) => {
  if (!existsSync("/usr/bin/python3")) {
    context.skip("no /usr/bin/python3");
    return;
  }
  const folder = await tempDir("ustar");
  const path = join(folder, "shard.tar");
  const file = await open(path, "w");
  const writer = new TarWriter(file);
  await writer.add("000000000.jpg", Buffer.alloc(700, 1));
  await writer.add("000000000.json", Buffer.from('{"key": "000000000"}'));
  await writer.add("000000000.txt", Buffer.from("a caption – with ünïcödé"));
  await writer.finish();
  await file.close();
  const listing = execFileSync(
    "/usr/bin/python3",
    [
      "-c",
      "import sys, tarfile\nwith tarfile.open(sys.argv[1]) as t:\n  for m in t: print(m.name, m.size, t.extractfile(m).read().decode('utf8', 'replace')[-7:])",
      path,
    ],
    { encoding: "utf8" },
  );
  assert.deepEqual(listing.trim().split("\n"), [
    `000000000.jpg 700 ${"\u0001".repeat(7)}`,
    '000000000.json 20 00000"}',
    "000000000.txt 30 ünïcödé",
  ]);
});
