import assert from "node:assert/strict";
import { Slots } from "../../lib/listener/slots.ts";

Deno.test("slots: tryAcquire up to the limit, release frees one, the gauge hears every count", () => {
  const counts: number[] = [];
  const s = new Slots(2, (n) => counts.push(n));
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), false);
  assert.equal(s.inUse, 2);
  s.release();
  assert.equal(s.tryAcquire(), true);
  assert.deepEqual(counts, [1, 2, 1, 2]);
});

Deno.test("slots: limit 0 is unlimited", () => {
  const s = new Slots(0);
  for (let i = 0; i < 1000; i++) assert.equal(s.tryAcquire(), true);
  assert.equal(s.inUse, 1000);
});

Deno.test("slots: acquire waits for a release, first come first served, ahead of tryAcquire", async () => {
  const s = new Slots(1);
  assert.equal(s.tryAcquire(), true);
  const order: string[] = [];
  const a = s.acquire(10_000).then((ok) => order.push(`a:${ok}`));
  const b = s.acquire(10_000).then((ok) => order.push(`b:${ok}`));
  s.release();
  // A waiter is owed the slot: a cold accept may not jump the queue.
  assert.equal(s.tryAcquire(), false);
  await a;
  assert.deepEqual(order, ["a:true"]);
  s.release();
  await b;
  assert.deepEqual(order, ["a:true", "b:true"]);
  assert.equal(s.inUse, 1);
});

Deno.test("slots: acquire gives up at its deadline or on abort, and leaves no waiter behind", async () => {
  const s = new Slots(1);
  s.tryAcquire();
  assert.equal(await s.acquire(10), false);
  const ac = new AbortController();
  const waiting = s.acquire(10_000, ac.signal);
  ac.abort();
  assert.equal(await waiting, false);
  assert.equal(await s.acquire(0, AbortSignal.abort()), false);
  s.release();
  assert.equal(s.inUse, 0);
  assert.equal(s.tryAcquire(), true, "no stale waiter took the freed slot");
});
