import assert from "node:assert/strict";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import { type GzipEvent, gzipMembers } from "../src/stages/extract/gzip-members.js";

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size)
    yield data.subarray(offset, offset + size);
}

async function collect(data: Buffer, chunkSize = 7): Promise<GzipEvent[]> {
  const events: GzipEvent[] = [];
  for await (const event of gzipMembers(chunked(data, chunkSize))) events.push(event);
  return events;
}

const members = ["first record", "second record ".repeat(500), "third"].map((text) =>
  gzipSync(text),
);
const file = Buffer.concat(members);
const offsets = [0, members[0]?.length ?? 0, (members[0]?.length ?? 0) + (members[1]?.length ?? 0)];

test("each gzip member comes out with its offset in the compressed file, whatever the chunking", async () => {
  for (const chunkSize of [1, 7, 100, 1 << 20]) {
    const events = await collect(file, chunkSize);
    assert.deepEqual(
      events.map((event) =>
        "member" in event ? [event.member.offset, event.member.data.toString()] : event,
      ),
      [
        [offsets[0], "first record"],
        [offsets[1], "second record ".repeat(500)],
        [offsets[2], "third"],
      ],
    );
  }
});

test("a truncated gzip file yields the members before the cut and one truncated event with its offset", async () => {
  const cut = file.subarray(0, (offsets[2] ?? 0) + 5);
  const events = await collect(cut);
  assert.equal(events.filter((event) => "member" in event).length, 2);
  const last = events.at(-1);
  assert.ok(last !== undefined && "damage" in last);
  assert.equal(last.damage.kind, "truncated");
  assert.equal(last.damage.offset, offsets[2]);
  assert.match(last.damage.message, new RegExp(`offset ${offsets[2]}`));
});

test("a corrupt member is reported and skipped, and the members after it still come out", async () => {
  const damaged = Buffer.from(file);
  const middle = (offsets[1] ?? 0) + 20;
  for (let i = middle; i < middle + 8; i++) damaged[i] = (damaged[i] ?? 0) ^ 0x5a;
  const events = await collect(damaged);
  const texts = events.flatMap((event) =>
    "member" in event ? [event.member.data.toString()] : [],
  );
  assert.deepEqual(texts, ["first record", "third"]);
  const damage = events.find((event) => "damage" in event);
  assert.ok(damage !== undefined && "damage" in damage);
  assert.equal(damage.damage.kind, "corrupt");
  assert.equal(damage.damage.offset, offsets[1]);
});

test("a file that is not gzip is reported as such, once", async () => {
  const events = await collect(Buffer.from("WARC/1.0\r\nWARC-Type: warcinfo\r\n\r\n".repeat(3)));
  assert.equal(events.length, 1);
  const [event] = events;
  assert.ok(event !== undefined && "damage" in event);
  assert.equal(event.damage.kind, "not_gzip");
});

test("an empty file has no members and no damage", async () => {
  assert.deepEqual(await collect(Buffer.alloc(0)), []);
});
