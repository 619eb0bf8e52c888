/**
 * WarmPool with a scripted warm dial: a miss waits for the first leg to become ready (its own
 * dial's or a refill's), never for more dials than the cap allows; a leg nobody waits for is
 * pooled; a failed dial sends its waiting client to a cold dial at once.
 */
import assert from "node:assert/strict";
import { getLogger } from "../../lib/observe/log.ts";
import type { SenderRelayConfig } from "../../lib/sender/open_tunnel.ts";
import { WarmDialError, WarmLeg } from "../../lib/sender/warm_leg.ts";
import { WarmPool } from "../../lib/sender/warm_pool.ts";
import { fakeSocketPair } from "../helpers/fake_socket.ts";
import { PoolRecorder } from "../helpers/pool_recorder.ts";

const HELLO = { listener_id: "L", features: ["half-close", "warm", "early-data"] };
const SLOW = { pingIntervalMs: 60_000, pingTimeoutMs: 1_000, recycleAgeMs: 60_000 };

/** A pool whose warm dials wait until the test settles them, in order. */
function scriptedPool(min: number, max: number) {
  const dials: PromiseWithResolvers<WarmLeg>[] = [];
  const sockets: ReturnType<typeof fakeSocketPair>[] = [];
  const metrics = new PoolRecorder();
  const pool = new WarmPool({
    relay: {} as SenderRelayConfig,
    min,
    max,
    logger: getLogger(),
    metrics,
    timings: { ...SLOW, backoffBaseMs: 60_000, backoffMaxMs: 60_000 },
    dial: ({ signal }) => {
      const d = Promise.withResolvers<WarmLeg>();
      signal.addEventListener("abort", () => d.reject(signal.reason), { once: true });
      dials.push(d);
      return d.promise;
    },
  });
  /** Settles dial `i` with a fresh leg, returned. */
  const succeed = (i: number) => {
    const pair = fakeSocketPair();
    sockets.push(pair);
    const leg = new WarmLeg(`LEG${i}`, pair[0], HELLO, HELLO.features, getLogger(), 5);
    dials[i].resolve(leg);
    return leg;
  };
  /** Closes the pool; the listener's side drops every leg, so no Close waits for a reply. */
  const close = async () => {
    const closing = pool.close();
    for (const [, theirs] of sockets) theirs.closeNow();
    await closing;
  };
  return { pool, dials, succeed, metrics, close };
}

Deno.test("warm pool: a miss is served by its own warm dial; the refill is pooled", async () => {
  const p = scriptedPool(0, 1);
  try {
    p.pool.noteFeatures(["warm"]);
    assert.equal(p.dials.length, 0, "floor 0, no demand: nothing dialled");
    const end = p.pool.beginOpen();
    assert.equal(p.pool.take(), undefined, "nothing ready");
    const next = p.pool.next();
    assert.equal(p.dials.length, 1, "one dial, for this client");
    const leg = p.succeed(0);
    assert.equal(await next, leg, "the client got its own leg");
    assert.equal(p.metrics.ready, 0, "handed over, never pooled");
    assert.equal(p.dials.length, 2, "a refill started at once");
    end();
    p.succeed(1);
    await p.metrics.until((m) => m.ready === 1, "the refill pooled");
    assert.ok(p.pool.take(), "and handed to the next client");
    leg.socket.closeNow();
  } finally {
    await p.close();
  }
});

Deno.test("warm pool: waiting clients take the first legs ready; the one left over is pooled", async () => {
  const p = scriptedPool(1, 4);
  try {
    p.pool.noteFeatures(["warm"]);
    assert.equal(p.dials.length, 1, "the floor");
    const ends = [p.pool.beginOpen(), p.pool.beginOpen()];
    const a = p.pool.next();
    const b = p.pool.next();
    assert.equal(p.dials.length, 4, "capped: two for the waiting clients, two for the pool");
    // The last dial started is the first ready: the oldest waiting client takes it.
    const first = p.succeed(3);
    assert.equal(await a, first);
    const second = p.succeed(0);
    assert.equal(await b, second);
    for (const end of ends) end();
    p.succeed(1);
    p.succeed(2);
    await p.metrics.until((m) => m.ready === 2, "the left-over legs pooled");
    for (const leg of [first, second]) leg.socket.closeNow();
  } finally {
    await p.close();
  }
});

Deno.test("warm pool: at the cap with no spare dial, a miss goes cold at once", async () => {
  const p = scriptedPool(0, 1);
  try {
    p.pool.noteFeatures(["warm"]);
    const ends = [p.pool.beginOpen(), p.pool.beginOpen()];
    const a = p.pool.next();
    assert.equal(await p.pool.next(), undefined, "the cap's one dial is for the first client");
    assert.equal(p.dials.length, 1);
    const leg = p.succeed(0);
    assert.equal(await a, leg);
    for (const end of ends) end();
    leg.socket.closeNow();
  } finally {
    await p.close();
  }
});

Deno.test("warm pool: a failed dial sends its client cold; no waits while backing off", async () => {
  const p = scriptedPool(0, 2);
  try {
    p.pool.noteFeatures(["warm"]);
    const end = p.pool.beginOpen();
    const a = p.pool.next();
    assert.equal(p.dials.length, 2, "target 2 for one open: one for the client, one spare");
    p.dials[0].reject(new WarmDialError("warm dial: HTTP 503 warm leg limit reached"));
    const spare = p.succeed(1);
    assert.equal(await a, spare, "the spare dial still serves it");
    const b = p.pool.next();
    assert.equal(await b, undefined, "backing off: cold at once");
    assert.equal(p.dials.length, 2, "and no dial started");
    end();
    spare.socket.closeNow();
  } finally {
    await p.close();
  }
});

Deno.test("warm pool: a waiting client whose dial fails with none spare dials cold", async () => {
  const p = scriptedPool(0, 1);
  try {
    p.pool.noteFeatures(["warm"]);
    const end = p.pool.beginOpen();
    const a = p.pool.next();
    p.dials[0].reject(new WarmDialError("warm dial: HTTP 503 warm leg limit reached"));
    assert.equal(await a, undefined);
    end();
  } finally {
    await p.close();
  }
});

Deno.test("warm pool: an aborted wait ends at once; its leg is pooled", async () => {
  const p = scriptedPool(0, 1);
  try {
    p.pool.noteFeatures(["warm"]);
    const end = p.pool.beginOpen();
    const ac = new AbortController();
    const a = p.pool.next(ac.signal);
    ac.abort();
    assert.equal(await a, undefined);
    end();
    p.succeed(0);
    await p.metrics.until((m) => m.ready === 1, "pooled");
  } finally {
    await p.close();
  }
});
