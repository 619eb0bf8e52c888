/**
 * The listener's slots under pressure, against relay-server with a fake sender (raw lib/ws legs):
 * a used warm leg keeps its warm slot while it waits for a connection slot (waiting legs bounded by
 * --max-warm-legs), and a cold accept at --max-connections joins the same FIFO queue while someone
 * waits, instead of an immediate 503; with nobody waiting it is still refused at once.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { decodeResponse } from "../../lib/tunnel/envelope.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { WsHandshakeError } from "../../lib/ws/errors.ts";
import {
  closedWith,
  dialLeg,
  echoes,
  echoThenEof,
  envelope as legEnvelope,
  finish,
  nextText,
  WAIT_MS,
  warmLeg,
} from "../helpers/listener_cast.ts";
import { stillPending } from "../helpers/ws_peers.ts";
import { type Stack, startStack, startTarget, type Target } from "../helpers/tunnel_stack.ts";

const WARM_WAITS = /msg="warm leg waits for a connection slot"/;
const COLD_WAITS = /msg="cold accept waits for a connection slot"/;

function envelope(target: string): string {
  return legEnvelope(target, undefined, "BRIDGEFAIR234567");
}

/** Sends the envelope and asserts an ok answer. */
async function opened(ws: WebSocketConn, target: string): Promise<void> {
  await ws.send(envelope(target));
  assert.equal(decodeResponse(await nextText(ws)).ok, true);
}

/** A waiter's turn: the ok answer, then one echo. */
async function answered(ws: WebSocketConn, text: string): Promise<void> {
  assert.equal(decodeResponse(await nextText(ws)).ok, true);
  await echoes(ws, text);
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

interface AtLimit extends AsyncDisposable {
  target: Target;
  stack: Stack;
  /** The cold tunnel that holds the one connection slot. */
  first: WebSocketConn;
}

/** An echo target and a stack at --max-connections 1, its one slot held by an open cold tunnel. */
async function atLimit(maxWarmLegs: number, connectTimeoutMs: number): Promise<AtLimit> {
  const target = startTarget(echoThenEof);
  let stack: Stack;
  try {
    stack = await startStack({ maxConnections: 1, maxWarmLegs, connectTimeoutMs });
  } catch (err) {
    await target[Symbol.asyncDispose]();
    throw err;
  }
  const close = async () => {
    await stack[Symbol.asyncDispose]();
    await target[Symbol.asyncDispose]();
  };
  try {
    const first = await dialLeg(stack, false);
    await opened(first, target.addr);
    return { target, stack, first, [Symbol.asyncDispose]: close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** A used warm leg waiting for the slot, then a cold dial queued behind it. */
async function queueBehind({ target, stack }: AtLimit) {
  const warm = await warmLeg(stack);
  await warm.send(envelope(target.addr));
  await stack.logs.waitFor(WARM_WAITS);
  const queued = dialLeg(stack, false);
  await stack.logs.waitFor(COLD_WAITS);
  return { warm, queued };
}

Deno.test("slots: used warm legs waiting for a connection slot keep their warm slots", async () => {
  await using rig = await atLimit(2, WAIT_MS);
  const { target, stack, first: cold } = rig;
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
  await answered(a, "first waiter");
  await finish(a);
  await answered(b, "second waiter");
  await finish(b);
  assert.equal(stack.logs.count(/reason=semaphore_full/), 0);
});

Deno.test("slots: a cold accept at the limit queues behind a waiting warm leg and is served", async () => {
  await using rig = await atLimit(2, WAIT_MS);
  const { target, stack, first } = rig;
  const { warm, queued } = await queueBehind(rig);
  assert.ok(await stillPending(queued, 0), "the cold rendezvous waits for a slot");
  await finish(first);
  // First come, first served: the warm leg that waited first gets the freed slot.
  await answered(warm, "warm first");
  assert.ok(await stillPending(queued, 0), "the cold accept is still behind the warm leg");
  await finish(warm);
  const cold = await deadline(queued, WAIT_MS);
  await opened(cold, target.addr);
  await echoes(cold, "cold served, not refused");
  await finish(cold);
  assert.equal(stack.logs.count(/msg=accept_dropped/), 0);
});

Deno.test("slots: queued cold accepts are bounded by the warm cap and end at the connect timeout", async () => {
  await using rig = await atLimit(1, 1_500);
  const { stack, first } = rig;
  const { warm, queued } = await queueBehind(rig);
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
  await using rig = await atLimit(2, 30_000);
  const { stack, first } = rig;
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
