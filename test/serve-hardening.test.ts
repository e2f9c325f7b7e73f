import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { defaultConfig } from "../src/config/config-file.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { startCliServer } from "./support/cli.js";
import {
  buildServeFixture,
  type ServeFixture,
  type ShapeWeb,
  startShapeWeb,
} from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";

/**
 * What makes `serve` safe to expose, beyond serve.test.ts's rate limit, token and body limit:
 * the loopback default, configured CORS origins, and a client too slow to send its request.
 */
let work: string;
let web: ShapeWeb;
let fixture: ServeFixture;
let server: RunningServer;

before(async () => {
  work = await tempDir("serve-hardening");
  web = await startShapeWeb();
  fixture = await buildServeFixture(work, web);
  server = await serve({
    indices: [{ name: "shapes", root: fixture.root, model: null }],
    config: {
      port: 0,
      corsOrigins: ["https://search.example.org"],
      requestTimeoutSeconds: 0.5,
    },
  });
});

after(async () => {
  await server?.close();
  await web?.close();
  await rm(work, { recursive: true, force: true });
});

test("serve listens on 127.0.0.1 unless told otherwise", () => {
  assert.equal(defaultConfig().serve.host, "127.0.0.1");
  assert.equal(new URL(server.url).hostname, "127.0.0.1");
});

test("with corsOrigins set, only those origins are allowed to call from a browser", async () => {
  const preflight = (origin: string) =>
    fetch(`${server.url}/knn-service`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST" },
    });
  const allowed = await preflight("https://search.example.org");
  assert.equal(allowed.headers.get("access-control-allow-origin"), "https://search.example.org");
  const other = await preflight("https://evil.example");
  assert.equal(other.headers.get("access-control-allow-origin"), null);
  const read = await fetch(`${server.url}/indices-list`, {
    headers: { origin: "https://evil.example" },
  });
  assert.equal(read.status, 200, "the server answers; the browser withholds it");
  assert.equal(read.headers.get("access-control-allow-origin"), null);
});

test("a client that does not finish sending its request is answered 408 and disconnected", async () => {
  const { port } = new URL(server.url);
  const socket = connect(Number(port), "127.0.0.1");
  let answer = "";
  socket.on("data", (chunk) => {
    answer += chunk.toString("latin1");
  });
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.write(
    'POST /knn-service HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"text":',
  );
  await closed;
  assert.match(answer, /^HTTP\/1\.1 408 /);
  assert.equal((await fetch(`${server.url}/health`)).status, 200, "other clients are served");
});

test("clipcrawl serve --allow-private-urls, the old name of --allow-private-network, still lets image_url reach a local web, with a one-line warning", async () => {
  const cli = await startCliServer([
    "serve",
    "--root",
    fixture.root,
    "--port",
    "0",
    "--allow-private-urls",
  ]);
  try {
    const answer = await fetch(`${cli.url}/knn-service`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ image_url: `${web.origin}/blue-star-9.jpg`, num_images: 1 }),
    });
    assert.equal(answer.status, 200, await answer.clone().text());
    assert.equal(((await answer.json()) as unknown[]).length, 1);
    assert.equal(
      cli.stderr(),
      "clipcrawl: --allow-private-urls is deprecated and goes in the next release; use --allow-private-network\n",
    );
  } finally {
    assert.equal((await cli.stop()).code, 0, cli.stderr());
  }
});
