import assert from "node:assert/strict";
import { test } from "node:test";
import {
  cleanText,
  type LinkOutcome,
  pageBaseUrl,
  resolveLink,
} from "../src/stages/extract/candidate-pairs.js";
import type { WatPage } from "../src/stages/extract/wat-page.js";

function page(pageUrl: string, baseHref?: string): WatPage {
  return { pageUrl, baseHref, crawlDate: "", warcFilename: "", warcOffset: null, links: [] };
}

function resolve(url: string, from: WatPage, alt = "a long enough caption"): LinkOutcome {
  return resolveLink({ path: "IMG@/src", url, alt }, pageBaseUrl(from), 5);
}

const article = page("https://news.example.com/world/2024/story.html?id=7");

for (const [src, expected] of [
  ["https://cdn.example.net/a.jpg", "https://cdn.example.net/a.jpg"],
  ["http://cdn.example.net/a.jpg", "http://cdn.example.net/a.jpg"],
  ["images/a.jpg", "https://news.example.com/world/2024/images/a.jpg"],
  ["/static/a.png", "https://news.example.com/static/a.png"],
  ["//cdn.example.net/x.jpg", "https://cdn.example.net/x.jpg"],
  ["../../img/b.jpg", "https://news.example.com/img/b.jpg"],
  ["  \n images/padded.jpg \t", "https://news.example.com/world/2024/images/padded.jpg"],
  ["img/a photo é.jpg", "https://news.example.com/world/2024/img/a%20photo%20%C3%A9.jpg"],
  ["https://cdn.example.net/a.jpg#frag", "https://cdn.example.net/a.jpg"],
  ["cdn.example.org/x.jpg", "https://news.example.com/world/2024/cdn.example.org/x.jpg"],
] as const) {
  test(`an image src ${JSON.stringify(src)} resolves against the page as a browser would`, () => {
    assert.deepEqual(resolve(src, article), {
      pair: { url: expected, text: "a long enough caption" },
    });
  });
}

test("relative URLs resolve against <base href>, itself resolved against the page", () => {
  assert.equal(
    (
      resolve("x.jpg", page("https://a.example/p/q.html", "https://media.example/assets/")) as {
        pair: { url: string };
      }
    ).pair.url,
    "https://media.example/assets/x.jpg",
  );
  assert.equal(
    (resolve("x.jpg", page("https://a.example/p/q.html", "/cdn/")) as { pair: { url: string } })
      .pair.url,
    "https://a.example/cdn/x.jpg",
  );
});

for (const [src, reason] of [
  ["data:image/png;base64,iVBORw0KGgo=", "unsupported_scheme"],
  ["javascript:void(0)", "unsupported_scheme"],
  ["ftp://files.example.com/a.jpg", "unsupported_scheme"],
  ["mailto:someone@example.com", "unsupported_scheme"],
  ["https://user:secret@example.com/a.jpg", "url_has_credentials"],
  ["http://[::1", "invalid_url"],
  ["https://", "invalid_url"],
] as const) {
  test(`an image src ${JSON.stringify(src)} is dropped as ${reason}`, () => {
    assert.deepEqual(resolve(src, article), { dropped: reason });
  });
}

test("a link without alt text, or with alt shorter than the minimum, is dropped with its reason", () => {
  assert.deepEqual(resolveLink({ path: "IMG@/src", url: "/a.jpg" }, pageBaseUrl(article), 5), {
    dropped: "no_alt",
  });
  assert.deepEqual(resolve("/a.jpg", article, " logo "), { dropped: "short_text" });
  assert.deepEqual(resolve("/a.jpg", article, "😀😀😀😀"), { dropped: "short_text" });
  assert.ok("pair" in resolve("/a.jpg", article, "😀😀😀😀😀"), "five emoji are five characters");
});

test("an empty or blank alt counts as no alt text, not as a short one", () => {
  for (const alt of ["", "   ", "\t\n", "&nbsp;", "\u200b"]) {
    assert.deepEqual(resolve("/a.jpg", article, alt), { dropped: "no_alt" }, JSON.stringify(alt));
  }
  assert.deepEqual(resolve("/a.jpg", article, "a"), { dropped: "short_text" });
});

test("alt text: leftover HTML entities are decoded, whitespace and control characters cleaned", () => {
  assert.equal(
    cleanText("  Caf&eacute;\t\n&amp;  bar &#x1F600; &quot;x&quot;  "),
    'Café & bar 😀 "x"',
  );
  assert.equal(cleanText("a\u0000b\u0007c\u00a0d\u2003e"), "abc d e");
  assert.equal(
    cleanText("Rotes Fahrrad vor einer Backsteinmauer"),
    "Rotes Fahrrad vor einer Backsteinmauer",
  );
});
