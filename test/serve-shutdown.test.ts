/**
 * `clipcrawl serve` stops on SIGTERM and SIGINT within its grace period whatever clients do: a
 * client holding a half-sent request does not keep it running, and a request in flight is still
 * answered. The real CLI runs as a child process over the serve fixture's root.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { SHUTDOWN_GRACE_MS } from "../src/server/serve.js";
import { type CliServer, startCliServer } from "./support/cli.js";
import { buildServeFixture, type ShapeWeb, startShapeWeb } from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";

/** The grace period, and room for a loaded machine to tear down and exit. */
const STOP_WITHIN_MS = SHUTDOWN_GRACE_MS + 10_000;
const SLOW_IMAGE_MS = 1500;

let work: string;
let web: ShapeWeb;
let root: string;
let slowImages: Server;
let slowOrigin: string;
let slowRequests = 0;

before(async () => {
  work = await tempDir("serve-shutdown");
  web = await startShapeWeb();
  root = (await buildServeFixture(work, web)).root;
  const image = await renderShapeImage("red", "circle", 9);
  slowImages = createServer((_request, response) => {
    slowRequests++;
    setTimeout(
      () => response.writeHead(200, { "content-type": "image/jpeg" }).end(image),
      SLOW_IMAGE_MS,
    );
  });
  await new Promise<void>((resolve) => slowImages.listen(0, "127.0.0.1", resolve));
  slowOrigin = `http://127.0.0.1:${(slowImages.address() as AddressInfo).port}`;
});

after(async () => {
  await web.close();
  await new Promise((resolve) => slowImages.close(resolve));
  await rm(work, { recursive: true, force: true });
});

function startServe(): Promise<CliServer> {
  return startCliServer(["serve", "--root", root, "--port", "0", "--allow-private-network"]);
}

/** A client that sends part of a request and then nothing. */
async function halfSent(url: string, text: string): Promise<Socket> {
  const socket = connect(Number(new URL(url).port), "127.0.0.1");
  socket.on("error", () => {});
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
  socket.write(text);
  return socket;
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  test(`${signal} stops serve within the grace period while clients hold half-sent requests`, async (t) => {
    const serve = await startServe();
    const clients = [
      await halfSent(serve.url, "GET /indices-list HTTP/1.1\r\nHost: x\r\nAccept: app"),
      await halfSent(
        serve.url,
        'POST /knn-service HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"text":',
      ),
    ];
    // An idle keep-alive connection as a browser leaves one.
    const idle = await fetch(`${serve.url}/health`);
    assert.equal(idle.status, 200);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { code, ms } = await serve.stop(signal);
    for (const client of clients) client.destroy();
    t.diagnostic(`stopped in ${Math.round(ms)} ms`);
    assert.equal(code, 0, serve.stderr());
    assert.ok(ms < STOP_WITHIN_MS, `serve took ${Math.round(ms)} ms to stop after ${signal}`);
  });
}

test("a request in flight when serve is told to stop is still answered", async (t) => {
  const serve = await startServe();
  const before = slowRequests;
  const answer = fetch(`${serve.url}/knn-service`, {
    method: "POST",
    body: JSON.stringify({ image_url: `${slowOrigin}/slow.jpg`, modality: "image", num_images: 3 }),
  });
  while (slowRequests === before) await new Promise((resolve) => setTimeout(resolve, 20));
  const stopped = serve.stop("SIGTERM");
  const response = await answer;
  assert.equal(response.status, 200);
  const results = (await response.json()) as { url: string }[];
  assert.match(results[0]?.url ?? "", /red-circle/);
  const { code, ms } = await stopped;
  t.diagnostic(`stopped in ${Math.round(ms)} ms`);
  assert.equal(code, 0, serve.stderr());
  assert.ok(ms < STOP_WITHIN_MS, `serve took ${Math.round(ms)} ms to stop`);
});
