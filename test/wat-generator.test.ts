import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { WARCParser } from "warcio";
import {
  CAPTION_LANGUAGES,
  CAPTIONS_BY_LANGUAGE,
  NO_LANGUAGE_ALTS,
} from "../src/demo/sample/sample-captions.js";
import {
  DEFAULT_PAGES_PER_FILE,
  SAMPLE_FILE_COUNT,
  SAMPLE_SEED,
  SHAPE_COLOURS,
  SHAPE_IMAGE_HOST,
  SHAPE_NAMES,
  sampleFileName,
  type WatFileSummary,
  writeWatFile,
} from "../src/demo/sample/wat-generator.js";

// ---------------------------------------------------------------------------------------------
// Reading WAT files back, independently of the generator
// ---------------------------------------------------------------------------------------------

interface WarcRecord {
  headers: Map<string, string>;
  body: Buffer;
}

const CRLF2 = Buffer.from("\r\n\r\n");

/** Splits uncompressed WARC data into records, trusting nothing but Content-Length. */
function parseWarcRecords(data: Buffer): WarcRecord[] {
  const records: WarcRecord[] = [];
  let position = 0;
  while (position < data.length) {
    assert.equal(data.toString("latin1", position, position + 10), "WARC/1.0\r\n");
    const headerEnd = data.indexOf(CRLF2, position);
    assert.ok(headerEnd > 0, `record at ${position} has no end of headers`);
    const headers = new Map<string, string>();
    for (const line of data.toString("utf8", position + 10, headerEnd).split("\r\n")) {
      const colon = line.indexOf(": ");
      headers.set(line.slice(0, colon), line.slice(colon + 2));
    }
    const length = Number(headers.get("Content-Length"));
    assert.ok(Number.isSafeInteger(length), "Content-Length is an integer");
    const bodyStart = headerEnd + 4;
    const bodyEnd = bodyStart + length;
    assert.ok(
      data.subarray(bodyEnd, bodyEnd + 4).equals(CRLF2),
      `record at ${position}: Content-Length ${length} does not end where the body ends`,
    );
    records.push({ headers, body: data.subarray(bodyStart, bodyEnd) });
    position = bodyEnd + 4;
  }
  return records;
}

// The WAT envelope is deep and loosely typed; tests reach into it with `any`.
// biome-ignore lint/suspicious/noExplicitAny: see above
type Json = any;

interface Page {
  url: string;
  language: string | undefined;
  html: Json;
  responseJsonBytes: number;
}

/** Response records of a file, with the language CLD2 gave their page in the metadata record. */
function pagesOf(records: readonly WarcRecord[]): Page[] {
  const pages: Page[] = [];
  for (let i = 2; i + 2 < records.length; i += 3) {
    const response = JSON.parse((records[i + 1] as WarcRecord).body.toString("utf8"));
    const metadata = JSON.parse((records[i + 2] as WarcRecord).body.toString("utf8"));
    const fields = metadata.Envelope["Payload-Metadata"]["WARC-Metadata-Metadata"];
    const cld2 = fields["Metadata-Records"].find((field: Json) => field.Name === "languages-cld2");
    pages.push({
      url: (records[i + 1] as WarcRecord).headers.get("WARC-Target-URI") ?? "",
      language: cld2 === undefined ? undefined : JSON.parse(cld2.Value).languages[0].code,
      html: response.Envelope["Payload-Metadata"]["HTTP-Response-Metadata"]?.["HTML-Metadata"],
      responseJsonBytes: (records[i + 1] as WarcRecord).body.length,
    });
  }
  return pages;
}

function envelopeOf(record: WarcRecord): Json {
  return JSON.parse(record.body.toString("utf8"));
}

async function readWarcRecords(path: string): Promise<WarcRecord[]> {
  return parseWarcRecords(gunzipSync(await readFile(path)));
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

let workDir: string;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), "wat-generator-test-"));
});

after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe("a generated WAT file", () => {
  let path: string;
  let summary: WatFileSummary;
  let records: WarcRecord[];

  before(async () => {
    path = join(workDir, "one.warc.wat.gz");
    summary = await writeWatFile(path, { seed: 7, pages: 60, recordOffsets: true });
    records = await readWarcRecords(path);
  });

  test("the same options give a byte-identical file, and another seed another file", async () => {
    const again = join(workDir, "again", "one.warc.wat.gz");
    await mkdir(join(workDir, "again"));
    await writeWatFile(again, { seed: 7, pages: 60 });
    assert.ok((await readFile(again)).equals(await readFile(path)));

    const other = join(workDir, "other.warc.wat.gz");
    await writeWatFile(other, { seed: 8, pages: 60 });
    assert.ok(!(await readFile(other)).equals(await readFile(path)));
  });

  test("worker threads write the very same bytes as the calling thread", async () => {
    const inline = join(workDir, "inline.warc.wat.gz");
    const threaded = join(workDir, "threaded", "inline.warc.wat.gz");
    await mkdir(join(workDir, "threaded"));
    await writeWatFile(inline, { seed: 3, pages: 80, workers: 0 });
    await writeWatFile(threaded, { seed: 3, pages: 80, workers: 2 });
    assert.ok((await readFile(threaded)).equals(await readFile(inline)));
  });

  test("every record is a gzip member of its own", async () => {
    const file = await readFile(path);
    const offsets = summary.memberOffsets ?? [];
    assert.equal(offsets.length, summary.records);
    assert.equal(summary.records, 2 + 3 * 60);
    const wholeFile = gunzipSync(file);
    const members = offsets.map((start, i) => file.subarray(start, offsets[i + 1] ?? file.length));
    const inflated = members.map((member) => {
      assert.deepEqual([...member.subarray(0, 3)], [0x1f, 0x8b, 0x08], "gzip magic and deflate");
      const record = gunzipSync(member);
      assert.equal(parseWarcRecords(record).length, 1, "one WARC record per member");
      return record;
    });
    assert.ok(Buffer.concat(inflated).equals(wholeFile));
  });

  test("it opens with its warcinfo record, then the source WARC's warcinfo", () => {
    const [warcinfo, sourceWarcinfo] = records as [WarcRecord, WarcRecord];
    assert.equal(warcinfo.headers.get("WARC-Type"), "warcinfo");
    assert.equal(warcinfo.headers.get("Content-Type"), "application/warc-fields");
    assert.equal(warcinfo.headers.get("WARC-Filename"), basename(path));
    const fields = warcinfo.body.toString("utf8").split("\r\n").filter(Boolean);
    assert.deepEqual(
      fields.map((line) => line.slice(0, line.indexOf(":"))),
      ["Software-Info", "Extracted-Date", "ip", "hostname", "format", "conformsTo"],
    );
    assert.match(fields[0] ?? "", /^Software-Info: ia-web-commons\.1\.1\.9-SNAPSHOT-\d{14}$/);

    const envelope = envelopeOf(sourceWarcinfo);
    assert.equal(sourceWarcinfo.headers.get("WARC-Type"), "metadata");
    assert.equal(sourceWarcinfo.headers.get("WARC-Target-URI"), envelope.Container.Filename);
    assert.match(envelope.Container.Filename, /^CC-MAIN-\d{14}-\d{14}-\d{5}\.warc\.gz$/);
    assert.equal(envelope.Envelope["WARC-Header-Metadata"]["WARC-Type"], "warcinfo");
    assert.equal(envelope.Container.Offset, "0");
  });

  test("every metadata record is JSON, and Content-Length counts its UTF-8 bytes", () => {
    let multiByteBodies = 0;
    for (const record of records.slice(1)) {
      assert.equal(record.headers.get("WARC-Type"), "metadata");
      assert.equal(record.headers.get("Content-Type"), "application/json");
      assert.match(record.headers.get("WARC-Record-ID") ?? "", /^<urn:uuid:[0-9a-f-]{36}>$/);
      assert.match(record.headers.get("WARC-Refers-To") ?? "", /^<urn:uuid:[0-9a-f-]{36}>$/);
      const text = record.body.toString("utf8");
      assert.doesNotThrow(() => JSON.parse(text));
      if (text.length !== record.body.length) multiByteBodies++;
    }
    // Otherwise a character count would pass for a byte count.
    assert.ok(multiByteBodies > 10, `only ${multiByteBodies} bodies hold non-ASCII text`);
  });

  test("each capture is a request, a response and a metadata record, in source WARC order", () => {
    let expectedOffset = Number(envelopeOf(records[1] as WarcRecord).Container.Offset);
    for (const [i, record] of records.slice(1).entries()) {
      const envelope = envelopeOf(record);
      const warcHeaders = envelope.Envelope["WARC-Header-Metadata"];
      if (i > 0) {
        assert.equal(warcHeaders["WARC-Type"], ["request", "response", "metadata"][(i - 1) % 3]);
        assert.equal(warcHeaders["WARC-Target-URI"], record.headers.get("WARC-Target-URI"));
      }
      assert.equal(record.headers.get("WARC-Refers-To"), warcHeaders["WARC-Record-ID"]);
      assert.equal(envelope.Container.Offset, String(expectedOffset));
      expectedOffset += Number(envelope.Container["Gzip-Metadata"]["Deflate-Length"]);
    }
  });

  test("warcio reads every record of it", async () => {
    let count = 0;
    for await (const record of new WARCParser(createReadStream(path))) {
      const text = await record.contentText();
      if (record.warcType === "metadata") assert.doesNotThrow(() => JSON.parse(text));
      count++;
    }
    assert.equal(count, summary.records);
  });

  test("the summary counts what the file holds", () => {
    const pages = pagesOf(records).filter((page) => page.html !== undefined);
    const images = pages.flatMap((page) =>
      page.html.Links.filter((entry: Json) => entry.path === "IMG@/src"),
    );
    assert.equal(summary.htmlPages, pages.length);
    assert.equal(summary.imgLinks, images.length);
    assert.equal(
      summary.imgLinksWithAlt,
      images.filter((image: Json) => typeof image.alt === "string" && image.alt.trim() !== "")
        .length,
    );
  });
});

test("minBytes keeps adding captures until the file is big enough", async () => {
  const path = join(workDir, "big.warc.wat.gz");
  const summary = await writeWatFile(path, { seed: 11, pages: 10, minBytes: 1_500_000 });
  assert.ok(summary.bytes >= 1_500_000);
  assert.ok(summary.captures > 10);
  assert.equal((await readFile(path)).length, summary.bytes);
  assert.equal((await readWarcRecords(path)).length, summary.records);
});

test("a path that cannot be written rejects with the file system's error", async () => {
  const path = join(workDir, "missing-directory", "x.warc.wat.gz");
  await assert.rejects(writeWatFile(path, { seed: 1, pages: 5 }), { code: "ENOENT" });
});

describe("the default sample", () => {
  let files: WarcRecord[][];
  let pages: Page[];
  let images: { page: Page; url: string; alt?: string; title?: string }[];

  before(async () => {
    const summaries: WatFileSummary[] = [];
    for (let fileIndex = 0; fileIndex < SAMPLE_FILE_COUNT; fileIndex++) {
      const path = join(workDir, sampleFileName(fileIndex));
      summaries.push(await writeWatFile(path, { seed: SAMPLE_SEED, fileIndex }));
    }
    const totalBytes = summaries.reduce((sum, summary) => sum + summary.bytes, 0);
    assert.ok(totalBytes > 2e6 && totalBytes < 4e6, `sample is ${totalBytes} bytes`);
    files = await Promise.all(summaries.map((summary) => readWarcRecords(summary.path)));
    pages = files.flatMap(pagesOf).filter((page) => page.html !== undefined);
    images = pages.flatMap((page) =>
      page.html.Links.filter((entry: Json) => entry.path === "IMG@/src").map((entry: Json) => ({
        page,
        ...entry,
      })),
    );
  });

  /** Asserts that at least `times` of `items` match, naming the case when they do not. */
  function occursSeveralTimes<T>(
    name: string,
    items: readonly T[],
    matches: (item: T) => boolean,
    times = 3,
  ): void {
    const count = items.filter(matches).length;
    assert.ok(count >= times, `${name}: ${count} times, expected at least ${times}`);
  }

  test(`has ${DEFAULT_PAGES_PER_FILE} captures per file and every kind of response`, () => {
    const responses = files.flatMap((records) =>
      records.filter((_, i) => i >= 2 && (i - 2) % 3 === 1).map(envelopeOf),
    );
    assert.equal(responses.length, SAMPLE_FILE_COUNT * DEFAULT_PAGES_PER_FILE);
    const http = responses.map((envelope) => envelope.Envelope["Payload-Metadata"]);
    const statusOf = (payload: Json) =>
      payload["HTTP-Response-Metadata"]["Response-Message"].Status;
    const typeOf = (payload: Json) =>
      payload["HTTP-Response-Metadata"].Headers["Content-Type"] ?? "";
    occursSeveralTimes("image/jpeg", http, (payload) => typeOf(payload) === "image/jpeg");
    occursSeveralTimes("application/pdf", http, (payload) => typeOf(payload) === "application/pdf");
    occursSeveralTimes("404", http, (payload) => statusOf(payload) === "404");
    occursSeveralTimes("301", http, (payload) => statusOf(payload) === "301");
    occursSeveralTimes(
      "Headers-Corrupt",
      http,
      (payload) => payload["HTTP-Response-Metadata"]["Headers-Corrupt"] === true,
    );
    occursSeveralTimes("robots.txt", responses, (envelope) =>
      envelope.Envelope["WARC-Header-Metadata"]["WARC-Target-URI"].endsWith("/robots.txt"),
    );
    for (const payload of http.filter((payload) =>
      /^(image|application)\//.test(typeOf(payload)),
    )) {
      assert.equal(payload["HTTP-Response-Metadata"]["HTML-Metadata"], undefined);
    }
  });

  test("has every kind of link, pages of realistic size and a few huge ones", () => {
    const links = pages.flatMap((page) => page.html.Links);
    for (const path of [
      "A@/href",
      "IMG@/src",
      "IFRAME@/src",
      "FORM@/action",
      "LINK@/href",
      "TD@/background",
      "DIV@/data-uri",
    ]) {
      occursSeveralTimes(path, links, (entry: Json) => entry.path === path);
    }
    const anchors = links.filter((entry: Json) => entry.path === "A@/href").length;
    assert.ok(anchors > links.length / 2, "most links are anchors");

    const huge = pages.filter((page) => page.html.Links.length >= 2000);
    assert.ok(huge.length >= 3, `${huge.length} huge pages`);
    for (const page of huge) {
      const imageCount = page.html.Links.filter((entry: Json) => entry.path === "IMG@/src").length;
      assert.ok(page.html.Links.length <= 6000 && imageCount >= 1000);
    }
    const ordinary = pages.filter((page) => page.html.Links.length > 40);
    const sizes = ordinary.map((page) => page.responseJsonBytes).sort((a, b) => a - b);
    const median = sizes[Math.floor(sizes.length / 2)] ?? 0;
    assert.ok(median >= 10_000 && median <= 30_000, `median page JSON is ${median} bytes`);
  });

  test("has image URLs in every form the extractor must handle", () => {
    const urls = images.map((image) => image.url);
    const cases: [string, (url: string) => boolean][] = [
      ["absolute https", (url) => url.startsWith("https://")],
      ["absolute http", (url) => url.startsWith("http://")],
      ["relative", (url) => /^[a-z][\w-]*\/[^:]*$/.test(url)],
      ["root-relative", (url) => /^\/[^/]/.test(url)],
      ["protocol-relative", (url) => url.startsWith("//")],
      ["parent directory", (url) => url.includes("../")],
      ["data:", (url) => url.startsWith("data:image/")],
      ["javascript:", (url) => url.startsWith("javascript:")],
      ["ftp:", (url) => url.startsWith("ftp://")],
      ["mailto:", (url) => url.startsWith("mailto:")],
      ["spaces", (url) => url.includes(" ")],
      ["non-ASCII path", (url) => /[^ -~]/.test(url)],
      ["percent-encoded", (url) => /%[0-9A-F]{2}/.test(url)],
      ["credentials", (url) => /^https:\/\/[^/@]+:[^/@]+@/.test(url)],
      ["no scheme", (url) => /^[a-z0-9.-]+\.(test|org|com|net)\//.test(url)],
      ["empty", (url) => url === ""],
    ];
    for (const [name, matches] of cases) occursSeveralTimes(name, urls, matches);

    const bases = pages.map((page) => page.html.Head.Base).filter((base) => base !== undefined);
    occursSeveralTimes("<base href>", bases, () => true);
    occursSeveralTimes("relative <base href>", bases, (base: string) => !base.includes("://"));
  });

  test("has alts without, with, and instead of title; in every language; and odd ones", () => {
    occursSeveralTimes("no alt", images, (image) => image.alt === undefined);
    occursSeveralTimes("title only", images, (image) => image.alt === undefined && !!image.title);
    const alts = images.flatMap((image) => (image.alt === undefined ? [] : [image.alt]));
    for (const language of CAPTION_LANGUAGES) {
      const captions = new Set(CAPTIONS_BY_LANGUAGE[language]);
      occursSeveralTimes(`${language} caption`, alts, (alt) => captions.has(alt));
    }
    const noLanguage = new Set(NO_LANGUAGE_ALTS);
    occursSeveralTimes("no-language alt", alts, (alt) => noLanguage.has(alt));
    for (const entity of ["&amp;", "&quot;", "&#39;", "&eacute;", "&#x1F600;"]) {
      occursSeveralTimes(entity, alts, (alt) => alt.includes(entity));
    }
    occursSeveralTimes("whitespace runs", alts, (alt) => /\s{2,}|\t|\n/.test(alt.trim()));
    occursSeveralTimes("outer whitespace", alts, (alt) => alt !== alt.trim() && alt.trim() !== "");
    occursSeveralTimes("emoji", alts, (alt) => /\p{Extended_Pictographic}/u.test(alt));
    occursSeveralTimes("short alt", alts, (alt) => alt.trim().length > 0 && alt.length < 5);
    occursSeveralTimes("very long alt", alts, (alt) => alt.length > 1000);
  });

  test("repeats images across pages, under the same alt and under different ones", () => {
    const pagesByPair = new Map<string, Set<string>>();
    const altsByUrl = new Map<string, Set<string>>();
    for (const image of images) {
      if (image.alt === undefined || image.url === "") continue;
      const pair = `${image.url}\n${image.alt}`;
      pagesByPair.set(pair, (pagesByPair.get(pair) ?? new Set()).add(image.page.url));
      altsByUrl.set(image.url, (altsByUrl.get(image.url) ?? new Set()).add(image.alt));
    }
    occursSeveralTimes("(url, alt) on 5+ pages", [...pagesByPair.values()], (set) => set.size >= 5);
    occursSeveralTimes("url with 2+ alts", [...altsByUrl.values()], (set) => set.size >= 2);
  });

  test("points about 30 % of English image links at shapes, 80 % of them described right", () => {
    const english = images.filter((image) => image.page.language === "en");
    const shapes = english.filter((image) => image.url.includes(SHAPE_IMAGE_HOST));
    const share = shapes.length / english.length;
    assert.ok(share > 0.22 && share < 0.38, `shape share ${share.toFixed(2)}`);
    const described = shapes.filter((image) => {
      const [colour, shape] = /img\/([a-z]+)-([a-z]+)-\d{4}\.jpg$/.exec(image.url)?.slice(1) ?? [];
      const words = (image.alt ?? "").toLowerCase().split(/\s+/);
      return words.includes(colour ?? "") && words.includes(shape ?? "");
    });
    const right = described.length / shapes.length;
    assert.ok(right > 0.72 && right < 0.88, `right alts ${right.toFixed(2)}`);
    for (const image of shapes) {
      const [colour, shape] = /img\/([a-z]+)-([a-z]+)-/.exec(image.url)?.slice(1) ?? [];
      assert.ok((SHAPE_COLOURS as readonly string[]).includes(colour ?? ""));
      assert.ok((SHAPE_NAMES as readonly string[]).includes(shape ?? ""));
    }
  });

  test("spans hundreds of sites, all under reserved test domains", () => {
    const allPages = files.flatMap(pagesOf);
    const hosts = new Set(allPages.map((page) => new URL(page.url).host));
    assert.ok(hosts.size >= 200, `${hosts.size} sites`);
    const reserved = /(^|\.)(test|example\.(com|net|org))$/;
    const linked = pages.flatMap((page) => [
      ...page.html.Links.map((entry: Json) => entry.url as string),
      ...page.html.Head.Link.map((entry: Json) => entry.url as string),
      ...page.html.Head.Scripts.map((entry: Json) => entry.url as string),
    ]);
    for (const url of [...allPages.map((page) => page.url), ...linked]) {
      const absolute = /^\s*(https?:|ftp:)?\/\//.exec(url);
      if (absolute === null) continue;
      const host = new URL(url.trim(), "https://base.test/").hostname;
      assert.match(host, reserved, `${url} is outside the reserved domains`);
    }
  });
});

describe("the caption corpus", () => {
  test("has at least 25 captions of 5 to 15 words in each of 20 languages", () => {
    assert.equal(CAPTION_LANGUAGES.length, 20);
    const unspaced = new Set(["zh", "ja", "th"]);
    for (const language of CAPTION_LANGUAGES) {
      const captions = CAPTIONS_BY_LANGUAGE[language];
      assert.ok(captions.length >= 25, `${language}: ${captions.length} captions`);
      assert.equal(new Set(captions).size, captions.length, `${language} has duplicates`);
      for (const caption of captions) {
        if (unspaced.has(language)) {
          assert.ok(caption.length >= 6 && caption.length <= 45, `${language}: "${caption}"`);
        } else {
          const words = caption.split(" ").length;
          assert.ok(words >= 5 && words <= 15, `${language}: "${caption}" has ${words} words`);
        }
      }
    }
  });

  test("marks Ukrainian and Japanese with the letters that tell them from Russian and Chinese", () => {
    for (const caption of CAPTIONS_BY_LANGUAGE.uk) assert.match(caption, /[іїєґ]/i);
    for (const caption of CAPTIONS_BY_LANGUAGE.ja) assert.match(caption, /[\u3040-\u30ff]/);
    for (const caption of CAPTIONS_BY_LANGUAGE.ru) assert.doesNotMatch(caption, /[іїєґ]/i);
  });
});
