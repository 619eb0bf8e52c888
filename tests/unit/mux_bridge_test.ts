/** MuxStreams are drop-in MessageSockets: the tunnel bridge runs over them unchanged. */
import assert from "node:assert/strict";
import { MuxSession } from "../../lib/mux/session.ts";
import { bridge } from "../../lib/tunnel/bridge.ts";
import { connectWebSocket } from "../../lib/ws/client.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import type { MessageSocket } from "../../lib/ws/types.ts";
import { pattern } from "../helpers/bytes.ts";
import { fakeSocketPair } from "../helpers/fake_socket.ts";
import { receiveBytes, sendAll, streamPair } from "../helpers/mux.ts";
import { tcpPair, writeAll } from "../helpers/servers.ts";
import { readToEnd } from "../helpers/tcp_end.ts";
import { startServer } from "../helpers/ws_peers.ts";

const MiB = 1024 * 1024;

/** Writes `data`, then half-closes. */
async function writeThenEof(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  await writeAll(conn, data);
  await conn.closeWrite();
}

/**
 * One tunnel over a stream pair: client ⇄ bridge ⇄ stream ⇄ stream ⇄ bridge ⇄ target, with `up`
 * bytes one way and `down` the other, each ended by a half-close.
 */
async function tunnel(
  opener: MuxSession,
  acceptor: MuxSession,
  up: number,
  down: number,
  seed = 0,
) {
  const [x, y] = await streamPair(opener, acceptor);
  const [client, senderLocal] = await tcpPair();
  const [listenerLocal, target] = await tcpPair();
  const opts = { halfClose: true, pingIntervalMs: 0 };
  const upData = pattern(up, seed);
  const downData = pattern(down, seed + 1);
  const [senderResult, listenerResult, atTarget, atClient] = await Promise.all([
    bridge(senderLocal, x, opts),
    bridge(listenerLocal, y, opts),
    readToEnd(target),
    readToEnd(client),
    writeThenEof(client, upData),
    writeThenEof(target, downData),
  ]);
  client.close();
  target.close();
  assert.equal(atTarget.end, "fin");
  assert.equal(atClient.end, "fin");
  assert.deepEqual(atTarget.data, upData);
  assert.deepEqual(atClient.data, downData);
  assert.equal(senderResult.tcpToWs, up);
  assert.equal(senderResult.wsToTcp, down);
  assert.equal(listenerResult.tcpToWs, down);
  assert.equal(senderResult.error, undefined);
  assert.equal(listenerResult.error, undefined);
  // Both bridges ended with eof and Close 1000: the streams are released, the carrier stays.
  await Promise.all([x.closed, y.closed]);
  assert.deepEqual(x.closeInfo, { code: 1000, reason: "done" });
  assert.deepEqual(y.closeInfo, { code: 1000, reason: "done" });
}

async function endSessions(opener: MuxSession, acceptor: MuxSession): Promise<void> {
  assert.equal(opener.streams, 0);
  assert.equal(acceptor.streams, 0);
  assert.equal(opener.ended || acceptor.ended, false);
  await opener.close();
  await Promise.all([opener.done, acceptor.done]);
}

Deno.test("mux bridge: tunnels with half-close over a fake carrier, three at once", async () => {
  const [a, b] = fakeSocketPair();
  const opener = new MuxSession(a, { role: "opener" });
  const acceptor = new MuxSession(b, { role: "acceptor" });
  await Promise.all([
    tunnel(opener, acceptor, 3 * MiB, 2 * MiB, 1),
    tunnel(opener, acceptor, 5, 2 * MiB, 2),
    tunnel(opener, acceptor, MiB, 0, 3),
  ]);
  await endSessions(opener, acceptor);
});

/** A real lib/ws WebSocketConn pair on loopback. */
async function wsPair(): Promise<
  { client: MessageSocket; server: MessageSocket; stop(): Promise<void> }
> {
  const accepted = Promise.withResolvers<WebSocketConn>();
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    accepted.resolve(ws);
    await ws.closed;
  });
  const client = await connectWebSocket(server.url);
  return { client, server: await accepted.promise, stop: () => server.close() };
}

Deno.test("mux over lib/ws: tunnels and a slow stream beside a busy one", async () => {
  const pair = await wsPair();
  const opener = new MuxSession(pair.client, { role: "opener" });
  const acceptor = new MuxSession(pair.server, { role: "acceptor" });

  await Promise.all([
    tunnel(opener, acceptor, 4 * MiB, 3 * MiB, 4),
    tunnel(opener, acceptor, 100, 200, 5),
  ]);

  // A stream nobody reads fills its window; the other still moves 2 MiB each way.
  const [slowOut, slowIn] = await streamPair(opener, acceptor);
  const [fastOut, fastIn] = await streamPair(opener, acceptor);
  // Eight messages cost the whole 256 KiB window (each payload + 64): 7 × 32768 + 32256 bytes.
  const fill = 7 * 32768 + 32256;
  await sendAll(slowOut, pattern(fill, 6));
  let blocked = true;
  const late = slowOut.send(new Uint8Array([1])).finally(() => blocked = false);
  const data = pattern(2 * MiB, 7);
  const [, up, , down] = await Promise.all([
    sendAll(fastOut, data),
    receiveBytes(fastIn, data.length),
    sendAll(fastIn, data),
    receiveBytes(fastOut, data.length),
  ]);
  assert.deepEqual(up, data);
  assert.deepEqual(down, data);
  assert.equal(blocked, true);
  assert.deepEqual(await receiveBytes(slowIn, fill), pattern(fill, 6));
  await late;
  assert.deepEqual(await slowIn.receive(), { type: "binary", data: new Uint8Array([1]) });
  await opener.ping(5_000);
  await slowOut.ping(5_000);

  await Promise.all([slowOut.close(), slowIn.close(), fastOut.close(), fastIn.close()]);
  await endSessions(opener, acceptor);
  await pair.stop();
});
