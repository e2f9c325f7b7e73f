/**
 * HTTP answers for the fuzz sweep, served raw on 127.0.0.1 so that anything can be sent: a valid
 * image answer damaged byte by byte, or with a lie in its status line, Content-Length, chunked
 * framing, Content-Encoding (a gzip bomb among them), headers (1 MB of them, an opt-out), a
 * redirect (a loop, to a file: URL, to nowhere), or a body that stops coming.
 */
import { type AddressInfo, createServer, type Socket } from "node:net";
import { gzipSync } from "node:zlib";
import type { FuzzImage } from "./fuzz-images.js";
import { type FuzzRandom, mutateBytes } from "./fuzz-mutations.js";

export interface HttpAnswer {
  name: string;
  bytes: Buffer;
  /** Keep the connection open after the bytes, as a server that stops sending does. */
  hold?: boolean;
}

export function imageAnswer(image: FuzzImage, status = "200 OK", extra = ""): Buffer {
  return Buffer.concat([
    Buffer.from(
      `HTTP/1.1 ${status}\r\nContent-Type: ${image.contentType}\r\nContent-Length: ${image.bytes.length}\r\n${extra}Connection: close\r\n\r\n`,
      "latin1",
    ),
    image.bytes,
  ]);
}

let gzipBomb: Buffer | undefined;

/** A damaged answer for a valid image; `origin` is the server's own, for redirects. */
export function fuzzAnswer(image: FuzzImage, random: FuzzRandom, origin: string): HttpAnswer {
  const head = (status: string, headers: string) =>
    Buffer.from(`HTTP/1.1 ${status}\r\n${headers}Connection: close\r\n\r\n`, "latin1");
  const type = `Content-Type: ${image.contentType}\r\n`;
  const body = image.bytes;
  switch (random.int(9)) {
    case 0: {
      const mutation = mutateBytes(imageAnswer(image), random);
      return { name: `answer bytes: ${mutation.name}`, bytes: mutation.bytes };
    }
    case 1: {
      const status = random.pick([
        "HTTP/1.1 200",
        "HTTP/1.1 999 Weird",
        "HTTP/2 200 OK",
        "HTTP/1.1 20 OK",
        "ICY 200 OK",
        "garbage",
        "HTTP/1.1 204 No Content",
        "HTTP/1.1 304 Not Modified",
        "HTTP/1.1 404 Not Found",
        "HTTP/1.1 500 Internal Server Error",
        "HTTP/1.1 429 Too Many Requests",
        "HTTP/1.0 200 OK",
      ]);
      const lf = random.chance(0.3);
      const text = `${status}\r\n${type}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
      return {
        name: `status line ${JSON.stringify(status)}${lf ? ", LF line ends" : ""}`,
        bytes: Buffer.concat([
          Buffer.from(lf ? text.replaceAll("\r\n", "\n") : text, "latin1"),
          body,
        ]),
      };
    }
    case 2: {
      const claimed = random.pick([
        String(body.length + 1 + random.int(5000)),
        String(random.int(body.length)),
        "-1",
        "abc",
        `${body.length}, ${body.length + 7}`,
        "99999999999999999999",
      ]);
      return {
        name: `Content-Length ${body.length} claimed as ${JSON.stringify(claimed)}`,
        bytes: Buffer.concat([head("200 OK", `${type}Content-Length: ${claimed}\r\n`), body]),
      };
    }
    case 3: {
      const size = body.length.toString(16);
      const variant = random.pick([
        ["valid chunked", `${size}\r\n`, "\r\n0\r\n\r\n"],
        ["a chunk size that is not hex", "zz\r\n", "\r\n0\r\n\r\n"],
        [
          "a chunk size larger than the chunk",
          `${(body.length + 999).toString(16)}\r\n`,
          "\r\n0\r\n\r\n",
        ],
        ["no last chunk", `${size}\r\n`, "\r\n"],
        ["a chunk size of 2^64", "ffffffffffffffffff\r\n", "\r\n0\r\n\r\n"],
      ] as const);
      const both = random.chance(0.3) ? `Content-Length: ${body.length}\r\n` : "";
      return {
        name: `chunked: ${variant[0]}${both === "" ? "" : ", with Content-Length too"}`,
        bytes: Buffer.concat([
          head("200 OK", `${type}Transfer-Encoding: chunked\r\n${both}`),
          Buffer.from(variant[1], "latin1"),
          body,
          Buffer.from(variant[2], "latin1"),
        ]),
      };
    }
    case 4: {
      gzipBomb ??= gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
      const variant = random.pick([
        ["gzip, valid", "gzip", gzipSync(body)],
        ["gzip, garbage", "gzip", Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0]), body])],
        ["gzip bomb (64 MiB of zeros)", "gzip", gzipBomb],
        ["br, garbage", "br", body],
        ["an unknown encoding", "x-fuzz", body],
      ] as const);
      return {
        name: `Content-Encoding: ${variant[0]}`,
        bytes: Buffer.concat([
          head(
            "200 OK",
            `${type}Content-Encoding: ${variant[1]}\r\nContent-Length: ${variant[2].length}\r\n`,
          ),
          variant[2],
        ]),
      };
    }
    case 5: {
      const variant = random.pick([
        ["1 MB of headers", `X-Padding: ${"a".repeat(1 << 20)}\r\n`],
        ["Content-Type text/html", "Content-Type: text/html\r\n"],
        ["no Content-Type", ""],
        ["X-Robots-Tag noai", `${type}X-Robots-Tag: noai, noimageai\r\n`],
        ["a header folded over two lines", `${type}X-Folded: a\r\n  b\r\n`],
        ["a NUL byte in a header", `Content-Type: image/jpeg\0; x=1\r\n`],
        ["a header with no colon", `${type}NoColonHere\r\n`],
      ] as const);
      return {
        name: variant[0],
        bytes: Buffer.concat([
          head("200 OK", `${variant[1]}Content-Length: ${body.length}\r\n`),
          body,
        ]),
      };
    }
    case 6: {
      const variant = random.pick([
        ["a redirect to itself", "301 Moved", "SELF"],
        ["a redirect to a file: URL", "302 Found", "file:///etc/passwd"],
        ["a redirect to an unparsable URL", "302 Found", "http://[::1"],
        ["a redirect with no Location", "302 Found", ""],
        ["a redirect to a valid image", "307 Temporary Redirect", `${origin}/valid.jpg`],
      ] as const);
      const location = variant[2] === "" ? "" : `Location: ${variant[2]}\r\n`;
      return {
        name: variant[0],
        bytes: head(variant[1], `${location}Content-Length: 0\r\n`),
      };
    }
    case 7:
      return {
        name: "a body that stops coming",
        bytes: Buffer.concat([
          head("200 OK", `${type}Content-Length: ${body.length}\r\n`),
          body.subarray(0, 10),
        ]),
        hold: true,
      };
    default:
      return {
        name: "a connection closed before any answer",
        bytes: Buffer.alloc(0),
      };
  }
}

/** Serves `answers` by path (a redirect to SELF goes to the same path) until closed. */
export async function rawHttpServer(
  answers: Map<string, HttpAnswer>,
): Promise<{ origin: string; requests: Map<string, number>; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const requests = new Map<string, number>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let head = "";
    socket.on("data", (chunk) => {
      if (head.includes("\r\n\r\n")) return;
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const path = /^[A-Z]+ (\S+)/.exec(head)?.[1]?.split("?")[0] ?? "";
      requests.set(path, (requests.get(path) ?? 0) + 1);
      const answer = answers.get(path);
      if (answer === undefined) {
        socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
      }
      const bytes = Buffer.from(
        answer.bytes.toString("latin1").replace("Location: SELF", `Location: ${path}`),
        "latin1",
      );
      if (answer.hold === true) socket.write(bytes);
      else socket.end(bytes);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
