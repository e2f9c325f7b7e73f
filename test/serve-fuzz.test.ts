import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { after, before, test } from "node:test";
import { renderShapeImage } from "../src/demo/sample/shape-images.js";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { type RunningServer, serve } from "../src/server/serve.js";
import { buildServeFixture, type ShapeWeb, startShapeWeb } from "./support/serve-fixture.js";
import { tempDir } from "./support/temp.js";

let work: string;
let web: ShapeWeb;
let server: RunningServer;
let validImage: string;

before(async () => {
  work = await tempDir("serve-fuzz");
  web = await startShapeWeb();
  const fixture = await buildServeFixture(work, web);
  server = await serve({
    indices: [{ name: "shapes", root: fixture.root, multilingualModel: fixture.multilingualModel }],
    config: { port: 0, rateLimitPerMinute: 0, maxImageBytes: 256 * 1024 },
  });
  validImage = (await renderShapeImage("red", "circle", 3, 64)).toString("base64");
});

after(async () => {
  await server?.close();
  await web?.close();
  await rm(work, { recursive: true, force: true });
});

const FIELDS = [
  "text",
  "image",
  "image_url",
  "embedding_input",
  "modality",
  "indice_name",
  "num_images",
  "num_result_ids",
  "use_mclip",
  "deduplicate",
  "use_safety_model",
  "use_violence_detector",
  "aesthetic_score",
  "aesthetic_weight",
  "max_punsafe",
  "max_pwatermark",
  "min_aesthetic_score",
  "languages",
  "offset",
  "ids",
  "like_id",
  "like_modality",
  "verbose",
  "__proto__",
  "constructor",
];

const STRANGE_STRINGS = [
  "",
  " ",
  "a red circle",
  "ein roter Kreis",
  "🟥🔴 красный круг 赤い円 دائرة حمراء",
  "\u0000\u0001\u0002",
  "\ud800",
  "x".repeat(20_000),
  "shapes",
  "image",
  "text",
  "NaN",
  "-1",
  "1e309",
  "9",
  "0.5",
  "true",
  "data:image/png;base64,",
  "data:image/jpeg;base64,!!!!",
  "====",
  "A===",
  "AAAA",
  "/9j/4AAQSkZJRgABAQ",
  "http://",
  "http://127.0.0.1:1/x.jpg",
  "https://[::1]/x.png",
  "http://169.254.169.254/latest/meta-data/",
  "ftp://example.org/x.jpg",
  "javascript:alert(1)",
  "file:///etc/passwd",
];

const NUMBERS = [
  0,
  -0,
  1,
  -1,
  2,
  3,
  9,
  10,
  40,
  47,
  48,
  49,
  0.5,
  1e-320,
  1e308,
  -1e308,
  2 ** 53,
  2 ** 31,
  10_001,
  1e6,
  3.25,
];

function randomValue(next: () => number, depth = 0): unknown {
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)] as T;
  switch (Math.floor(next() * (depth > 2 ? 6 : 9))) {
    case 0:
      return null;
    case 1:
      return next() < 0.5;
    case 2:
      return pick(NUMBERS);
    case 3:
      return pick(STRANGE_STRINGS);
    case 4:
      return (next() - 0.5) * 10 ** Math.floor(next() * 12);
    case 5:
      return String.fromCodePoint(
        ...Array.from({ length: Math.floor(next() * 40) }, () => Math.floor(next() * 0x2ffff)),
      );
    case 6:
      return Array.from({ length: pick([0, 1, 3, 47, 48, 49, 512]) }, () =>
        next() < 0.9 ? next() * 2 - 1 : randomValue(next, depth + 1),
      );
    case 7: {
      const object: Record<string, unknown> = {};
      for (let field = 0; field < 1 + next() * 4; field++)
        object[pick(FIELDS)] = randomValue(next, depth + 1);
      return object;
    }
    default:
      return Array.from({ length: Math.floor(next() * 5) }, () => randomValue(next, depth + 1));
  }
}

/** A body built to get past some checks and trip on a later one. */
function plausibleBody(next: () => number): unknown {
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)] as T;
  const body: Record<string, unknown> = {
    indice_name: "shapes",
    modality: pick(["image", "text", "image", "audio"]),
  };
  const query = Math.floor(next() * 5);
  if (query === 0) body.text = pick(STRANGE_STRINGS);
  if (query === 1) {
    const cut = Math.floor(next() * validImage.length);
    body.image = pick([
      validImage,
      validImage.slice(0, cut),
      `${validImage.slice(0, cut)}!${validImage.slice(cut + 1)}`,
      Buffer.from(validImage, "base64").subarray(0, cut).toString("base64"),
      validImage.replaceAll("A", "-"),
    ]);
  }
  if (query === 2) body.image_url = pick(STRANGE_STRINGS);
  if (query === 3) {
    body.embedding_input = Array.from({ length: pick([47, 48, 48, 48, 49]) }, () =>
      next() < 0.97 ? next() * 2 - 1 : randomValue(next, 2),
    );
  }
  for (let extra = 0; extra < next() * 6; extra++) body[pick(FIELDS)] = randomValue(next, 1);
  if (next() < 0.5) body.num_images = pick(NUMBERS);
  return body;
}

/** Every field of the right type, with values at and past the edges of their ranges. */
function wellTypedBody(next: () => number): unknown {
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)] as T;
  const maybe = (value: () => unknown) => (next() < 0.5 ? value() : undefined);
  const tiny = () => pick([1e-40, -1e-38, 1e-30, 1e30, -1e29, 0, 1]);
  return {
    indice_name: "shapes",
    modality: pick(["image", "text"]),
    text: maybe(() => pick(STRANGE_STRINGS.filter((text) => text.length <= 10_000))),
    embedding_input: maybe(() =>
      Array.from({ length: 48 }, () => (next() < 0.1 ? tiny() : next() * 2 - 1)),
    ),
    like_id: maybe(() => Math.floor(next() * 70)),
    like_modality: maybe(() => pick(["image", "text"])),
    num_images: maybe(() => 1 + Math.floor(next() * pick([5, 100, 10_000]))),
    num_result_ids: maybe(() => 1 + Math.floor(next() * pick([5, 100, 10_000]))),
    offset: maybe(() => Math.floor(next() * pick([5, 100, 90_000]))),
    deduplicate: maybe(() => next() < 0.5),
    use_safety_model: maybe(() => next() < 0.5),
    use_violence_detector: maybe(() => next() < 0.5),
    use_mclip: maybe(() => next() < 0.5),
    aesthetic_score: maybe(() => Math.floor(next() * 10)),
    aesthetic_weight: maybe(() => (next() - 0.5) * 200),
    max_punsafe: maybe(() => (next() - 0.25) * 4),
    max_pwatermark: maybe(() => (next() - 0.25) * 4),
    max_ptoxic: maybe(() => (next() - 0.25) * 4),
    min_aesthetic_score: maybe(() => (next() - 0.25) * 40),
    languages: maybe(() =>
      Array.from({ length: Math.floor(next() * 4) }, () => pick(["en", "de", "", "xx", "🙂"])),
    ),
    ids: maybe(() =>
      Array.from({ length: Math.floor(next() * 20) }, () => Math.floor(next() * 60)),
    ),
  };
}

/** A field nested thousands of levels deep, or an array far past every limit, in a valid body. */
function oversizedBody(next: () => number): string {
  const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)] as T;
  const field = pick(FIELDS);
  if (next() < 0.5) {
    const depth = pick([100, 1_000, 10_000, 50_000]);
    const [open, close] = pick([
      ["[", "]"],
      ['{"a":', "}"],
      ['{"text":', "}"],
    ] as const);
    return `{"indice_name":"shapes","${field}":${open.repeat(depth)}1${close.repeat(depth)}}`;
  }
  const length = pick([10_001, 100_000, 150_000, 400_000]);
  const item = pick(["0", "1e308", "-1", '"a"', "null", "[]", "0.5"]);
  return `{"indice_name":"shapes","modality":"image","${field}":[${Array(length).fill(item).join(",")}]}`;
}

function randomRequest(next: () => number): { path: string; body: string; contentType?: string } {
  const path = next() < 0.75 ? "/knn-service" : "/metadata";
  const kind = next();
  let body: string;
  if (next() < 0.03) body = oversizedBody(next);
  else if (kind < 0.3) body = JSON.stringify(plausibleBody(next));
  else if (kind < 0.55) body = JSON.stringify(wellTypedBody(next));
  else if (kind < 0.8) body = JSON.stringify(randomValue(next)) ?? "null";
  else if (kind < 0.9) {
    const text = JSON.stringify(plausibleBody(next));
    body = text.slice(0, Math.floor(next() * text.length));
  } else {
    body = Buffer.from(
      Array.from({ length: Math.floor(next() * 300) }, () => Math.floor(next() * 256)),
    ).toString("latin1");
  }
  const contentType = [
    undefined,
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "image/png",
  ][Math.floor(next() * 5)];
  return contentType === undefined ? { path, body } : { path, body, contentType };
}

test("a few thousand malformed requests to /knn-service and /metadata: no 5xx, the server lives on", async (t) => {
  const next = seededUniform(20_260_101);
  const total = 3000;
  const statuses = new Map<number, number>();
  const failures: string[] = [];
  let sent = 0;
  const worker = async () => {
    while (sent < total) {
      sent++;
      const request = randomRequest(next);
      const response = await fetch(`${server.url}${request.path}`, {
        method: "POST",
        headers: request.contentType === undefined ? {} : { "content-type": request.contentType },
        body: request.body,
      });
      const text = await response.text();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      if (response.status >= 500)
        failures.push(`${response.status} ${request.path} ${request.body.slice(0, 200)} → ${text}`);
      else if (response.status >= 400) {
        const error = JSON.parse(text) as { error?: unknown };
        assert.equal(typeof error.error, "string", `an error answer names its cause: ${text}`);
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  t.diagnostic(`statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
  assert.deepEqual(failures, []);
  assert.ok(
    (statuses.get(400) ?? 0) > total / 3,
    `mostly refused: ${JSON.stringify([...statuses])}`,
  );
  assert.ok(
    (statuses.get(200) ?? 0) > total / 10,
    `some were valid: ${JSON.stringify([...statuses])}`,
  );
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  const answer = await fetch(`${server.url}/knn-service`, {
    method: "POST",
    body: JSON.stringify({
      indice_name: "shapes",
      modality: "image",
      text: "a red circle",
      num_images: 2,
    }),
  });
  assert.equal(answer.status, 200, "queries still answered");
});
