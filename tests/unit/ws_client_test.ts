// lib/ws/client.ts and upgrade.ts: the opening handshake from the client side, its refusals and
// failures, and wss://.
import assert from "node:assert/strict";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { WsHandshakeError } from "../../lib/ws/errors.ts";
import { encodeFrame, OP_CLOSE, OP_TEXT } from "../../lib/ws/frame.ts";
import { pattern } from "../helpers/bytes.ts";
import { makeTestCerts } from "../helpers/certs.ts";
import { withDeadline } from "../helpers/proc.ts";
import {
  acceptFor,
  dec,
  echoServer,
  enc,
  MASK,
  RawPeer,
  rawServer,
  rejectsWith,
  startServer,
  switching,
  tlsEchoServer,
} from "../helpers/ws_peers.ts";

Deno.test("headers, subprotocol and remote address travel both ways", async () => {
  let seen: { headers: Headers; url: string; target: string; secure: boolean } | null = null;
  const server = startServer(async (req) => {
    seen = { headers: req.headers, url: req.url.href, target: req.target, secure: req.secure };
    const ws = await req.upgrade({ protocol: "v2", headers: { "x-server": "yes" } });
    await ws.send(ws.protocol);
    await ws.receive();
    await ws.close();
  });
  const ws = await connectWebSocket(`${server.url}/$hc/path?sb-hc-action=listen&a=%20b`, {
    headers: { "x-custom": "1", "Authorization": "token" },
    protocols: ["v1", "v2"],
  });
  assert.equal(ws.protocol, "v2");
  assert.equal(ws.headers.get("x-server"), "yes");
  assert.equal(ws.remoteAddr.port, server.port);
  assert.deepEqual(await ws.receive(), { type: "text", data: "v2" });
  await ws.close();
  await server.close();
  assert.ok(seen);
  const s = seen as { headers: Headers; url: string; target: string; secure: boolean };
  assert.equal(s.headers.get("x-custom"), "1");
  assert.equal(s.headers.get("authorization"), "token");
  assert.equal(s.headers.get("sec-websocket-protocol"), "v1, v2");
  assert.equal(s.headers.get("host"), `127.0.0.1:${server.port}`);
  assert.equal(s.target, "/$hc/path?sb-hc-action=listen&a=%20b");
  assert.equal(s.url, `http://127.0.0.1:${server.port}/$hc/path?sb-hc-action=listen&a=%20b`);
  assert.equal(s.secure, false);
});

Deno.test("upgrade sends no subprotocol unless asked, and the client refuses unoffered ones", async () => {
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    assert.equal(ws.protocol, "");
    await ws.close();
  });
  const ws = await connectWebSocket(server.url, { protocols: ["a"] });
  assert.equal(ws.protocol, "");
  assert.equal(ws.headers.get("sec-websocket-protocol"), null);
  await ws.receive();
  await ws.close();
  await server.close();

  for (const extra of ["Sec-WebSocket-Protocol: b\r\n", "Sec-WebSocket-Extensions: x\r\n"]) {
    const raw = rawServer(async (peer, head) => {
      await peer.write(await switching(head, extra));
      await peer.readAll();
    });
    await rejectsWith(connectWebSocket(raw.url, { protocols: ["a"] }), "protocol_error");
    await raw.done;
  }
  const bad = rawServer(async (peer) => {
    await peer.write(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
    );
    await peer.readAll();
  });
  const err = await rejectsWith(connectWebSocket(bad.url), "protocol_error");
  assert.match(err.message, /Sec-WebSocket-Accept/);
  await bad.done;
  const noUpgrade = rawServer(async (peer, head) => {
    await peer.write(
      `HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${await acceptFor(
        head,
      )}\r\n\r\n`,
    );
    await peer.readAll();
  });
  await rejectsWith(connectWebSocket(noUpgrade.url), "protocol_error");
  await noUpgrade.done;
});

Deno.test("bytes right after the 101 / the request head in the same write are not lost", async () => {
  const raw = rawServer(async (peer, head) => {
    const first = enc.encode(await switching(head));
    const frame = encodeFrame(OP_TEXT, enc.encode("early bird"), null);
    const all = new Uint8Array(first.length + frame.length);
    all.set(first);
    all.set(frame, first.length);
    await peer.write(all);
    await peer.readClose();
    await peer.write(encodeFrame(OP_CLOSE, new Uint8Array([0x03, 0xe8]), null));
  });
  const ws = await connectWebSocket(raw.url);
  assert.deepEqual(await ws.receive(), { type: "text", data: "early bird" });
  await ws.close();
  await raw.done;

  const server = echoServer();
  const peer = await RawPeer.connect(server.port);
  await peer.handshake("/", encodeFrame(OP_TEXT, enc.encode("first"), MASK));
  const f = await peer.readFrame();
  assert.deepEqual([f.opcode, f.masked, dec.decode(f.payload)], [OP_TEXT, false, "first"]);
  peer.close();
  await server.close();
});

// ---------- handshake failures ----------

Deno.test("a refused upgrade exposes status, reason, headers and body; no query in messages", async () => {
  const server = startServer(async (req) => {
    await req.respond(403, {
      reason: "Go Away",
      headers: { "x-reason": "denied", "www-authenticate": "SharedAccessSignature" },
      body: "you shall not pass\n",
    });
  });
  try {
    await connectWebSocket(`${server.url}/$hc/x?sb-hc-token=SECRET`);
    assert.fail("expected a refusal");
  } catch (err) {
    assert.ok(err instanceof WsHandshakeError);
    assert.equal(err.code, "handshake_status");
    assert.equal(err.status, 403);
    assert.equal(err.statusText, "Go Away");
    assert.equal(err.headers.get("x-reason"), "denied");
    assert.equal(err.headers.get("www-authenticate"), "SharedAccessSignature");
    assert.equal(err.headers.get("connection"), "close");
    assert.equal(err.body, "you shall not pass\n");
    assert.doesNotMatch(err.message, /SECRET|sb-hc-token/);
    assert.equal(err.message, `WebSocket upgrade to ${server.url}/$hc/x refused: 403 Go Away`);
  }
  await server.close();

  const chunked = rawServer(async (peer) => {
    await peer.write(
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    );
    await peer.readAll();
  });
  const err = await connectWebSocket(chunked.url).catch((e) => e);
  assert.ok(err instanceof WsHandshakeError);
  assert.deepEqual([err.status, err.body], [404, "hello world"]);
  await chunked.done;

  const untilEof = rawServer(async (peer) => {
    await peer.write("HTTP/1.0 503 Service Unavailable\r\n\r\nbusy");
  });
  const err2 = await connectWebSocket(untilEof.url).catch((e) => e);
  assert.ok(err2 instanceof WsHandshakeError);
  assert.deepEqual([err2.status, err2.statusText, err2.body], [503, "Service Unavailable", "busy"]);
  await untilEof.done;

  // No length and the connection kept open: the body read is cut short, the status still wins.
  const endless = rawServer(async (peer) => {
    await peer.write("HTTP/1.1 404 Not Found\r\n\r\npartial");
    await peer.readAll();
  });
  const err3 = await withDeadline(connectWebSocket(endless.url).catch((e) => e), 5000, "refusal");
  assert.ok(err3 instanceof WsHandshakeError);
  assert.deepEqual([err3.status, err3.body], [404, "partial"]);
  await endless.done;
});

Deno.test("handshake deadline, abort and unreachable hosts map to their codes", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })();
  try {
    const e1 = await rejectsWith(
      connectWebSocket(`ws://127.0.0.1:${port}/?sb-hc-token=SECRET`, { timeoutMs: 150 }),
      "handshake_timeout",
    );
    assert.doesNotMatch(e1.message, /SECRET/);
    const ac = new AbortController();
    const p = connectWebSocket(`ws://127.0.0.1:${port}/`, { signal: ac.signal });
    ac.abort();
    await rejectsWith(p, "aborted");
    await rejectsWith(
      connectWebSocket(`ws://127.0.0.1:${port}/`, { signal: ac.signal }),
      "aborted",
    );
  } finally {
    listener.close();
    await accepting;
    for (const c of held) c.close();
  }
  const err = await rejectsWith(connectWebSocket(`ws://127.0.0.1:${port}/`), "connect_failed");
  assert.ok(err.cause);
  const gone = rawServer(async () => {});
  await rejectsWith(connectWebSocket(gone.url), "connect_failed");
  await gone.done;
  await assert.rejects(connectWebSocket("http://127.0.0.1/"), TypeError);
  await assert.rejects(
    connectWebSocket("ws://127.0.0.1:1/", { headers: { "Sec-WebSocket-Key": "x" } }),
    TypeError,
  );
});

Deno.test("wss:// with a private CA passed as caCerts", async () => {
  await using certs = await makeTestCerts({ extraDnsNames: ["ws.test"] });
  const tls = tlsEchoServer(certs);
  try {
    const ws = await connectWebSocket(`wss://localhost:${tls.port}/secure`, {
      caCerts: [certs.ca],
    });
    await ws.send(pattern(200_000));
    const m = await ws.receive();
    assert.ok(m?.type === "binary");
    assert.deepEqual(m.data, pattern(200_000));
    await ws.close();
    assert.deepEqual(tls.info(), { secure: true, url: `https://localhost:${tls.port}/secure` });
    const err = await rejectsWith(
      connectWebSocket(`wss://localhost:${tls.port}/`),
      "connect_failed",
    );
    assert.match(err.message, /TLS/);
  } finally {
    await tls.server.close();
  }
});
