/**
 * A fake sender for listener tests: raw lib/ws legs on relay-server's sender URL (marked warm with
 * `Aztunnel-Leg: warm` or not), the envelope, echo round trips and the tunnel's end.
 */
import assert from "node:assert/strict";
import { deadline } from "../../lib/async.ts";
import { connectUrl, resourceUri, withToken } from "../../lib/relay/urls.ts";
import { EOF_MESSAGE } from "../../lib/tunnel/bridge.ts";
import { encodeEnvelope, featuresMetadata } from "../../lib/tunnel/envelope.ts";
import { WARM_LEG_HEADER, WARM_LEG_VALUE } from "../../lib/tunnel/warm.ts";
import { connectWebSocket } from "../../lib/ws/client.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import type { MessageSocket } from "../../lib/ws/types.ts";
import type { Stack } from "./tunnel_stack.ts";
import { concatBytes } from "../../lib/bytes.ts";

export const WAIT_MS = 10_000;
const dec = new TextDecoder();

/** A sender leg on the relay; `warm` adds the header that marks it. */
export async function dialLeg(stack: Stack, warm = true): Promise<WebSocketConn> {
  const { endpoint, entity, tokens } = stack.relay;
  const { token } = await tokens.getToken(resourceUri(endpoint, entity));
  return await connectWebSocket(withToken(connectUrl(endpoint, entity), token), {
    headers: warm ? { [WARM_LEG_HEADER]: WARM_LEG_VALUE } : undefined,
    timeoutMs: WAIT_MS,
  });
}

/** The next message as text (asserting it is TEXT), within WAIT_MS. */
export async function nextText(ws: MessageSocket): Promise<string> {
  const msg = await deadline(ws.receive(), WAIT_MS);
  assert.equal(msg?.type, "text", `expected TEXT, got ${msg === null ? "Close" : msg.type}`);
  return msg.data as string;
}

/** A warm leg that has said its hello. */
export async function warmLeg(stack: Stack): Promise<WebSocketConn> {
  const ws = await dialLeg(stack);
  assert.match(await nextText(ws), /^\{"version":1,"hello":"warm"/);
  return ws;
}

/** A v1 envelope for `target` offering `features`. */
export function envelope(
  target: string,
  features = ["half-close", "early-data"],
  bridgeId = "BRIDGEWARM234567",
): string {
  return encodeEnvelope({
    version: 1,
    target,
    metadata: featuresMetadata(features),
    bridge_id: bridgeId,
  });
}

/** Sends our eof, then reads the tunnel to its end: the target's bytes, until the listener's Close. */
export async function finish(ws: MessageSocket): Promise<Uint8Array> {
  await ws.send(EOF_MESSAGE);
  const chunks: Uint8Array[] = [];
  for (;;) {
    const msg = await deadline(ws.receive(), WAIT_MS);
    if (msg === null) break;
    if (msg.type === "binary") chunks.push(msg.data);
  }
  await ws.close();
  return concatBytes(chunks);
}

/** An echo round trip on an open tunnel leg. */
export async function echoes(ws: MessageSocket, text: string): Promise<void> {
  await ws.send(new TextEncoder().encode(text));
  const msg = await deadline(ws.receive(), WAIT_MS);
  assert.equal(msg?.type, "binary");
  assert.equal(dec.decode(msg.data as Uint8Array), text);
}

/** A target that echoes until EOF, then half-closes. */
export async function echoThenEof(conn: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(65536);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    await conn.write(buf.subarray(0, n));
  }
  await conn.closeWrite();
}

/** The peer's Close (receive() resolved null) within WAIT_MS, ignoring data messages. */
export async function closedWith(ws: MessageSocket): Promise<{ code: number; reason: string }> {
  while (await deadline(ws.receive(), WAIT_MS) !== null) continue;
  const info = ws.closeInfo;
  assert.ok(info);
  await ws.close(info.code === 1005 ? 1000 : info.code).catch(() => ws.closeNow());
  return info;
}
