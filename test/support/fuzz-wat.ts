/**
 * WAT files for the fuzz sweep: a warcinfo record and a few pages of unique image links, framed
 * as Common Crawl does (a gzip member per record) or as copies in circulation are (plain, LF line
 * ends, one gzip member, Envelope before Container), then damaged: a lie in one record's framing
 * (Content-Length, version line, header end, cut JSON), a gzip bomb or an oversized record put
 * between two records, or a byte-level mutation of the whole file.
 */
import { gzipSync } from "node:zlib";
import {
  type FuzzRandom,
  firstDamage,
  type Mutation,
  mutateBytes,
  touchedSpans,
} from "./fuzz-mutations.js";
import { gzipBombMember, warcinfoRecord, warcRecord, watPageRecord } from "./warc-build.js";

export const WAT_MAX_RECORD_BYTES = 1024 * 1024;
const PAGES = 5;
const STYLES = [
  "gzip members",
  "gzip members, LF",
  "plain",
  "plain, LF",
  "one gzip member",
] as const;

export interface WatCase {
  fileName: string;
  bytes: Buffer;
  /** What was done to it, for messages. */
  mutation: string;
  /** Per original record: the (url, text) pairs extract must keep from it. */
  pairs: [string, string][][];
  /** Records the damage reached: their pairs may change or go, with a report. */
  touched: Set<number>;
  /** Records wholly before the first damage: their pairs must all be kept. */
  before: Set<number>;
}

let bombMember: Buffer | undefined;

export function watCase(index: number, random: FuzzRandom): WatCase {
  const style = random.pick(STYLES);
  const lineEnd = style.endsWith("LF") ? "\n" : "\r\n";
  const pairs: [string, string][][] = [[]];
  const records: Buffer[] = [warcinfoRecord({ lineEnd })];
  for (let page = 0; page < PAGES; page++) {
    const site = `https://case${index}.example/page${page}/`;
    const links = [
      {
        url: `${site}a.jpg`,
        alt: `A red bicycle leaning on a wall, picture ${page} of case ${index}`,
      },
      {
        url: `${site}b.png`,
        alt: `Two cats asleep on a blue sofa, picture ${page} of case ${index}`,
      },
      { url: `${site}icon.png`, alt: "icon" },
    ];
    records.push(
      watPageRecord(`${site}index.html`, links, { lineEnd, envelopeFirst: random.chance(0.3) }),
    );
    pairs.push(links.slice(0, 2).map((link) => [link.url, link.alt]));
  }

  let mutation: string;
  let touchedRecord: number | undefined;
  let inserted: { before: number; bytes: Buffer } | undefined;
  if (random.chance(0.35)) {
    const target = 1 + random.int(PAGES);
    const lie = recordLie(records[target] as Buffer, random, style);
    mutation = lie.name;
    if ("insert" in lie) inserted = { before: target, bytes: lie.insert };
    else {
      records[target] = lie.bytes;
      touchedRecord = target;
    }
  } else mutation = "";

  const framed = records.map((record) =>
    style.startsWith("gzip members") ? gzipSync(record) : record,
  );
  if (inserted !== undefined) framed.splice(inserted.before, 0, inserted.bytes);
  const spans: [number, number][] = [];
  let offset = 0;
  for (const piece of framed) {
    spans.push([offset, offset + piece.length]);
    offset += piece.length;
  }
  const recordSpans =
    inserted === undefined ? spans : spans.filter((_, position) => position !== inserted.before);
  let bytes: Buffer = Buffer.concat(framed);
  if (style === "one gzip member") bytes = gzipSync(bytes);

  const touched = new Set<number>(touchedRecord === undefined ? [] : [touchedRecord]);
  let damageAt =
    touchedRecord === undefined ? bytes.length : (recordSpans[touchedRecord]?.[0] ?? 0);
  if (inserted !== undefined) damageAt = spans[inserted.before]?.[0] ?? 0;
  if (mutation === "") {
    const byteMutation: Mutation = mutateBytes(bytes, random);
    mutation = byteMutation.name;
    if (style === "one gzip member") {
      // Where a compressed byte lands in the records is not known: every record may change.
      for (let record = 0; record < recordSpans.length; record++) touched.add(record);
      damageAt = 0;
    } else {
      for (const record of touchedSpans(recordSpans, byteMutation)) touched.add(record);
      damageAt = firstDamage(byteMutation, bytes.length);
    }
    bytes = byteMutation.bytes;
  }
  const before = new Set<number>();
  recordSpans.forEach(([, end], record) => {
    if (end <= damageAt && !touched.has(record)) before.add(record);
  });
  const extension = style.startsWith("plain") && random.chance(0.5) ? "warc.wat" : "warc.wat.gz";
  return {
    fileName: `case-${String(index).padStart(3, "0")}.${extension}`,
    bytes,
    mutation: `${style}: ${mutation}`,
    pairs,
    touched,
    before,
  };
}

type RecordLie = { name: string; bytes: Buffer } | { name: string; insert: Buffer };

function recordLie(record: Buffer, random: FuzzRandom, style: (typeof STYLES)[number]): RecordLie {
  const text = record.toString("latin1");
  const headerEnd = text.search(/\r?\n\r?\n/);
  const header = text.slice(0, headerEnd);
  const rest = text.slice(headerEnd);
  const length = Number(/Content-Length: (\d+)/.exec(header)?.[1]);
  const withHeader = (changed: string) => Buffer.from(changed + rest, "latin1");
  switch (random.int(6)) {
    case 0: {
      const claimed = random.pick([
        length + 1 + random.int(5000),
        Math.max(0, length - 1 - random.int(length)),
        "99999999999",
        "-5",
        "12abc",
        "",
        "1e3",
      ]);
      return {
        name: `Content-Length ${length} claimed as ${JSON.stringify(String(claimed))}`,
        bytes: withHeader(header.replace(/Content-Length: \d+/, `Content-Length: ${claimed}`)),
      };
    }
    case 1:
      return {
        name: "a version line that is not WARC's",
        bytes: withHeader(header.replace("WARC/1.0", random.pick(["WARC/9.9", "XARC/1.0", ""]))),
      };
    case 2:
      return {
        name: "headers with no blank line after them",
        bytes: Buffer.from(header + rest.replace(/^\r?\n/, ""), "latin1"),
      };
    case 3: {
      const body = rest.replace(/^\r?\n\r?\n/, "").replace(/\r?\n\r?\n$/, "");
      const cut = body.slice(0, random.int(body.length));
      const eol = rest.startsWith("\r\n") ? "\r\n" : "\n";
      return {
        name: "JSON cut short, Content-Length true",
        bytes: Buffer.from(
          `${header.replace(/Content-Length: \d+/, `Content-Length: ${Buffer.byteLength(cut, "latin1")}`)}${eol}${eol}${cut}${eol}${eol}`,
          "latin1",
        ),
      };
    }
    case 4:
      if (style.startsWith("gzip members")) {
        bombMember ??= gzipBombMember(64 * 1024 * 1024);
        return { name: "a gzip bomb member (64 MiB of zeros) before it", insert: bombMember };
      }
      return {
        name: "an oversized record (2 MiB body) before it",
        insert: warcRecord(
          { "WARC-Type": "resource" },
          Buffer.alloc(2 * WAT_MAX_RECORD_BYTES, 0x41),
        ),
      };
    default:
      return {
        name: "a body longer than Content-Length says, with stray bytes after it",
        bytes: Buffer.concat([record, Buffer.from('garbage\r\n\r\n{"Envelope":')]),
      };
  }
}
