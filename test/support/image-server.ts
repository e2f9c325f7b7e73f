/**
 * A local image server for the download tests, on 127.0.0.1: generated images of every kind a
 * crawler meets, and every failure mode (404, 500 then success, slow drip, endless body, too
 * large, wrong content type, invalid and truncated bytes, a decompression-bomb PNG, a redirect
 * loop, X-Robots-Tag opt-outs, gzip content-encoding). It counts the requests of every path so
 * tests can check that refused URLs were never fetched and retries are bounded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { crc32, deflateSync, gzipSync } from "node:zlib";
import sharp from "sharp";

export interface ImageServer {
  port: number;
  /** `http://127.0.0.1:PORT` */
  origin: string;
  /** Requests per path (without the query). */
  requests: Map<string, number>;
  /** The bytes served for each image path, to compare hashes with. */
  images: Map<string, Buffer>;
  /** The most requests that were in flight at once (`?delay=MS` holds an answer back). */
  maxInFlight: () => number;
  close(): Promise<void>;
}

/** A deterministic test picture: two gradients and a block, so resizing has something to do. */
export async function testImage(
  width: number,
  height: number,
  format: "jpeg" | "png" | "webp" = "jpeg",
  seed = 0,
): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 3;
      const inBlock = x > width / 3 && x < width / 2 && y > height / 4 && y < height / 2;
      pixels[offset] = inBlock ? 20 : (x * 255) / width;
      pixels[offset + 1] = inBlock ? 200 : (y * 255) / height;
      pixels[offset + 2] = (seed * 37) % 256;
    }
  }
  const image = sharp(pixels, { raw: { width, height, channels: 3 } });
  if (format === "png") return image.png().toBuffer();
  if (format === "webp") return image.webp().toBuffer();
  return image.jpeg({ quality: 90 }).toBuffer();
}

/** A PNG that claims 30000×30000 pixels: its header alone says it is a decompression bomb. */
export function decompressionBombPng(side = 30_000): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([length, body, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(side, 0);
  header.writeUInt32BE(side, 4);
  header[8] = 8; // bit depth
  header[9] = 0; // greyscale
  // Only the first rows: enough to look real, far too little to decode.
  const rows = Buffer.alloc((side + 1) * 4);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

export async function startImageServer(): Promise<ImageServer> {
  const images = new Map<string, Buffer>();
  const photo = await testImage(640, 480, "jpeg", 1);
  images.set("/photo.jpg", photo);
  images.set("/wide.jpg", await testImage(900, 300, "jpeg", 2));
  images.set("/small.png", await testImage(40, 30, "png", 3));
  images.set("/picture.webp", await testImage(300, 500, "webp", 4));
  images.set(
    "/alpha.png",
    await sharp({
      create: { width: 64, height: 48, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer(),
  );
  images.set(
    "/grey16.png",
    await sharp(await testImage(80, 60, "png", 5))
      .greyscale()
      .toColourspace("grey16")
      .png()
      .toBuffer(),
  );
  images.set(
    "/cmyk.jpg",
    await sharp(await testImage(120, 90, "jpeg", 6))
      .toColourspace("cmyk")
      .jpeg()
      .toBuffer(),
  );
  images.set(
    "/rotated.jpg",
    await sharp(await testImage(200, 100, "jpeg", 7))
      .withMetadata({ orientation: 6 })
      .withExif({ IFD0: { Make: "ClipcrawlCam", Model: "Test 1" } })
      .jpeg()
      .toBuffer(),
  );
  const frames = Buffer.concat([
    await sharp(await testImage(50, 40, "png", 8))
      .raw()
      .toBuffer(),
    await sharp(await testImage(50, 40, "png", 9))
      .raw()
      .toBuffer(),
  ]);
  images.set(
    "/animated.gif",
    await sharp(frames, { raw: { width: 50, height: 80, channels: 3, pageHeight: 40 } })
      .gif()
      .toBuffer(),
  );
  images.set("/bomb.png", decompressionBombPng());
  images.set("/truncated.jpg", photo.subarray(0, Math.floor(photo.length / 2)));
  images.set("/invalid.jpg", Buffer.from("these bytes are not an image at all, whatever the name"));
  images.set("/noai.jpg", photo);
  images.set("/other-bot-noai.jpg", photo);
  images.set("/gzip.jpg", photo);
  images.set("/flaky.jpg", photo);
  for (let index = 0; index < 40; index++) {
    images.set(`/many/${index}.jpg`, await testImage(64 + index, 48 + index, "jpeg", index));
  }

  const requests = new Map<string, number>();
  const timers = new Set<NodeJS.Timeout>();

  let inFlight = 0;
  let maxInFlight = 0;

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    response.on("close", () => inFlight--);
    const [path = "/", query = ""] = (request.url ?? "/").split("?");
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const delay = Number(new URLSearchParams(query).get("delay") ?? 0);
    if (delay > 0) {
      const timer = setTimeout(() => {
        timers.delete(timer);
        respond(path, request, response);
      }, delay);
      timers.add(timer);
    } else respond(path, request, response);
  };

  const respond = (path: string, _request: IncomingMessage, response: ServerResponse) => {
    const seen = requests.get(path) ?? 0;
    const sendImage = (type: string, extraHeaders: Record<string, string> = {}) => {
      const body = images.get(path) as Buffer;
      response.writeHead(200, {
        "content-type": type,
        "content-length": body.length,
        ...extraHeaders,
      });
      response.end(body);
    };
    switch (path) {
      case "/missing.jpg":
        response.writeHead(404, { "content-type": "text/plain" }).end("not found");
        return;
      case "/always-500.jpg":
        response.writeHead(500).end("broken");
        return;
      case "/flaky.jpg":
        if (seen === 1) response.writeHead(503).end("try again");
        else sendImage("image/jpeg");
        return;
      case "/slow-drip.jpg": {
        response.writeHead(200, { "content-type": "image/jpeg" });
        const timer = setInterval(() => response.write(Buffer.from([0xff])), 50);
        timers.add(timer);
        response.on("close", () => {
          clearInterval(timer);
          timers.delete(timer);
        });
        return;
      }
      case "/endless.jpg": {
        response.writeHead(200, { "content-type": "image/jpeg" });
        const chunk = Buffer.alloc(64 * 1024, 0xab);
        const pump = () => {
          while (!response.destroyed && response.write(chunk)) {}
          if (!response.destroyed) response.once("drain", pump);
        };
        pump();
        return;
      }
      case "/declared-too-large.jpg":
        response.writeHead(200, { "content-type": "image/jpeg", "content-length": 50_000_000 });
        response.write(Buffer.alloc(1024));
        return;
      case "/page.html":
        response
          .writeHead(200, { "content-type": "text/html; charset=utf-8" })
          .end("<html><body>not an image</body></html>");
        return;
      case "/redirect-loop.jpg":
        response.writeHead(302, { location: "/redirect-loop-2.jpg" }).end();
        return;
      case "/redirect-loop-2.jpg":
        response.writeHead(302, { location: "/redirect-loop.jpg" }).end();
        return;
      case "/redirect.jpg":
        response.writeHead(301, { location: "/photo.jpg" }).end();
        return;
      case "/noai.jpg":
        sendImage("image/jpeg", { "x-robots-tag": "noai" });
        return;
      case "/other-bot-noai.jpg":
        sendImage("image/jpeg", { "x-robots-tag": "googlebot: noai" });
        return;
      case "/gzip.jpg": {
        const body = gzipSync(images.get(path) as Buffer);
        response.writeHead(200, {
          "content-type": "image/jpeg",
          "content-encoding": "gzip",
          "content-length": body.length,
        });
        response.end(body);
        return;
      }
      default: {
        const body = images.get(path);
        if (body === undefined) {
          response.writeHead(404).end();
          return;
        }
        const type = path.endsWith(".png")
          ? "image/png"
          : path.endsWith(".gif")
            ? "image/gif"
            : path.endsWith(".webp")
              ? "image/webp"
              : "image/jpeg";
        sendImage(type);
      }
    }
  };

  const server: Server = createServer(handle);
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    images,
    maxInFlight: () => maxInFlight,
    close: async () => {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
