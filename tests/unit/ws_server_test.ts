// lib/ws/server.ts: serveHttp's answers to bad requests, its deadlines and its shutdown.
import assert from "node:assert/strict";
import { connectWebSocket } from "../../lib/ws/client.ts";
import type { WsError } from "../../lib/ws/errors.ts";
import { withDeadline } from "../helpers/proc.ts";
import { RawPeer, rejectsWith, startServer } from "../helpers/ws_peers.ts";

// ---------- server edge cases ----------

async function rawRequest(port: number, request: string): Promise<string> {
  const peer = await RawPeer.connect(port);
  try {
    await peer.write(request);
    return await withDeadline(peer.readAll(), 3000, "response");
  } finally {
    peer.close();
  }
}

Deno.test("serveHttp validates upgrades: 426 for a wrong version, 400 otherwise, 500 unanswered", async () => {
  const outcomes: string[] = [];
  const server = startServer(async (req) => {
    if (req.target === "/plain") return;
    if (req.target === "/boom") throw new Error("handler bug");
    if (req.target === "/health") {
      return req.respond(200, { body: "ok\n", headers: { "x-h": "1" } });
    }
    try {
      await req.upgrade();
      outcomes.push("upgraded");
    } catch (err) {
      outcomes.push((err as WsError).code);
    }
  });
  const up = (version: string, key = "dGhlIHNhbXBsZSBub25jZQ==") =>
    `GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n` +
    `Sec-WebSocket-Version: ${version}\r\nSec-WebSocket-Key: ${key}\r\n\r\n`;

  const r426 = await rawRequest(server.port, up("8"));
  assert.match(r426, /^HTTP\/1\.1 426 Upgrade Required\r\n/);
  assert.match(r426, /\r\nsec-websocket-version: 13\r\n/);
  assert.match(r426, /\r\nconnection: close\r\n/);
  assert.match(await rawRequest(server.port, up("13", "bad")), /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(
    await rawRequest(server.port, "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n"),
    /^HTTP\/1\.1 400 /,
  );
  assert.deepEqual(outcomes, ["protocol_error", "protocol_error", "protocol_error"]);
  assert.match(
    await rawRequest(server.port, "GET /plain HTTP/1.1\r\nHost: h\r\n\r\n"),
    /^HTTP\/1\.1 500 /,
  );
  assert.match(
    await rawRequest(server.port, "GET /boom HTTP/1.1\r\nHost: h\r\n\r\n"),
    /^HTTP\/1\.1 500 /,
  );
  assert.equal(
    await rawRequest(server.port, "GET /health HTTP/1.1\r\nHost: h\r\n\r\n"),
    "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 3\r\n" +
      "content-type: text/plain; charset=utf-8\r\nx-h: 1\r\n\r\nok\n",
  );
  assert.match(await rawRequest(server.port, "NONSENSE\r\n\r\n"), /^HTTP\/1\.1 400 /);
  assert.match(
    await rawRequest(server.port, "GET / HTTP/1.1\r\n\r\n"),
    /^HTTP\/1\.1 400 /,
    "no Host",
  );
  assert.match(
    await rawRequest(server.port, `GET / HTTP/1.1\r\nX: ${"a".repeat(17000)}\r\n\r\n`),
    /^HTTP\/1\.1 431 /,
  );
  await server.close();
});

Deno.test("serveHttp drops a client that sends no head within headerTimeoutMs", async () => {
  const server = startServer(() => Promise.resolve(), { headerTimeoutMs: 100 });
  const peer = await RawPeer.connect(server.port);
  await peer.write("GET / HTTP/1.1\r\n");
  assert.equal(await withDeadline(peer.readAll().catch(() => ""), 3000, "drop"), "");
  peer.close();
  await server.close();
});

Deno.test("server.close() drops open sockets and waits for its handlers", async () => {
  let handlerDone = false;
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    await rejectsWith(ws.receive(), "closed");
    handlerDone = true;
  });
  const ws = await connectWebSocket(server.url);
  const idle = await RawPeer.connect(server.port);
  await server.close();
  assert.equal(handlerDone, true);
  await rejectsWith(ws.receive(), "connection_lost");
  await ws.close();
  idle.close();
});

Deno.test("a handler that throws after upgrading has its socket dropped", async () => {
  const server = startServer(async (req) => {
    await req.upgrade();
    throw new Error("handler bug");
  });
  const ws = await connectWebSocket(server.url);
  await rejectsWith(ws.receive(), "connection_lost");
  await server.close();
});
