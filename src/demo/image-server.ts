/**
 * The demo's stand-in for the web: one HTTP and one HTTPS server on 127.0.0.1 that answer for
 * every host the sample's candidate URLs name, so `download` runs unchanged against them through
 * `connectTo` rules (as curl --connect-to) and a certificate authority made for the run.
 *
 * What a URL returns is a pure function of the URL, so reruns see the same web:
 * - the coloured-shape host serves the shape its file name states (sample/shape-images.ts);
 * - any other URL is, by a hash of it, a generated picture (about 40 %), missing (404 or 410),
 *   an HTML error page served as 200, or a JPEG cut short — the mix a real crawl meets.
 */
import { createHash } from "node:crypto";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo, Server } from "node:net";
import { generate } from "selfsigned";
import sharp from "sharp";
import { parseShapeImageName, renderShapeImage } from "./sample/shape-images.js";
import { SHAPE_IMAGE_HOST } from "./sample/wat-generator.js";

export interface DemoImageServer {
  /** `HOST:PORT:127.0.0.1:LOCAL_PORT` for every host, ports 80 and 443. */
  connectTo: string[];
  /** PEM of the certificate the HTTPS server presents (its own authority). */
  certificatePem: string;
  /** Requests answered so far. */
  requests(): number;
  close(): Promise<void>;
}

type Answer = "picture" | "not_found" | "gone" | "html_page" | "truncated";

/** Cumulative shares of the answers for URLs outside the shape host. */
const ANSWER_SHARES: readonly [Answer, number][] = [
  ["picture", 0.4],
  ["not_found", 0.8],
  ["gone", 0.88],
  ["html_page", 0.95],
  ["truncated", 1],
];

export async function startDemoImageServer(hosts: Iterable<string>): Promise<DemoImageServer> {
  const names = [...new Set([...hosts].map((host) => host.toLowerCase()))].sort();
  const credentials = await generate([{ name: "commonName", value: "clipcrawl demo web" }], {
    keyType: "ec",
    algorithm: "sha256",
    notBeforeDate: new Date(Date.now() - 3_600_000),
    notAfterDate: new Date(Date.now() + 7 * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", digitalSignature: true, keyCertSign: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: names.map((value) => ({ type: 2, value })) },
    ],
  });
  let requests = 0;
  const handle = (request: IncomingMessage, response: ServerResponse) => {
    requests++;
    answer(request).then(
      ({ status, type, body }) => response.writeHead(status, { "content-type": type }).end(body),
      () => response.writeHead(500).end(),
    );
  };
  const http = createHttpServer(handle);
  const https = createHttpsServer({ key: credentials.private, cert: credentials.cert }, handle);
  const httpPort = await listen(http);
  const httpsPort = await listen(https);
  return {
    connectTo: names.flatMap((host) => [
      `${host}:80:127.0.0.1:${httpPort}`,
      `${host}:443:127.0.0.1:${httpsPort}`,
    ]),
    certificatePem: credentials.cert,
    requests: () => requests,
    close: async () => {
      await Promise.all([close(http), close(https)]);
    },
  };
}

interface Reply {
  status: number;
  type: string;
  body: Buffer | string;
}

async function answer(request: IncomingMessage): Promise<Reply> {
  const host = (request.headers.host ?? "").replace(/:\d+$/, "").toLowerCase();
  const path = request.url ?? "/";
  if (host === SHAPE_IMAGE_HOST) {
    const shape = parseShapeImageName(path);
    if (shape === undefined) return { status: 404, type: "text/plain", body: "no such shape" };
    return {
      status: 200,
      type: "image/jpeg",
      body: await renderShapeImage(shape.colour, shape.shape, shape.index),
    };
  }
  const digest = createHash("sha256").update(`${host}${path}`).digest();
  const draw = digest.readUInt32BE(0) / 2 ** 32;
  const kind = ANSWER_SHARES.find(([, share]) => draw < share)?.[0] ?? "picture";
  switch (kind) {
    case "picture":
      return { status: 200, type: "image/jpeg", body: await renderPicture(digest) };
    case "not_found":
      return { status: 404, type: "text/html", body: "<h1>404 Not Found</h1>" };
    case "gone":
      return { status: 410, type: "text/html", body: "<h1>410 Gone</h1>" };
    case "html_page":
      return { status: 200, type: "text/html", body: "<html><body>Page moved</body></html>" };
    case "truncated": {
      const picture = await renderPicture(digest);
      return { status: 200, type: "image/jpeg", body: picture.subarray(0, picture.length >> 2) };
    }
  }
}

/**
 * A few coloured blobs on a background, in a size and aspect ratio drawn from the digest; small
 * (128–255 × 96–223 pixels), since rendering them is most of what the demo's web costs.
 */
function renderPicture(digest: Buffer): Promise<Buffer> {
  const byte = (index: number) => digest[index % digest.length] as number;
  const width = 128 + (byte(4) >> 1);
  const height = 96 + (byte(5) >> 1);
  const colour = (index: number) => `rgb(${byte(index)},${byte(index + 1)},${byte(index + 2)})`;
  const blobs = Array.from({ length: 3 + (byte(6) % 4) }, (_, blob) => {
    const base = 7 + blob * 5;
    return (
      `<ellipse cx="${(byte(base) / 255) * width}" cy="${(byte(base + 1) / 255) * height}" ` +
      `rx="${12 + byte(base + 2) / 5}" ry="${12 + byte(base + 3) / 5}" fill="${colour(base + 4)}"/>`
    );
  }).join("");
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">` +
    `<rect width="${width}" height="${height}" fill="${colour(1)}"/>${blobs}</svg>`;
  return sharp(Buffer.from(svg)).jpeg({ quality: 85 }).toBuffer();
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    (server as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  });
}
