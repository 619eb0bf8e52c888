/**
 * The listener's shared leg (lib/listener/shared_leg.ts) over an in-memory carrier: each stream is
 * a tunnel of its own (envelope, allowlist, --max-connections), and the leg closes when idle or
 * stopping once nothing rides it.
 */
import assert from "node:assert/strict";
import {
  serveSharedLeg,
  SHARED_LEGS_GROWTH,
  type SharedLegContext,
} from "../../lib/listener/shared_leg.ts";
import { WindowBudget } from "../../lib/mux/budget.ts";
import { Slots } from "../../lib/listener/slots.ts";
import { MuxSession } from "../../lib/mux/session.ts";
import type { MuxStream } from "../../lib/mux/stream.ts";
import { getLogger } from "../../lib/observe/log.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { decodeResponse, encodeEnvelope } from "../../lib/tunnel/envelope.ts";
import { fakeSocketPair } from "../helpers/fake_socket.ts";
import { captureLogs } from "../helpers/logs.ts";
import { startEchoServer } from "../helpers/servers.ts";

interface Leg {
  opener: MuxSession;
  served: Promise<void>;
  stop: AbortController;
  tasks: Promise<void>[];
}

/** serveSharedLeg on one end of a fake carrier, a mux opener on the other. */
function sharedLeg(allow: string[], slots: Slots, idleMs = 60_000, slotWaitMs = 0): Leg {
  const [a, b] = fakeSocketPair();
  const stop = new AbortController();
  const tasks: Promise<void>[] = [];
  const ctx: SharedLegContext = {
    cfg: {
      listenerId: "L",
      allowlist: parseAllowlist(allow),
      connectTimeoutMs: 2_000,
      keepAlive: false,
      pingIntervalMs: 0,
    },
    slots,
    handlerContext: (logger) => ({ logger }),
    waitForSlot: (log, gone) => {
      log.debug("stream waits for a connection slot");
      return slots.acquire(slotWaitMs, AbortSignal.any([stop.signal, gone]));
    },
    fullDescription: "listener at max connections",
    stop: stop.signal,
    track: (t) => void tasks.push(t),
    idleMs,
    growth: new WindowBudget(SHARED_LEGS_GROWTH),
  };
  const served = serveSharedLeg(b, ctx, getLogger({ side: "listener" }));
  return { opener: new MuxSession(a, { role: "opener" }), served, stop, tasks };
}

/** Opens a stream and sends its envelope; the listener's answer. */
async function request(opener: MuxSession, target: string) {
  const s = opener.open();
  await s.send(encodeEnvelope({ version: 1, target, bridge_id: "B" }));
  const msg = await s.receive();
  return { s, answer: msg?.type === "text" ? decodeResponse(msg.data) : null };
}

async function echoOn(s: MuxStream, text: string): Promise<string> {
  await s.send(new TextEncoder().encode(text));
  const msg = await s.receive();
  assert.ok(msg?.type === "binary");
  return new TextDecoder().decode(msg.data);
}

async function end(leg: Leg): Promise<void> {
  await leg.opener.close(1000, "done");
  await leg.served;
  await Promise.all(leg.tasks);
  await leg.opener.done;
}

Deno.test("shared leg: every stream is its own tunnel, checked against the allowlist", async () => {
  await using _logs = await captureLogs();
  await using echo = startEchoServer();
  const leg = sharedLeg([echo.addr], new Slots(0));
  const one = await request(leg.opener, echo.addr);
  const two = await request(leg.opener, echo.addr);
  const bad = await request(leg.opener, "127.0.0.1:1");
  assert.equal(one.answer?.ok, true);
  assert.equal(two.answer?.ok, true);
  assert.deepEqual([bad.answer?.ok, bad.answer?.code], [false, "not_allowed"]);
  assert.equal(await echoOn(two.s, "second"), "second");
  assert.equal(await echoOn(one.s, "first"), "first");
  await Promise.all([one.s.close(), two.s.close(), bad.s.close()]);
  await end(leg);
});

Deno.test("shared leg: a stream beyond --max-connections is closed 1013; the others carry on", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const slots = new Slots(1);
  const leg = sharedLeg([echo.addr], slots);
  const one = await request(leg.opener, echo.addr);
  assert.equal(one.answer?.ok, true);
  const two = await request(leg.opener, echo.addr);
  assert.equal(two.answer, null);
  assert.deepEqual(two.s.closeInfo, { code: 1013, reason: "listener at max connections" });
  await two.s.close(1013);
  assert.match(await logs.waitFor(/accept_dropped/), /stream_id=2 reason=semaphore_full/);
  assert.equal(await echoOn(one.s, "still here"), "still here");
  await one.s.close();
  await Promise.all(leg.tasks);
  assert.equal(slots.inUse, 0, "the slot is back");
  await end(leg);
});

Deno.test("shared leg: idle, it is closed 1000 idle; stopping, 1001 once its tunnel ends", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const idle = sharedLeg([echo.addr], new Slots(0), 20);
  await idle.served;
  await idle.opener.done;
  await logs.waitFor(/msg="shared leg idle-closed"/);

  const busy = sharedLeg([echo.addr], new Slots(0));
  const one = await request(busy.opener, echo.addr);
  busy.stop.abort();
  assert.equal(await echoOn(one.s, "drains"), "drains", "a tunnel outlives the stop");
  await one.s.close();
  await busy.served;
  await busy.opener.done;
  await Promise.all(busy.tasks);
  await logs.waitFor(/msg="shared leg closed, listener stopping"/);
});

Deno.test("shared leg: at --max-connections one stream waits, only while it lives; the rest get 1013", async () => {
  await using _logs = await captureLogs();
  await using echo = startEchoServer();
  const slots = new Slots(1);
  const leg = sharedLeg([echo.addr], slots, 60_000, 60_000);
  const one = await request(leg.opener, echo.addr);
  assert.equal(one.answer?.ok, true);
  // Opened and dropped at once, over and over: never more than one waiter.
  for (let i = 0; i < 50; i++) {
    const s = leg.opener.open();
    await s.send(encodeEnvelope({ version: 1, target: echo.addr, bridge_id: "B" }));
    s.closeNow();
  }
  const waiter = leg.opener.open();
  await waiter.send(encodeEnvelope({ version: 1, target: echo.addr, bridge_id: "W" }));
  const refused = await request(leg.opener, echo.addr);
  assert.deepEqual(refused.s.closeInfo, { code: 1013, reason: "listener at max connections" });
  await refused.s.close(1013);
  assert.ok(slots.waiting <= 1, `${slots.waiting} waiting`);
  // The slot frees: the live waiter gets it, not a dropped stream.
  await one.s.close();
  const msg = await waiter.receive();
  assert.equal(msg?.type === "text" && decodeResponse(msg.data).ok, true);
  assert.equal(await echoOn(waiter, "waited"), "waited");
  await waiter.close();
  await Promise.all(leg.tasks);
  assert.deepEqual([slots.inUse, slots.waiting], [0, 0]);
  await end(leg);
});

Deno.test("shared leg: streams opened while the listener stops are closed 1001, at DEBUG", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const leg = sharedLeg([echo.addr], new Slots(0));
  const one = await request(leg.opener, echo.addr);
  leg.stop.abort();
  const late = leg.opener.open();
  assert.equal(await late.receive(), null);
  assert.deepEqual(late.closeInfo, { code: 1001, reason: "shutting down" });
  await late.close(1001);
  assert.equal(await echoOn(one.s, "still"), "still");
  await one.s.close();
  await leg.served;
  await leg.opener.done;
  await Promise.all(leg.tasks);
  assert.match(await logs.waitFor(/shared leg stream refused/), /level=DEBUG.*stream_id=2/);
  assert.equal(logs.count(/level=WARN/), 0, logs.lines.join(""));
});

Deno.test("shared leg: a stream waiting for a slot when the listener stops gets 1001, no WARN", async () => {
  await using logs = await captureLogs();
  await using echo = startEchoServer();
  const slots = new Slots(1);
  const leg = sharedLeg([echo.addr], slots, 60_000, 60_000);
  const one = await request(leg.opener, echo.addr);
  const waiter = leg.opener.open();
  await waiter.send(encodeEnvelope({ version: 1, target: echo.addr, bridge_id: "W" }));
  await logs.waitFor(/msg="stream waits for a connection slot".*stream_id=2/);
  leg.stop.abort();
  assert.equal(await waiter.receive(), null);
  assert.deepEqual(waiter.closeInfo, { code: 1001, reason: "shutting down" });
  await waiter.close(1001);
  await one.s.close();
  await leg.served;
  await leg.opener.done;
  await Promise.all(leg.tasks);
  assert.equal(logs.count(/level=WARN/), 0, logs.lines.join(""));
});
