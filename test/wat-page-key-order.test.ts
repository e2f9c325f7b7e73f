import assert from "node:assert/strict";
import { test } from "node:test";
import { seededUniform } from "../src/demo/sample/wat-generator.js";
import { parseWarcRecords, type WarcRecord } from "../src/stages/extract/warc-records.js";
import {
  linkPathPatterns,
  readWatPage,
  readWatPageFast,
  readWatPageFully,
  type WatPage,
} from "../src/stages/extract/wat-page.js";
import { warcRecord } from "./support/warc-build.js";

/**
 * A response's WAT JSON with every object the fast reading looks into, as real crawls write it,
 * and HTTP response headers named like the fields it reads (servers send any header name).
 */
function watEnvelope(options: { base?: string; container?: boolean }): Record<string, unknown> {
  return {
    ...(options.container === false
      ? {}
      : {
          Container: {
            Filename: "CC-MAIN-20190519061520-20190519083520-00042.warc.gz",
            Compressed: true,
            Offset: "98765",
            "Gzip-Metadata": {
              "Deflate-Length": "5123",
              "Header-Length": "10",
              "Footer-Length": "8",
              "Inflated-CRC": "-1234",
              "Inflated-Length": "20345",
            },
          },
        }),
    Envelope: {
      Format: "WARC",
      "WARC-Header-Length": "577",
      "Block-Digest": "sha1:ABCDEF",
      "Actual-Content-Length": "20000",
      "WARC-Header-Metadata": {
        "WARC-Type": "response",
        "WARC-Date": "2019-05-19T06:30:01Z",
        "WARC-Record-ID": "<urn:uuid:8a4d8a1e-0000-0000-0000-000000000000>",
        "Content-Length": "20000",
        "WARC-IP-Address": "192.0.2.7",
        "WARC-Target-URI": "https://www.example.com/shop/index.html",
        "WARC-Identified-Payload-Type": "text/html",
      },
      "Payload-Metadata": {
        "Actual-Content-Type": "application/http; msgtype=response",
        "HTTP-Response-Metadata": {
          "Response-Message": { Status: "200", Version: "HTTP/1.1", Reason: "OK" },
          Headers: {
            Server: "nginx",
            "Content-Type": "text/html",
            Offset: "0",
            Filename: "export.csv",
            Base: "https://header.example/",
            "WARC-Date": "not the crawl date",
            "WARC-Target-URI": "https://header.example/",
            Container: "box",
            Head: "x",
          },
          "Headers-Length": "300",
          "Entity-Length": "19700",
          "HTML-Metadata": {
            Head: {
              Title: "Chairs {and} tables",
              Metas: [
                { name: "description", content: "Chairs, sofas and lamps" },
                { property: "og:image", content: "https://www.example.com/og.jpg" },
              ],
              Scripts: [{ path: "SCRIPT@/src", url: "/app.js" }],
              Link: [{ path: "LINK@/href", rel: "stylesheet", url: "/a.css" }],
              ...(options.base === undefined ? {} : { Base: options.base }),
            },
            Links: [
              { path: "A@/href", url: "/about", text: "About us" },
              { path: "IMG@/src", url: "img/red-chair.jpg", alt: "A red leather armchair" },
              { path: "A@/href", url: "/contact", text: "Contact", rel: "nofollow" },
              { path: "IMG@/src", url: "/logo.png", title: "Logo" },
              { path: "IMG@/src", url: "photo.jpg", alt: "", width: "300" },
              { path: "A@/href", url: "/cart", title: "Your cart", target: "_blank" },
            ],
          },
        },
      },
    },
  };
}

type Reorder = (keys: string[], path: string) => string[];

/** The same JSON value with each object's keys in the order `reorder` gives; arrays keep theirs. */
function withKeyOrder(value: unknown, reorder: Reorder, path = ""): unknown {
  if (Array.isArray(value)) return value.map((item) => withKeyOrder(item, reorder, `${path}[]`));
  if (value === null || typeof value !== "object") return value;
  const object = value as Record<string, unknown>;
  const result: Record<string, unknown> = {};
  for (const key of reorder(Object.keys(object), path)) {
    result[key] = withKeyOrder(object[key], reorder, `${path}/${key}`);
  }
  return result;
}

function shuffled(random: () => number): Reorder {
  return (keys) => {
    const copy = [...keys];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [copy[i], copy[j]] = [copy[j] as string, copy[i] as string];
    }
    return copy;
  };
}

function metadataRecord(envelope: unknown, targetUriHeader: boolean): WarcRecord {
  const headers: Record<string, string> = {
    "WARC-Type": "metadata",
    "WARC-Date": "2019-05-25T00:00:00Z",
    "Content-Type": "application/json",
  };
  if (targetUriHeader) headers["WARC-Target-URI"] = "https://www.example.com/shop/index.html";
  const [record] = parseWarcRecords(warcRecord(headers, JSON.stringify(envelope)), 0);
  assert.ok(record !== undefined);
  return record;
}

const imgOnly = linkPathPatterns(["IMG@/src"]);
const imgAndAnchors = linkPathPatterns(["IMG@/src", "A@/href"]);

function expectedPage(options: { base?: string; container?: boolean }): WatPage {
  return {
    pageUrl: "https://www.example.com/shop/index.html",
    baseHref: options.base,
    crawlDate: "2019-05-19T06:30:01Z",
    warcFilename:
      options.container === false ? "" : "CC-MAIN-20190519061520-20190519083520-00042.warc.gz",
    warcOffset: options.container === false ? null : 98765,
    links: [
      { path: "IMG@/src", url: "img/red-chair.jpg", alt: "A red leather armchair" },
      { path: "IMG@/src", url: "/logo.png" },
      { path: "IMG@/src", url: "photo.jpg", alt: "" },
    ],
  };
}

/** Every reading of the record, record by record: the fast one must agree with JSON.parse. */
function assertReadingsAgree(record: WarcRecord, expected: WatPage, label: string): void {
  const full = readWatPageFully(record, imgOnly.paths);
  assert.deepEqual(full, expected, `JSON.parse reading, ${label}`);
  assert.deepEqual(readWatPageFast(record, imgOnly), full, `fast reading, ${label}`);
  assert.deepEqual(readWatPage(record, imgOnly), full, label);
  assert.deepEqual(
    readWatPageFast(record, imgAndAnchors),
    readWatPageFully(record, imgAndAnchors.paths),
    `fast reading with anchors, ${label}`,
  );
}

const variants = [
  { base: "https://cdn.example.com/assets/" },
  {},
  { base: "", container: false },
  { base: "../up/" },
] as const;

test("provenance, base, date and links read right with Envelope before Container, as older crawls write", () => {
  for (const options of variants) {
    for (const targetUriHeader of [true, false]) {
      const envelopeFirst = withKeyOrder(watEnvelope(options), (keys, path) =>
        path === "" ? [...keys].reverse() : keys,
      );
      assert.equal(Object.keys(envelopeFirst as object)[0], "Envelope");
      assertReadingsAgree(
        metadataRecord(envelopeFirst, targetUriHeader),
        expectedPage(options),
        `Envelope first, ${JSON.stringify(options)}, target URI header ${targetUriHeader}`,
      );
    }
  }
});

test("every object's keys reversed, one object at a time, read the same as JSON.parse", () => {
  const paths = new Set<string>();
  withKeyOrder(watEnvelope({ base: "https://cdn.example.com/" }), (keys, path) => {
    paths.add(path);
    return keys;
  });
  for (const reversedPath of paths) {
    for (const options of variants) {
      const envelope = withKeyOrder(watEnvelope(options), (keys, path) =>
        path === reversedPath ? [...keys].reverse() : keys,
      );
      assertReadingsAgree(
        metadataRecord(envelope, false),
        expectedPage(options),
        `keys of ${reversedPath || "the root"} reversed, ${JSON.stringify(options)}`,
      );
    }
  }
});

test("the keys of every object shuffled at once, 400 seeded orders, read the same as JSON.parse", () => {
  const random = seededUniform(16);
  for (let round = 0; round < 400; round++) {
    const options = variants[round % variants.length] as (typeof variants)[number];
    const envelope = withKeyOrder(watEnvelope(options), shuffled(random));
    assertReadingsAgree(
      metadataRecord(envelope, round % 2 === 0),
      expectedPage(options),
      `round ${round}: ${JSON.stringify(envelope).slice(0, 120)}…`,
    );
  }
});

test("an object the fast reading needs that occurs twice sends the record to JSON.parse", () => {
  const envelope = watEnvelope({ base: "https://cdn.example.com/" });
  const doubled = JSON.stringify(envelope).replace(
    '"Headers":{',
    '"Headers":{"X":{"Container":{"Filename":"decoy.warc.gz","Offset":"1"}},',
  );
  const [record] = parseWarcRecords(warcRecord({ "WARC-Type": "metadata" }, doubled), 0);
  assert.ok(record !== undefined);
  assert.equal(readWatPageFast(record, imgOnly), undefined);
  assert.equal(readWatPage(record, imgOnly)?.warcFilename, expectedPage({}).warcFilename);
});
