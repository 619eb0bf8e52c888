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

Deno.test("slots: setLimit lowered keeps held slots, refuses takers until below the new limit", () => {
  const counts: number[] = [];
  const s = new Slots(3, (n) => counts.push(n));
  for (let i = 0; i < 3; i++) assert.equal(s.tryAcquire(), true);
  s.setLimit(1);
  assert.equal(s.limit, 1);
  assert.equal(s.inUse, 3, "held slots are not taken back");
  assert.equal(s.tryAcquire(), false);
  s.release();
  assert.equal(s.tryAcquire(), false, "2 held, limit 1");
  s.release();
  s.release();
  assert.equal(s.tryAcquire(), true);
  assert.equal(s.tryAcquire(), false);
  assert.deepEqual(counts, [1, 2, 3, 2, 1, 0, 1]);
});

Deno.test("slots: a release under a lowered limit does not hand the slot to a waiter", async () => {
  const s = new Slots(2);
  s.tryAcquire();
  s.tryAcquire();
  let got: boolean | undefined;
  const waiting = s.acquire(10_000).then((ok) => got = ok);
  s.setLimit(1);
  s.release();
  await Promise.resolve();
  assert.equal(got, undefined, "1 held, limit 1: the waiter still waits");
  assert.equal(s.inUse, 1);
  s.release();
  await waiting;
  assert.equal(got, true);
  assert.equal(s.inUse, 1);
});

Deno.test("slots: setLimit raised (or 0) grants waiters at once; invalid limits are refused", async () => {
  const s = new Slots(1);
  s.tryAcquire();
  const a = s.acquire(10_000);
  const b = s.acquire(10_000);
  s.setLimit(2);
  assert.equal(await a, true);
  assert.equal(s.inUse, 2);
  s.setLimit(0);
  assert.equal(await b, true);
  assert.equal(s.inUse, 3);
  assert.equal(s.tryAcquire(), true);
  assert.throws(() => s.setLimit(-1), RangeError);
  assert.throws(() => s.setLimit(1.5), RangeError);
  assert.equal(s.limit, 0);
});
