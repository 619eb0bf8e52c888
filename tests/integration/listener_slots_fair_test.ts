/**
 * The listener's slots under pressure, against relay-server with a fake sender (raw lib/ws legs):
 * a used warm leg keeps its warm slot while it waits for a connection slot (waiting legs bounded by
 * --max-warm-legs), and a cold accept at --max-connections joins the same FIFO queue while someone
 * waits, instead of an immediate 503; with nobody waiting it is still refused at once.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { connectUrl, resourceUri, withToken } from "../../lib/relay/urls.ts";
import { EOF_MESSAGE } from "../../lib/tunnel/bridge.ts";
import { decodeResponse, encodeEnvelope, featuresMetadata } from "../../lib/tunnel/envelope.ts";
import { WARM_LEG_HEADER, WARM_LEG_VALUE } from "../../lib/tunnel/warm.ts";
import { connectWebSocket } from "../../lib/ws/client.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { WsHandshakeError } from "../../lib/ws/errors.ts";
import { stillPending } from "../helpers/ws_peers.ts";
import { type Stack, startStack, startTarget } from "../helpers/tunnel_stack.ts";

const WAIT_MS = 10_000;
const dec = new TextDecoder();
const WARM_WAITS = /msg="warm leg waits for a connection slot"/;
const COLD_WAITS = /msg="cold accept waits for a connection slot"/;

async function dialLeg(stack: Stack, warm = true): Promise<WebSocketConn> {
  const { endpoint, entity, tokens } = stack.relay;
  const { token } = await tokens.getToken(resourceUri(endpoint, entity));
  return await connectWebSocket(withToken(connectUrl(endpoint, entity), token), {
    headers: warm ? { [WARM_LEG_HEADER]: WARM_LEG_VALUE } : undefined,
    timeoutMs: WAIT_MS,
  });
}

async function nextText(ws: WebSocketConn): Promise<string> {
  const msg = await deadline(ws.receive(), WAIT_MS);
  assert.equal(msg?.type, "text", `expected TEXT, got ${msg === null ? "Close" : msg.type}`);
  return msg.data as string;
}

async function warmLeg(stack: Stack): Promise<WebSocketConn> {
  const ws = await dialLeg(stack);
  assert.match(await nextText(ws), /^\{"version":1,"hello":"warm"/);
  return ws;
}

function envelope(target: string): string {
  return encodeEnvelope({
    version: 1,
    target,
    metadata: featuresMetadata(["half-close", "early-data"]),
    bridge_id: "BRIDGEFAIR234567",
  });
}

/** Sends the envelope and asserts an ok answer. */
async function opened(ws: WebSocketConn, target: string): Promise<void> {
  await ws.send(envelope(target));
  assert.equal(decodeResponse(await nextText(ws)).ok, true);
}

async function echoes(ws: WebSocketConn, text: string): Promise<void> {
  await ws.send(new TextEncoder().encode(text));
  const msg = await deadline(ws.receive(), WAIT_MS);
  assert.equal(msg?.type, "binary");
  assert.equal(dec.decode(msg.data as Uint8Array), text);
}

/** Our eof, then the tunnel read to the listener's Close; the leg's slot is given back after. */
async function finish(ws: WebSocketConn): Promise<void> {
  await ws.send(EOF_MESSAGE);
  while (await deadline(ws.receive(), WAIT_MS) !== null) continue;
  await ws.close();
}

async function echoThenEof(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    await conn.write(buf.subarray(0, n));
  }
  await conn.closeWrite();
}

async function closedWith(ws: WebSocketConn): Promise<{ code: number; reason: string }> {
  while (await deadline(ws.receive(), WAIT_MS) !== null) continue;
  const info = ws.closeInfo;
  assert.ok(info);
  await ws.close(info.code === 1005 ? 1000 : info.code).catch(() => ws.closeNow());
  return info;
}

async function refused(dialing: Promise<WebSocketConn>): Promise<WsHandshakeError> {
  const err = await dialing.then(async (ws) => {
    await ws.close();
    return null;
  }, (e) => e);
  assert.ok(err instanceof WsHandshakeError, `expected a refused upgrade, got ${err}`);
  assert.equal(err.status, 503);
  return err;
}

Deno.test("slots: used warm legs waiting for a connection slot keep their warm slots", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({
    maxConnections: 1,
    maxWarmLegs: 2,
    connectTimeoutMs: WAIT_MS,
  });
  const cold = await dialLeg(stack, false);
  await opened(cold, target.addr);
  const [a, b] = [await warmLeg(stack), await warmLeg(stack)];
  await a.send(envelope(target.addr));
  await b.send(envelope(target.addr));
  await stack.logs.waitFor(WARM_WAITS, WAIT_MS, 2);
  // Both legs sent envelopes and wait: their warm slots are still taken, so a third is refused.
  const err = await refused(dialLeg(stack));
  assert.match(`${err.statusText} ${err.body}`, /warm leg limit reached/);
  assert.match(await stack.logs.waitFor(/msg=accept_dropped/), /reason=warm_limit/);
  // The slot frees: the waiters are served in order, each once the one before is done.
  await finish(cold);
  assert.equal(decodeResponse(await nextText(a)).ok, true);
  await echoes(a, "first waiter");
  await finish(a);
  assert.equal(decodeResponse(await nextText(b)).ok, true);
  await echoes(b, "second waiter");
  await finish(b);
  assert.equal(stack.logs.count(/reason=semaphore_full/), 0);
});

Deno.test("slots: a cold accept at the limit queues behind a waiting warm leg and is served", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({
    maxConnections: 1,
    maxWarmLegs: 2,
    connectTimeoutMs: WAIT_MS,
  });
  const first = await dialLeg(stack, false);
  await opened(first, target.addr);
  const warm = await warmLeg(stack);
  await warm.send(envelope(target.addr));
  await stack.logs.waitFor(WARM_WAITS);
  const queued = dialLeg(stack, false);
  await stack.logs.waitFor(COLD_WAITS);
  assert.ok(await stillPending(queued, 0), "the cold rendezvous waits for a slot");
  await finish(first);
  // First come, first served: the warm leg that waited first gets the freed slot.
  assert.equal(decodeResponse(await nextText(warm)).ok, true);
  await echoes(warm, "warm first");
  assert.ok(await stillPending(queued, 0), "the cold accept is still behind the warm leg");
  await finish(warm);
  const cold = await deadline(queued, WAIT_MS);
  await opened(cold, target.addr);
  await echoes(cold, "cold served, not refused");
  await finish(cold);
  assert.equal(stack.logs.count(/msg=accept_dropped/), 0);
});

Deno.test("slots: queued cold accepts are bounded by the warm cap and end at the connect timeout", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({
    maxConnections: 1,
    maxWarmLegs: 1,
    connectTimeoutMs: 1_500,
  });
  const first = await dialLeg(stack, false);
  await opened(first, target.addr);
  const warm = await warmLeg(stack);
  await warm.send(envelope(target.addr));
  await stack.logs.waitFor(WARM_WAITS);
  const queued = dialLeg(stack, false);
  await stack.logs.waitFor(COLD_WAITS);
  // One cold accept already queued (the warm cap): the next is refused at once.
  await refused(dialLeg(stack, false));
  assert.match(await stack.logs.waitFor(/msg=accept_dropped/), /reason=semaphore_full/);
  // Nobody frees the slot: both waiters give up at the connect timeout.
  assert.deepEqual(await closedWith(warm), { code: 1013, reason: "listener at max connections" });
  await refused(queued);
  await stack.logs.waitFor(/msg=accept_dropped .*reason=semaphore_full/, WAIT_MS, 3);
  await echoes(first, "the holder is untouched");
  await finish(first);
});

Deno.test("slots: with nobody waiting, a cold accept at the limit is refused at once", async () => {
  await using target = startTarget(echoThenEof);
  await using stack = await startStack({
    maxConnections: 1,
    maxWarmLegs: 2,
    connectTimeoutMs: 30_000,
  });
  const first = await dialLeg(stack, false);
  await opened(first, target.addr);
  // A held (unused) warm leg waits for nothing: it does not make cold accepts queue.
  const held = await warmLeg(stack);
  const started = performance.now();
  await refused(dialLeg(stack, false));
  const took = performance.now() - started;
  assert.ok(took < 5_000, `refused after ${took.toFixed(0)} ms, not at once`);
  assert.match(await stack.logs.waitFor(/msg=accept_dropped/), /reason=semaphore_full/);
  assert.equal(stack.logs.count(COLD_WAITS), 0);
  await finish(first);
  await held.close();
});
