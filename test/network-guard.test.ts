import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseConfig } from "../src/config/config-file.js";
import { addressRange, isPublicAddress } from "../src/io/network-guard.js";
import { collectingReporter } from "../src/shard/reporter.js";
import { download } from "../src/stages/download/download.js";
import { extract } from "../src/stages/extract/extract.js";
import { imageRows } from "./support/image-rows.js";
import { testImage } from "./support/image-server.js";
import { tempDir } from "./support/temp.js";
import { gzipEach, warcinfoRecord, watPageRecord } from "./support/warc-build.js";

/**
 * The crawler's own network, as a test sees it: one server on 127.0.0.1 that counts every
 * request. Only `allowed.test`, mapped to it by the operator's `connectTo` rule, may reach it;
 * its redirects point back at private addresses.
 */
let server: Server;
let port: number;
const requests = new Map<string, number>();
let watFile: Buffer;

before(async () => {
  const image = await testImage(64, 48);
  watFile = gzipEach([
    warcinfoRecord(),
    watPageRecord("https://public.example.com/", [{ url: "a.jpg", alt: "a public picture" }]),
  ]);
  server = createServer((request, response) => {
    const path = request.url ?? "/";
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const redirects: Record<string, string> = {
      "/to-loopback.jpg": `http://127.0.0.1:${port}/ok.jpg`,
      "/to-localhost.jpg": `http://localhost:${port}/ok.jpg`,
      "/to-metadata.jpg": "http://169.254.169.254/latest/meta-data/",
      "/to-mapped.jpg": `http://[::ffff:127.0.0.1]:${port}/ok.jpg`,
      "/to-allowed.jpg": "http://allowed.test/ok.jpg",
    };
    const location = redirects[path];
    if (location !== undefined) response.writeHead(302, { location }).end();
    else if (path === "/ok.jpg")
      response.writeHead(200, { "content-type": "image/jpeg" }).end(image);
    else if (path.endsWith(".wat.gz")) response.end(watFile);
    else if (path.endsWith(".paths")) response.end("crawl-data/x/one.wat.gz\n");
    else response.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test("only globally routable unicast addresses are public", () => {
  for (const address of ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2a00:1450:4001:80b::200e"]) {
    assert.equal(isPublicAddress(address), true, address);
  }
  const refused: Record<string, string> = {
    "127.0.0.1": "loopback",
    "10.1.2.3": "private",
    "172.31.0.1": "private",
    "192.168.0.1": "private",
    "169.254.169.254": "linkLocal",
    "100.64.0.1": "carrierGradeNat",
    "0.0.0.0": "unspecified",
    "255.255.255.255": "broadcast",
    "224.0.0.251": "multicast",
    "192.0.2.7": "reserved",
    "198.51.100.7": "reserved",
    "203.0.113.7": "reserved",
    "198.18.0.1": "reserved",
    "240.0.0.1": "reserved",
    "::1": "loopback",
    "::": "unspecified",
    "fe80::1": "linkLocal",
    "fd00:ec2::254": "uniqueLocal",
    "ff02::1": "multicast",
    "::ffff:127.0.0.1": "ipv4Mapped",
    "::ffff:8.8.8.8": "ipv4Mapped",
    "64:ff9b::a9fe:a9fe": "rfc6052",
    "2002:7f00:1::": "6to4",
    "2001:db8::1": "reserved",
    "2001:2::1": "benchmarking",
    "100::1": "discard",
    "::7f00:1": "unallocated",
    "not an address": "invalid",
  };
  for (const [address, range] of Object.entries(refused)) {
    assert.equal(isPublicAddress(address), false, address);
    assert.equal(addressRange(address), range, address);
  }
});

test("download.allowPrivateAddresses, the option's old name in clipcrawl.json files, still reads", () => {
  const old = parseConfig({ download: { allowPrivateAddresses: true } }, "clipcrawl.json");
  assert.equal(old.download.allowPrivateNetwork, true);
  assert.equal("allowPrivateAddresses" in old.download, false);
  const both = parseConfig(
    { download: { allowPrivateAddresses: true, allowPrivateNetwork: false } },
    "clipcrawl.json",
  );
  assert.equal(both.download.allowPrivateNetwork, false, "the new name wins");
  assert.equal(parseConfig({}, "defaults").download.allowPrivateNetwork, false);
});

test("serve.allowPrivateUrls, serve's old name of allowPrivateNetwork in clipcrawl.json files, still reads", () => {
  const old = parseConfig({ serve: { allowPrivateUrls: true } }, "clipcrawl.json");
  assert.equal(old.serve.allowPrivateNetwork, true);
  assert.equal("allowPrivateUrls" in old.serve, false);
  const both = parseConfig(
    { serve: { allowPrivateUrls: true, allowPrivateNetwork: false } },
    "clipcrawl.json",
  );
  assert.equal(both.serve.allowPrivateNetwork, false, "the new name wins");
  assert.equal(parseConfig({}, "defaults").serve.allowPrivateNetwork, false);
});

test("a WAT full of crafted image URLs reaches none of the crawler's own network; each gets its own error and the public one is fetched", async () => {
  const dir = await tempDir("network-guard-download");
  const crafted = [
    `http://127.0.0.1:${port}/ok.jpg`,
    `http://[::1]:${port}/ok.jpg`,
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    `http://0x7f000001:${port}/ok.jpg`,
    `http://2130706433:${port}/ok.jpg`,
    `http://[::ffff:127.0.0.1]:${port}/ok.jpg`,
    `http://localhost:${port}/ok.jpg`,
    "http://10.0.0.1/x.jpg",
    "http://100.64.0.1/x.jpg",
    "http://192.0.2.1/x.jpg",
    "http://198.18.0.1/x.jpg",
    "http://224.0.0.1/x.jpg",
    "http://allowed.test/to-loopback.jpg",
    "http://allowed.test/to-localhost.jpg",
    "http://allowed.test/to-metadata.jpg",
    "http://allowed.test/to-mapped.jpg",
    "http://allowed.test/to-allowed.jpg",
  ];
  await writeFile(
    join(dir, "crafted.wat.gz"),
    gzipEach([
      warcinfoRecord(),
      watPageRecord(
        "https://attacker.example/",
        crafted.map((url, n) => ({ url, alt: `crafted picture number ${n}` })),
      ),
    ]),
  );
  const root = join(dir, "root");
  const extracted = await extract({ root, inputs: [join(dir, "crafted.wat.gz")] });
  assert.equal(extracted.ok, true);
  const summary = await download({
    root,
    config: {
      connectTo: [`allowed.test:80:127.0.0.1:${port}`],
      retries: 0,
      timeoutSeconds: 5,
      totalTimeoutSeconds: 5,
      workers: 1,
    },
  });
  assert.equal(summary.ok, true, "the shard completes");
  const outcomes = (await imageRows(root))
    .map((row) => [
      String(row.url),
      row.status === "success" ? "success" : String(row.error_message),
    ])
    .sort();
  const loopback =
    "private address 127.0.0.1 refused (loopback; --allow-private-network allows it)";
  const expected = [
    [`http://127.0.0.1:${port}/ok.jpg`, loopback],
    // The WHATWG URL parser reads hexadecimal and decimal IPv4 hosts as 127.0.0.1.
    [`http://127.0.0.1:${port}/ok.jpg`, loopback],
    [
      `http://[::1]:${port}/ok.jpg`,
      "private address ::1 refused (loopback; --allow-private-network allows it)",
    ],
    [
      "http://169.254.169.254/latest/meta-data/",
      "private address 169.254.169.254 refused (linkLocal; --allow-private-network allows it)",
    ],
    [
      "http://[fd00:ec2::254]/latest/meta-data/",
      "private address fd00:ec2::254 refused (uniqueLocal; --allow-private-network allows it)",
    ],
    [`http://127.0.0.1:${port}/ok.jpg`, loopback],
    [
      `http://[::ffff:7f00:1]:${port}/ok.jpg`,
      "private address ::ffff:7f00:1 refused (ipv4Mapped; --allow-private-network allows it)",
    ],
    [
      `http://localhost:${port}/ok.jpg`,
      "private address 127.0.0.1 (localhost) refused (loopback; --allow-private-network allows it)",
    ],
    [
      "http://10.0.0.1/x.jpg",
      "private address 10.0.0.1 refused (private; --allow-private-network allows it)",
    ],
    [
      "http://100.64.0.1/x.jpg",
      "private address 100.64.0.1 refused (carrierGradeNat; --allow-private-network allows it)",
    ],
    [
      "http://192.0.2.1/x.jpg",
      "private address 192.0.2.1 refused (reserved; --allow-private-network allows it)",
    ],
    [
      "http://198.18.0.1/x.jpg",
      "private address 198.18.0.1 refused (reserved; --allow-private-network allows it)",
    ],
    [
      "http://224.0.0.1/x.jpg",
      "private address 224.0.0.1 refused (multicast; --allow-private-network allows it)",
    ],
    ["http://allowed.test/to-loopback.jpg", loopback],
    [
      "http://allowed.test/to-localhost.jpg",
      "private address 127.0.0.1 (localhost) refused (loopback; --allow-private-network allows it)",
    ],
    [
      "http://allowed.test/to-metadata.jpg",
      "private address 169.254.169.254 refused (linkLocal; --allow-private-network allows it)",
    ],
    [
      "http://allowed.test/to-mapped.jpg",
      "private address ::ffff:7f00:1 refused (ipv4Mapped; --allow-private-network allows it)",
    ],
    ["http://allowed.test/to-allowed.jpg", "success"],
  ].sort();
  assert.deepEqual(outcomes, expected);
  assert.equal(requests.get("/ok.jpg"), 1, "only the allowed host's own redirect was fetched");
});

test("extract's WAT and listing URLs are refused on private addresses, the other inputs are read", async () => {
  const dir = await tempDir("network-guard-extract");
  await writeFile(join(dir, "local.wat.gz"), watFile);
  const before = [...requests.values()].reduce((sum, count) => sum + count, 0);
  const reporter = collectingReporter();
  const summary = await extract({
    root: join(dir, "root"),
    inputs: [
      `http://127.0.0.1:${port}/a.wat.gz`,
      `http://localhost:${port}/b.wat.gz`,
      `http://[::ffff:127.0.0.1]:${port}/c.wat.gz`,
      `http://127.0.0.1:${port}/wat.paths`,
      join(dir, "local.wat.gz"),
    ],
    config: { retries: 3, workers: 1 },
    reporter,
  });
  assert.equal(summary.ok, false);
  assert.deepEqual(reporter.warnings.sort(), [
    `http://127.0.0.1:${port}/a.wat.gz: private address 127.0.0.1 refused (loopback; --allow-private-network allows it)`,
    `http://127.0.0.1:${port}/wat.paths: cannot fetch the path listing (private address 127.0.0.1 refused (loopback; --allow-private-network allows it))`,
    `http://[::ffff:127.0.0.1]:${port}/c.wat.gz: private address ::ffff:7f00:1 refused (ipv4Mapped; --allow-private-network allows it)`,
    `http://localhost:${port}/b.wat.gz: private address 127.0.0.1 (localhost) refused (loopback; --allow-private-network allows it)`,
  ]);
  assert.equal(summary.totals.records, 2, "the local WAT was read");
  const after = [...requests.values()].reduce((sum, count) => sum + count, 0);
  assert.equal(after, before, "no request reached the server");

  const allowed = await extract({
    root: join(dir, "allowed"),
    inputs: [`http://127.0.0.1:${port}/a.wat.gz`],
    config: { allowPrivateNetwork: true, workers: 1 },
  });
  assert.equal(allowed.ok, true, "--allow-private-network lets it through");
  assert.equal(requests.get("/a.wat.gz"), 1);
});
