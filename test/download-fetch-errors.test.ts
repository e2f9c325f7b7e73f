/**
 * What `error_message` says when a server breaks HTTP below the status line: a reason a person
 * reads, with undici's code kept so that the stats histograms group by it. Real servers on
 * 127.0.0.1 that answer with raw bytes.
 */
import assert from "node:assert/strict";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { test } from "node:test";
import { ImageFetcher } from "../src/io/fetch/image-fetcher.js";

const OK_HEAD = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n";

/** Serves every connection with `answer` once the request arrives; returns the image's URL. */
async function rawServer(
  answer: (socket: Socket) => void,
): Promise<{ url: string; close: () => void }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.once("data", () => answer(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/image.jpg`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

function fetcher(): ImageFetcher {
  return new ImageFetcher({
    timeoutSeconds: 1,
    totalTimeoutSeconds: 10,
    retries: 0,
    retryBackoffSeconds: 0,
    maxRedirects: 5,
    maxBodyBytes: 1_000_000,
    dnsCacheSeconds: 60,
    userAgentToken: "",
    disallowedHeaderDirectives: [],
    allowPrivateNetwork: true,
    connectTo: [],
    caCertificates: "",
    contentTypeCheck: true,
    connectionsPerHost: 2,
  });
}

const CASES: [behaviour: string, answer: (socket: Socket) => void, error: string][] = [
  [
    "a 1 MB response header",
    (socket) =>
      socket.end(`${OK_HEAD}X-Padding: ${"a".repeat(1 << 20)}\r\nContent-Length: 3\r\n\r\nabc`),
    "response headers too large (UND_ERR_HEADERS_OVERFLOW)",
  ],
  ["no answer at all", () => {}, "no response headers in time (UND_ERR_HEADERS_TIMEOUT)"],
  [
    "a body that stops coming",
    (socket) => socket.write(`${OK_HEAD}Content-Length: 100\r\n\r\nabc`),
    "body stalled: no data in time (UND_ERR_BODY_TIMEOUT)",
  ],
  [
    "a connection closed mid-body",
    (socket) => socket.end(`${OK_HEAD}Content-Length: 100\r\n\r\nabc`),
    "connection closed before the response ended (UND_ERR_SOCKET)",
  ],
  [
    "a connection closed before any answer",
    (socket) => socket.end(),
    "connection closed before the response ended (UND_ERR_SOCKET)",
  ],
];

test("a server that breaks HTTP gets a readable reason that keeps undici's code", async () => {
  const client = fetcher();
  const wrong: string[] = [];
  try {
    for (const [behaviour, answer, expected] of CASES) {
      const server = await rawServer(answer);
      try {
        const outcome = await client.fetch(server.url);
        const error = outcome.status === "failed" ? outcome.error : outcome.status;
        if (error !== expected) wrong.push(`${behaviour}: ${error}, not ${expected}`);
      } finally {
        server.close();
      }
    }
  } finally {
    await client.close();
  }
  assert.deepEqual(wrong, []);
});
