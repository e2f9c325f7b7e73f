import assert from "node:assert/strict";
import { test } from "node:test";
import { FreshRead } from "../src/server/fresh-read.js";

test("a fresh read never answers a caller with a read started before it asked, and callers at once share one", async () => {
  let started = 0;
  let inFlight = 0;
  let mostInFlight = 0;
  let value = 0;
  const reads = new FreshRead(async () => {
    const number = ++started;
    inFlight++;
    mostInFlight = Math.max(mostInFlight, inFlight);
    const seen = value;
    await new Promise((resolve) => setTimeout(resolve, 20));
    inFlight--;
    return { number, seen };
  });

  const first = reads.get();
  await new Promise((resolve) => setTimeout(resolve, 5));
  value = 1; // Changed while the first read is in flight: later callers must see it.
  const later = await Promise.all(Array.from({ length: 50 }, () => reads.get()));
  assert.deepEqual(await first, { number: 1, seen: 0 });
  for (const result of later) assert.deepEqual(result, { number: 2, seen: 1 });
  assert.equal(started, 2, "50 callers at once, one read");
  assert.equal(mostInFlight, 1);

  // A failed read fails its callers only; the next caller reads again.
  const failing = new FreshRead(async () => {
    throw new Error("the store did not answer");
  });
  await assert.rejects(failing.get(), /did not answer/);
  await assert.rejects(failing.get(), /did not answer/);
});
