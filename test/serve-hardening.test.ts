import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { defaultConfig } from "../src/config/config-file.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { buildServeFixture, type ShapeWeb, startShapeWeb } from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";

/**
 * What makes `serve` safe to expose, beyond serve.test.ts's rate limit, token and body limit:
 * the loopback default, configured CORS origins, and a client too slow to send its request.
 */
let work: string;
let web: ShapeWeb;
let server: RunningServer;

before(async () => {
  work = await tempDir("serve-hardening");
  web = await startShapeWeb();
  const fixture = await buildServeFixture(work, web);
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
