import assert from "node:assert/strict";
import { test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  type GzipDamage,
  type GzipEvent,
  type GzipMemberOptions,
  gzipMembers,
} from "../src/stages/extract/gzip-members.js";

async function* chunked(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < data.length; offset += size)
    yield data.subarray(offset, offset + size);
}

async function collect(
  data: Buffer,
  chunkSize = 7,
  options: GzipMemberOptions = {},
): Promise<GzipEvent[]> {
  const events: GzipEvent[] = [];
  for await (const event of gzipMembers(chunked(data, chunkSize), options)) events.push(event);
  return events;
}

type Member = { member: { offset: number; data: Buffer; pieces: number } };

/** Each member's pieces joined into one, damage events as they are. */
function joinMembers(events: GzipEvent[]): (Member | { damage: GzipDamage })[] {
  const result: (Member | { damage: GzipDamage })[] = [];
  let open: Buffer[] = [];
  for (const event of events) {
    if ("damage" in event) {
      open = [];
      result.push(event);
      continue;
    }
    open.push(event.piece.data);
    if (event.piece.memberEnd) {
      const data = Buffer.concat(open);
      result.push({ member: { offset: event.piece.memberOffset, data, pieces: open.length } });
      open = [];
    }
  }
  return result;
}

function texts(events: GzipEvent[]): string[] {
  return joinMembers(events).flatMap((item) =>
    "member" in item ? [item.member.data.toString()] : [],
  );
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
      joinMembers(events).map((item) =>
        "member" in item ? [item.member.offset, item.member.data.toString()] : item,
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
  assert.equal(joinMembers(events).filter((item) => "member" in item).length, 2);
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
  assert.deepEqual(texts(events), ["first record", "third"]);
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

const big = Buffer.alloc(5 * 1024 * 1024 + 123, "big member ");
const withBigMember = Buffer.concat([gzipSync("before"), gzipSync(big), gzipSync("after")]);

test("a member larger than the at-once limit comes out in pieces of bounded size, whatever the chunking", async () => {
  for (const chunkSize of [1000, 65536, 1 << 22]) {
    const events = await collect(withBigMember, chunkSize, { inflateAtOnceBytes: 64 * 1024 });
    const joined = joinMembers(events);
    assert.equal(joined.length, 3);
    const middle = joined[1];
    assert.ok(middle !== undefined && "member" in middle);
    assert.ok(middle.member.data.equals(big), "the pieces join into the member's bytes");
    assert.equal(middle.member.offset, gzipSync("before").length);
    assert.ok(middle.member.pieces > 4, `${middle.member.pieces} pieces`);
    for (const event of events) {
      if ("piece" in event) assert.ok(event.piece.data.length <= 1024 * 1024);
    }
    assert.deepEqual([texts(events)[0], texts(events)[2]], ["before", "after"]);
  }
});

test("a streamed member with a bad checksum is reported and the member after it still comes out", async () => {
  const damaged = Buffer.from(withBigMember);
  const trailer = gzipSync("before").length + (gzipSync(big).length - 8);
  damaged[trailer] = (damaged[trailer] ?? 0) ^ 0xff;
  const events = await collect(damaged, 65536, { inflateAtOnceBytes: 64 * 1024 });
  const damage = events.find((event) => "damage" in event);
  assert.ok(damage !== undefined && "damage" in damage);
  assert.equal(damage.damage.kind, "corrupt");
  assert.match(damage.damage.message, /checksum mismatch/);
  assert.equal(texts(events).at(-1), "after");
});

test("a file cut off inside a streamed member ends with one truncated event", async () => {
  const cut = withBigMember.subarray(0, gzipSync("before").length + 2000);
  const events = await collect(cut, 65536, { inflateAtOnceBytes: 1024 });
  const last = events.at(-1);
  assert.ok(last !== undefined && "damage" in last);
  assert.equal(last.damage.kind, "truncated");
  assert.equal(last.damage.offset, gzipSync("before").length);
  assert.equal(events.filter((event) => "damage" in event).length, 1);
});
