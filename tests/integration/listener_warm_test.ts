/**
 * Warm legs and early data on the listener (issue 10), against relay-server with a fake sender: raw
 * lib/ws sockets on the relay's sender URL, marked warm with `Aztunnel-Leg: warm` or not.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { parseAllowlist } from "../../lib/tunnel/allowlist.ts";
import { EOF_MESSAGE } from "../../lib/tunnel/bridge.ts";
import { decodeResponse } from "../../lib/tunnel/envelope.ts";
import { MuxSession } from "../../lib/mux/session.ts";
import { MUX_START } from "../../lib/tunnel/warm.ts";
import { WsHandshakeError } from "../../lib/ws/errors.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import {
  closedWith,
  dialLeg,
  echoes,
  echoThenEof,
  envelope,
  finish,
  nextText,
  WAIT_MS,
  warmLeg,
} from "../helpers/listener_cast.ts";
import { readAll, writeAll } from "../helpers/servers.ts";
import { stillPending } from "../helpers/ws_peers.ts";
import { startStack, startTarget } from "../helpers/tunnel_stack.ts";

const LID = "WARMLISTENER2345";
const dec = new TextDecoder();

Deno.test("warm: the hello is sent at once, exactly as the protocol writes it", async () => {
  await using stack = await startStack({ listenerId: LID });
  const ws = await dialLeg(stack);
  assert.equal(
    await nextText(ws),
    `{"version":1,"hello":"warm","listener_id":"${LID}","features":["half-close","warm","early-data","mux"]}`,
  );
  const held = await stack.logs.waitFor(/level=DEBUG msg="warm leg held" side=listener/);
  assert.match(held, /accept_id=[A-Z2-7]{16}/);
  await ws.close();
  await stack.logs.waitFor(/msg="warm leg closed by sender" side=listener/);
});

Deno.test("warm: a held leg outlives --connect-timeout, then carries a tunnel", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({ connectTimeoutMs: 300 });
  const warm = await warmLeg(stack);
  // A cold leg opened after it: its envelope deadline passing proves the warm one's would have.
  const cold = await dialLeg(stack, false);
  assert.equal((await closedWith(cold)).code, 1000);
  await stack.logs.waitFor(/msg="failed to read envelope" .*timeout/);
  await warm.ping(WAIT_MS); // a held leg answers pings
  await warm.send(envelope(target.addr));
  const res = decodeResponse(await nextText(warm));
  assert.equal(res.ok, true);
  assert.deepEqual(res.features, ["half-close", "early-data"]);
  await echoes(warm, "after the connect timeout");
  assert.equal(dec.decode(await finish(warm)), "");
  const used = await stack.logs.waitFor(/level=DEBUG msg="warm leg used" side=listener/);
  assert.match(used, /accept_id=[A-Z2-7]{16}/);
  await stack.logs.waitFor(/msg="bridge ended" side=listener .*bridge_id=BRIDGEWARM234567/);
});

Deno.test("warm: a leg without the header is served as today (the connect timeout applies)", async () => {
  await using stack = await startStack({ connectTimeoutMs: 300 });
  const cold = await dialLeg(stack, false);
  assert.deepEqual(await closedWith(cold), { code: 1000, reason: "done" });
  assert.match(
    await stack.logs.waitFor(/msg="failed to read envelope" side=listener/),
    /no envelope within 300 ms \(timeout\)/,
  );
  assert.equal(stack.logs.count(/msg="warm leg/), 0);
});

Deno.test("warm: at the cap the rendezvous is refused with 503, and a freed slot is reused", async () => {
  const held: number[] = [];
  await using stack = await startStack({ maxWarmLegs: 2, onWarmLegsChange: (n) => held.push(n) });
  const a = await warmLeg(stack);
  const b = await warmLeg(stack);
  const err = await dialLeg(stack).then(() => null, (e) => e);
  assert.ok(err instanceof WsHandshakeError, `expected a refused upgrade, got ${err}`);
  assert.equal(err.status, 503);
  assert.match(`${err.statusText} ${err.body}`, /warm leg limit reached/);
  assert.match(
    await stack.logs.waitFor(/msg=accept_dropped side=listener/),
    /reason=warm_limit/,
  );
  await a.close();
  await stack.logs.waitFor(/msg="warm leg closed by sender"/);
  const c = await warmLeg(stack);
  assert.deepEqual(held, [0, 1, 2, 1, 2]);
  await b.close();
  await c.close();
});

Deno.test("warm: --max-warm-legs 0 holds nothing and grants no warm", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({ maxWarmLegs: 0 });
  const ws = await dialLeg(stack);
  await ws.send(envelope(target.addr, ["half-close", "warm", "early-data"]));
  assert.deepEqual(decodeResponse(await nextText(ws)).features, ["half-close", "early-data"]);
  await echoes(ws, "cold as ever");
  await finish(ws);
  assert.equal(stack.logs.count(/msg="warm leg/), 0);
});

Deno.test("warm: held legs take no --max-connections slot until their envelope", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({ maxConnections: 1 });
  const legs = [await warmLeg(stack), await warmLeg(stack), await warmLeg(stack)];
  // Three legs held, and the one connection slot is still free for a cold sender.
  const cold = await dialLeg(stack, false);
  await cold.send(envelope(target.addr));
  assert.equal(decodeResponse(await nextText(cold)).ok, true);
  await echoes(cold, "cold");
  await finish(cold);
  await stack.logs.waitFor(/msg="accept released"/);
  // Once used, a warm leg counts: now a cold sender is refused.
  await legs[0].send(envelope(target.addr));
  assert.equal(decodeResponse(await nextText(legs[0])).ok, true);
  const err = await dialLeg(stack, false).then(() => null, (e) => e);
  assert.ok(err instanceof WsHandshakeError);
  assert.equal(err.status, 503);
  assert.match(await stack.logs.waitFor(/msg=accept_dropped/), /reason=semaphore_full/);
  await echoes(legs[0], "warm");
  await finish(legs[0]);
  for (const ws of legs.slice(1)) await ws.close();
});

Deno.test("warm: a used leg at max connections waits for a slot, up to the connect timeout", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({ maxConnections: 1, connectTimeoutMs: 2_000 });
  const [a, b] = [await warmLeg(stack), await warmLeg(stack)];
  const cold = await dialLeg(stack, false);
  await cold.send(envelope(target.addr));
  assert.equal(decodeResponse(await nextText(cold)).ok, true);
  await a.send(envelope(target.addr));
  await stack.logs.waitFor(/msg="warm leg waits for a connection slot"/);
  await finish(cold);
  assert.equal(decodeResponse(await nextText(a)).ok, true);
  await echoes(a, "served once the slot was free");
  // Nobody frees it this time: at the connect timeout the leg closes, unanswered, with 1013.
  await b.send(envelope(target.addr));
  assert.deepEqual(await closedWith(b), { code: 1013, reason: "listener at max connections" });
  assert.match(await stack.logs.waitFor(/msg=accept_dropped/), /reason=semaphore_full/);
  await finish(a);
});

Deno.test("warm: a stop closes held legs at once with 1001, without a drain wait", async () => {
  await using stack = await startStack({ drainTimeoutMs: 60_000 });
  const legs = [await warmLeg(stack), await warmLeg(stack)];
  const started = performance.now();
  const stopped = stack.stopListener();
  for (const ws of legs) assert.equal((await closedWith(ws)).code, 1001);
  await stopped;
  assert.ok(performance.now() - started < 5_000, "the stop waited for the drain");
  assert.equal(stack.logs.count(/msg="draining tunnels"/), 0);
  assert.equal(stack.logs.count(/msg="warm leg closed, listener stopping"/), 2);
});

Deno.test("warm: a held leg is closed 1000 idle at its idle limit", async () => {
  await using stack = await startStack({ warmIdleMs: 200, connectTimeoutMs: 100 });
  const ws = await warmLeg(stack);
  assert.deepEqual(await closedWith(ws), { code: 1000, reason: "idle" });
  await stack.logs.waitFor(/level=DEBUG msg="warm leg idle-closed" side=listener/);
});

/** A target dial that waits for `gate`, then dials for real; counts its calls. */
function gatedDial(gate: Promise<void>, calls: string[]) {
  return async (target: string): Promise<Deno.TcpConn> => {
    calls.push(target);
    await gate;
    const [hostname, port] = target.split(":");
    return await Deno.connect({ hostname, port: Number(port) });
  };
}

Deno.test("early data: frames sent with the envelope, before the answer, reach the target byte-exact", async () => {
  const received = Promise.withResolvers<Uint8Array>();
  await using target = startTarget(async (conn) => {
    received.resolve(await readAll(conn));
    await conn.closeWrite();
  });
  const gate = Promise.withResolvers<void>();
  const calls: string[] = [];
  await using stack = await startStack({
    handler: { pingIntervalMs: 0, dial: gatedDial(gate.promise, calls) },
  });
  const ws = await warmLeg(stack);
  const data = pattern(200_000, 7);
  // The envelope and every data frame, back to back, before the listener has even dialled.
  await ws.send(envelope(target.addr));
  for (let off = 0, size = 1; off < data.length; off += size, size = size * 3 % 32768 + 1) {
    await ws.send(data.subarray(off, Math.min(data.length, off + size)));
  }
  await ws.send(EOF_MESSAGE);
  await stack.logs.waitFor(/msg="connection requested" side=listener/);
  assert.deepEqual(calls, [target.addr]);
  gate.resolve();
  assert.equal(decodeResponse(await nextText(ws)).ok, true);
  const got = await deadline(received.promise, WAIT_MS);
  assert.equal(got.length, data.length);
  assert.equal(sha256(got), sha256(data));
  while (await deadline(ws.receive(), WAIT_MS) !== null) continue;
  await ws.close();
});

Deno.test("early data: a target not allowed sees nothing; the data is dropped and the leg ends", async () => {
  const seen: string[] = [];
  const marker = Promise.withResolvers<void>();
  await using canary = startTarget(async (conn) => {
    const text = dec.decode(await readAll(conn));
    seen.push(text);
    if (text === "marker") marker.resolve();
  });
  await using stack = await startStack({ allowlist: parseAllowlist(["127.0.0.1:1"]) });
  const ws = await warmLeg(stack);
  await ws.send(envelope(canary.addr));
  const data = pattern(32768, 3);
  for (let i = 0; i < 8; i++) await ws.send(data);
  await ws.send(EOF_MESSAGE);
  const res = decodeResponse(await nextText(ws));
  assert.deepEqual([res.ok, res.code], [false, "not_allowed"]);
  // Closed at once, not at the close deadline: the early data was read and dropped.
  assert.deepEqual(await closedWith(ws), { code: 1000, reason: "done" });
  // The listener's side ends with our Close, not at its 5 s close deadline.
  await stack.logs.waitFor(/msg="accept released" side=listener/, 2_000);
  // Accepts are first come, first served: had the listener dialled, the canary would see it first.
  const probe = await Deno.connect({ hostname: "127.0.0.1", port: canary.port });
  await writeAll(probe, new TextEncoder().encode("marker"));
  await probe.closeWrite();
  await deadline(marker.promise, WAIT_MS);
  probe.close();
  assert.deepEqual(seen, ["marker"]);
});

Deno.test("early data: held while the target dial runs (bounded), dropped when it is refused", async () => {
  const gate = Promise.withResolvers<void>();
  const calls: string[] = [];
  await using stack = await startStack({
    handler: { pingIntervalMs: 0, dial: gatedDial(gate.promise, calls) },
  });
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closed.close();
  const ws = await warmLeg(stack);
  await ws.send(envelope(`127.0.0.1:${closed.addr.port}`));
  await stack.logs.waitFor(/msg="connection requested" side=listener/);
  // The listener reads nothing until the target is connected: the sender's sends stall.
  const frame = pattern(32768, 5);
  const limit = 64 * 1024 * 1024;
  let sent = 0;
  let sending = ws.send(frame);
  while (!await stillPending(sending, 500)) {
    sent += frame.length;
    assert.ok(sent < limit, `${sent} bytes taken while the listener was dialling`);
    sending = ws.send(frame);
  }
  gate.resolve();
  const res = decodeResponse(await nextText(ws));
  assert.deepEqual([res.ok, res.code], [false, "connection_refused"]);
  await sending.catch(() => {});
  assert.deepEqual(await closedWith(ws), { code: 1000, reason: "done" });
  await stack.logs.waitFor(/msg="accept released" side=listener/, 2_000);
  assert.deepEqual(calls.length, 1);
});

Deno.test("shared leg: MUX_START turns a warm leg into many tunnels, each with its envelope", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({ listenerId: LID });
  const ws = await warmLeg(stack);
  await ws.send(MUX_START);
  const mux = new MuxSession(ws, { role: "opener" });
  const streams = [mux.open(), mux.open(), mux.open()];
  // All three envelopes leave before any answer: one carrier, three rendezvous saved.
  await Promise.all(streams.map((s) => s.send(envelope(target.addr))));
  for (const s of streams) {
    const msg = await deadline(s.receive(), WAIT_MS);
    assert.equal(msg?.type, "text");
    assert.equal(decodeResponse(msg.data as string).ok, true);
  }
  await Promise.all(streams.map((s, i) => echoes(s, `stream ${i}`)));
  await Promise.all(streams.map((s) => finish(s)));
  await stack.logs.waitFor(/msg="accept released".*stream_id=3/);
  await mux.close(1000, "done");
  await mux.done;
  await stack.logs.waitFor(/msg="shared leg ended" side=listener/);
  assert.equal(stack.logs.count(/level=WARN.*stream_id/), 0, stack.logs.lines.join(""));
});

Deno.test("shared leg: without mux granted, MUX_START is refused as an envelope without a target", async () => {
  await using stack = await startStack({ handler: { features: ["half-close", "warm"] } });
  const ws = await dialLeg(stack);
  assert.match(await nextText(ws), /"features":\["half-close","warm"\]\}$/);
  await ws.send(MUX_START);
  const res = decodeResponse(await nextText(ws));
  assert.deepEqual([res.ok, res.error], [false, "missing target"]);
  await ws.close();
});
