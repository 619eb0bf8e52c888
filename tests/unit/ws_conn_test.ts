// lib/ws/conn.ts and message_reader.ts: messages, fragments, ping/pong, closing, malformed input
// and backpressure, between lib/ws peers and raw-socket ones.
import assert from "node:assert/strict";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { WsError } from "../../lib/ws/errors.ts";
import {
  encodeFrame,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
} from "../../lib/ws/frame.ts";
import { pattern, sha256 } from "../helpers/bytes.ts";
import { withDeadline } from "../helpers/proc.ts";
import {
  dec,
  echoServer,
  enc,
  MASK,
  RawPeer,
  rawServer,
  rejectsWith,
  startServer,
  stillPending,
  switching,
} from "../helpers/ws_peers.ts";

Deno.test("client ⇄ server: text and binary from 0 B to 16 MiB come back exact", async () => {
  const server = echoServer();
  const ws = await connectWebSocket(server.url);
  try {
    for (const size of [0, 1, 125, 126, 127, 65535, 65536, 65537, 1 << 20, 16 << 20]) {
      const data = pattern(size, size);
      const original = data.slice();
      await ws.send(data);
      const back = await ws.receive();
      assert.equal(back?.type, "binary");
      assert.ok(back?.type === "binary");
      assert.equal(back.data.length, size);
      if (size <= 65537) assert.deepEqual(back.data, original);
      else assert.equal(await sha256(back.data), await sha256(original));
      assert.deepEqual(data, original, "the caller's buffer is never masked in place");
    }
    for (const s of ["", "a", "héllo wörld ✓ 🚀", "x".repeat(70000)]) {
      await ws.send(s);
      assert.deepEqual(await ws.receive(), { type: "text", data: s });
    }
    await ws.close(1000, "done");
    assert.deepEqual(ws.closeInfo, { code: 1000, reason: "done" });
    await ws.closed;
  } finally {
    ws.closeNow();
    await server.close();
  }
  assert.deepEqual(server.errors, []);
});

Deno.test("concurrent sends are serialised whole and arrive in order", async () => {
  const server = echoServer();
  const ws = await connectWebSocket(server.url);
  const sizes = [10, 200_000, 3, 70_000, 0, 1_000_000, 5];
  await Promise.all(sizes.map((n, i) => ws.send(pattern(n, i))));
  for (const [i, n] of sizes.entries()) {
    const m = await ws.receive();
    assert.ok(m?.type === "binary");
    assert.deepEqual(m.data, pattern(n, i));
  }
  await ws.close();
  await server.close();
});

// ---------- fragmentation, ping/pong ----------

Deno.test("fragmented messages with interleaved pings are reassembled; pongs echo the payload", async () => {
  const server = echoServer();
  const peer = await RawPeer.connect(server.port);
  await peer.handshake();
  await peer.write(encodeFrame(OP_TEXT, enc.encode("Hél"), MASK, false));
  await peer.write(encodeFrame(OP_PING, enc.encode("p1"), MASK));
  await peer.write(encodeFrame(OP_CONTINUATION, new Uint8Array(0), MASK, false));
  // A UTF-8 sequence split across fragments is fine: validity is judged on the whole message.
  const tail = enc.encode("é!");
  await peer.write(encodeFrame(OP_CONTINUATION, tail.subarray(0, 1), MASK, false));
  await peer.write(encodeFrame(OP_CONTINUATION, tail.subarray(1), MASK, true));
  const pong = await peer.readFrame();
  assert.deepEqual([pong.opcode, pong.fin, pong.masked], [OP_PONG, true, false]);
  assert.equal(dec.decode(pong.payload), "p1");
  const echo = await peer.readFrame();
  assert.deepEqual([echo.opcode, echo.fin, dec.decode(echo.payload)], [OP_TEXT, true, "Hélé!"]);
  await peer.write(encodeFrame(OP_BINARY, new Uint8Array([1, 2]), MASK, false));
  await peer.write(encodeFrame(OP_CONTINUATION, new Uint8Array([3]), MASK, true));
  const bin = await peer.readFrame();
  assert.deepEqual([bin.opcode, Array.from(bin.payload)], [OP_BINARY, [1, 2, 3]]);
  await peer.write(encodeFrame(OP_CLOSE, new Uint8Array([0x0f, 0xa0, 0x78]), MASK));
  assert.deepEqual(await peer.readClose(), { code: 4000, reason: "x" });
  peer.close();
  await server.close();
});

Deno.test("ping() resolves on the pong, even with no receive() running", async () => {
  const server = echoServer();
  const ws = await connectWebSocket(server.url);
  await withDeadline(ws.ping(2000), 3000, "ping");
  await Promise.all([ws.ping(2000), ws.ping(2000)]);
  await ws.send("after ping");
  assert.deepEqual(await ws.receive(), { type: "text", data: "after ping" });
  await ws.close();
  await server.close();
});

Deno.test("ping() with nobody receiving parks one message and reads no further", async () => {
  const raw = rawServer(async (peer, head) => {
    await peer.write(await switching(head));
    const ping = await peer.readFrame();
    assert.equal(ping.opcode, OP_PING);
    await peer.write(encodeFrame(OP_TEXT, enc.encode("before pong"), null));
    await peer.write(encodeFrame(OP_PONG, ping.payload, null));
    await peer.readClose();
    await peer.write(encodeFrame(OP_CLOSE, new Uint8Array(0), null));
  });
  const ws = await connectWebSocket(raw.url);
  // The pong sits behind a message the application has not read: receive backpressure wins.
  await rejectsWith(ws.ping(300), "ping_timeout");
  assert.deepEqual(await ws.receive(), { type: "text", data: "before pong" });
  await ws.close();
  assert.deepEqual(ws.closeInfo, { code: 1005, reason: "" });
  await raw.done;
});

Deno.test("ping() rejects with ping_timeout when no pong comes", async () => {
  const raw = rawServer(async (peer, head) => {
    await peer.write(await switching(head));
    assert.equal((await peer.readFrame()).opcode, OP_PING);
    await peer.readAll();
  });
  const ws = await connectWebSocket(raw.url);
  const started = Date.now();
  await rejectsWith(ws.ping(150), "ping_timeout");
  assert.ok(Date.now() - started < 2000);
  ws.closeNow();
  await ws.closed;
  await raw.done;
  await rejectsWith(ws.ping(100), "closed");
});

// ---------- closing ----------

Deno.test("close codes and reasons reach the peer; 1005 is sent as an empty Close", async () => {
  for (
    const [code, reason] of [[1000, ""], [1001, "going away"], [4999, "é✓"], [1005, ""]] as const
  ) {
    const server = echoServer();
    const ws = await connectWebSocket(server.url);
    await ws.close(code, reason);
    assert.deepEqual(ws.closeInfo, { code, reason });
    assert.equal(ws.closeSent, true);
    await rejectsWith(ws.send("late"), "closed");
    assert.equal(await ws.receive(), null);
    await server.close();
  }
  const server = echoServer();
  const ws = await connectWebSocket(server.url);
  await assert.rejects(ws.close(999), RangeError);
  await assert.rejects(ws.close(1000, "x".repeat(124)), RangeError);
  assert.equal(ws.closeSent, false);
  await ws.close();
  await server.close();
});

Deno.test("half-closed: after our Close we still receive until the peer's Close", async () => {
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    assert.equal(await ws.receive(), null);
    assert.deepEqual(ws.closeInfo, { code: 4001, reason: "client done" });
    assert.equal(ws.closeSent, false, "no automatic Close reply");
    // The peer's Close arrived; sending data is still allowed until we close.
    await ws.send("one");
    await ws.send(pattern(100_000));
    await ws.close(4002, "server done");
  });
  const ws = await connectWebSocket(server.url);
  const closing = ws.close(4001, "client done");
  assert.deepEqual(await ws.receive(), { type: "text", data: "one" });
  const big = await ws.receive();
  assert.ok(big?.type === "binary");
  assert.deepEqual(big.data, pattern(100_000));
  assert.equal(await ws.receive(), null);
  await closing;
  assert.deepEqual(ws.closeInfo, { code: 4002, reason: "server done" });
  await ws.closed;
  await server.close();
});

Deno.test("half-closed: a slow consumer after close() loses nothing", async () => {
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    assert.equal(await ws.receive(), null);
    for (let i = 0; i < 20; i++) await ws.send(pattern(50_000, i));
    await ws.close(ws.closeInfo?.code, ws.closeInfo?.reason);
  });
  const ws = await connectWebSocket(server.url);
  const closing = ws.close(1000, "bye");
  for (let i = 0; i < 20; i++) {
    const m = await ws.receive();
    assert.ok(m?.type === "binary", `message ${i}`);
    assert.deepEqual(m.data, pattern(50_000, i));
    // Simulated work between receives: close() must not read ahead and drop messages meanwhile.
    await new Promise((r) => setTimeout(r, 2));
  }
  assert.equal(await ws.receive(), null);
  await closing;
  assert.deepEqual(ws.closeInfo, { code: 1000, reason: "bye" });
  await server.close();
});

Deno.test("close() with nobody receiving parks one message instead of dropping it", async () => {
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    assert.equal(await ws.receive(), null);
    await ws.send("one");
    await ws.send("two");
    await ws.close(1000, "done");
  });
  const ws = await connectWebSocket(server.url, { closeTimeoutMs: 300 });
  await withDeadline(ws.close(1000, "bye"), 3000, "close");
  assert.equal(ws.closeInfo, null, "the peer's Close sat behind unread data");
  assert.deepEqual(await ws.receive(), { type: "text", data: "one" });
  await rejectsWith(ws.receive(), "closed");
  await server.close();

  // Nothing in the way: close() alone reads the peer's Close at once.
  const quiet = echoServer();
  const ws2 = await connectWebSocket(quiet.url);
  await withDeadline(ws2.close(1000, "bye"), 1000, "close");
  assert.deepEqual(ws2.closeInfo, { code: 1000, reason: "bye" });
  await quiet.close();
});

Deno.test("close() gives up after its deadline when the peer never answers", async () => {
  const raw = rawServer(async (peer, head) => {
    await peer.write(await switching(head));
    await peer.readClose();
    await peer.readAll();
  });
  const ws = await connectWebSocket(raw.url, { closeTimeoutMs: 300 });
  const started = Date.now();
  await withDeadline(ws.close(), 3000, "close");
  assert.ok(Date.now() - started >= 250, "waited for the close deadline");
  assert.equal(ws.closeInfo, null);
  await rejectsWith(ws.receive(), "closed");
  await raw.done;
});

Deno.test("a dropped connection rejects receive() with connection_lost and closeInfo 1006", async () => {
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    await ws.send("last words");
    ws.closeNow();
    await ws.closed;
  });
  const ws = await connectWebSocket(server.url);
  assert.deepEqual(await ws.receive(), { type: "text", data: "last words" });
  await rejectsWith(ws.receive(), "connection_lost");
  assert.deepEqual(ws.closeInfo, { code: 1006, reason: "" });
  await rejectsWith(ws.receive(), "connection_lost");
  await ws.close();
  await ws.closed;
  await server.close();
});

Deno.test("closeNow() rejects a pending receive() and resolves closed", async () => {
  const server = echoServer();
  const ws = await connectWebSocket(server.url);
  const pending = ws.receive();
  ws.closeNow();
  await rejectsWith(pending, "closed");
  await ws.closed;
  assert.equal(ws.closeSent, true);
  await server.close();
});

// ---------- malformed input ----------

async function expectServerFailure(
  frames: Uint8Array[],
  closeCode: number,
  errCode = "protocol_error",
  maxMessageSize?: number,
): Promise<void> {
  let serverErr: unknown = null;
  const server = startServer(async (req) => {
    const ws = await req.upgrade({ maxMessageSize });
    try {
      for (;;) if ((await ws.receive()) === null) break;
    } catch (err) {
      serverErr = err;
    }
    await ws.closed;
  });
  const peer = await RawPeer.connect(server.port);
  await peer.handshake();
  for (const f of frames) await peer.write(f);
  const close = await withDeadline(peer.readClose(), 3000, "close frame");
  assert.equal(close.code, closeCode);
  assert.equal(await withDeadline(peer.readAll(), 3000, "EOF"), "");
  peer.close();
  await server.close();
  assert.ok(serverErr instanceof WsError, String(serverErr));
  assert.equal((serverErr as WsError).code, errCode);
}

Deno.test("malformed frames close with the RFC's code and reject receive()", async (t) => {
  const m = (op: number, payload: number[] | string, fin = true) =>
    encodeFrame(
      op,
      typeof payload === "string" ? enc.encode(payload) : new Uint8Array(payload),
      MASK,
      fin,
    );
  const cases: [string, Uint8Array[], number][] = [
    ["unknown opcode", [new Uint8Array([0x83, 0x80, 1, 2, 3, 4])], 1002],
    ["reserved bit", [new Uint8Array([0xc1, 0x80, 1, 2, 3, 4])], 1002],
    ["unmasked client frame", [encodeFrame(OP_TEXT, enc.encode("hi"), null)], 1002],
    ["control frame > 125", [m(OP_PING, new Array(126).fill(0))], 1002],
    ["fragmented control frame", [m(OP_PING, "x", false)], 1002],
    ["continuation without a message", [m(OP_CONTINUATION, "x")], 1002],
    ["new message inside a fragmented one", [m(OP_TEXT, "a", false), m(OP_TEXT, "b")], 1002],
    ["invalid UTF-8 text", [m(OP_TEXT, [0xc3, 0x28])], 1007],
    ["invalid UTF-8 across fragments", [m(OP_TEXT, [0xe2, 0x82], false), m(0, [0x41])], 1007],
    ["invalid UTF-8 close reason", [m(OP_CLOSE, [0x03, 0xe8, 0xff])], 1007],
    ["close code 1005 on the wire", [m(OP_CLOSE, [0x03, 0xed])], 1002],
    ["close code 999", [m(OP_CLOSE, [0x03, 0xe7])], 1002],
    ["1-byte close payload", [m(OP_CLOSE, [0x03])], 1002],
  ];
  for (const [name, frames, code] of cases) {
    await t.step(name, () => expectServerFailure(frames, code));
  }
});

Deno.test("a message over maxMessageSize closes with 1009 (single frame and fragments)", async () => {
  await expectServerFailure(
    [encodeFrame(OP_BINARY, new Uint8Array(1025), MASK)],
    1009,
    "message_too_big",
    1024,
  );
  await expectServerFailure(
    [
      encodeFrame(OP_BINARY, new Uint8Array(600), MASK, false),
      encodeFrame(OP_CONTINUATION, new Uint8Array(600), MASK, true),
    ],
    1009,
    "message_too_big",
    1024,
  );
  // Exactly at the limit is fine.
  const server = echoServer({ maxMessageSize: 1024 });
  const ws = await connectWebSocket(server.url, { maxMessageSize: 1024 });
  await ws.send(new Uint8Array(1024));
  assert.equal((await ws.receive())?.data.length, 1024);
  await ws.close();
  await server.close();
});

Deno.test("the client fails masked server frames with 1002 and oversize ones with 1009", async () => {
  for (
    const [frame, code, errCode] of [
      [encodeFrame(OP_TEXT, enc.encode("masked"), MASK), 1002, "protocol_error"],
      [encodeFrame(OP_BINARY, new Uint8Array(2000), null), 1009, "message_too_big"],
    ] as const
  ) {
    const raw = rawServer(async (peer, head) => {
      await peer.write(await switching(head));
      await peer.write(frame);
      assert.equal((await peer.readClose()).code, code);
      assert.equal(await peer.readAll(), "", "the client half-closes and waits for our EOF");
    });
    const ws = await connectWebSocket(raw.url, { maxMessageSize: 1000 });
    await rejectsWith(ws.receive(), errCode);
    await rejectsWith(ws.send("x"), "closed");
    await rejectsWith(ws.receive(), errCode);
    await raw.done;
    await ws.closed;
  }
});

Deno.test("concurrent receive() calls get messages in order", async () => {
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    for (const s of ["a", "b", "c"]) await ws.send(s);
    await ws.close(4000);
  });
  const ws = await connectWebSocket(server.url);
  const got = await Promise.all([ws.receive(), ws.receive(), ws.receive(), ws.receive()]);
  assert.deepEqual(got, [
    { type: "text", data: "a" },
    { type: "text", data: "b" },
    { type: "text", data: "c" },
    null,
  ]);
  assert.deepEqual(ws.closeInfo, { code: 4000, reason: "" });
  await ws.close(4000);
  await server.close();
});

// ---------- backpressure ----------

Deno.test("backpressure: sends block while the receiver does not read, then all arrive", async () => {
  const chunk = pattern(1 << 20);
  let sent = 0;
  let allSent!: () => void;
  const sendsDone = new Promise<void>((r) => allSent = r);
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    for (let i = 0; i < 64; i++) {
      await ws.send(chunk);
      sent++;
    }
    allSent();
    await ws.close();
  });
  const ws = await connectWebSocket(server.url);
  const first = await ws.receive();
  assert.equal(first?.data.length, 1 << 20);
  // The receiver stops reading: the sender must stall far short of 64 MiB.
  assert.equal(await stillPending(sendsDone, 300), true);
  assert.ok(sent < 40, `sender got ${sent} MiB ahead of a reader that stopped`);
  let got = 1;
  while (await ws.receive()) got++;
  assert.equal(got, 64);
  await sendsDone;
  await ws.close();
  await server.close();
});

Deno.test("readyState: open, peer-closed or closing, then closed", async () => {
  const server = startServer(async (req) => {
    const ws = await req.upgrade();
    assert.equal(ws.readyState, "open");
    assert.equal(await ws.receive(), null);
    assert.equal(ws.readyState, "peer-closed", "the client's Close came first");
    assert.equal(ws.closeSent, false);
    await ws.send("still open this way");
    await ws.close(ws.closeInfo?.code, ws.closeInfo?.reason);
    assert.equal(ws.readyState, "closed");
  });
  const ws = await connectWebSocket(server.url);
  assert.equal(ws.readyState, "open");
  const closing = ws.close(1000, "bye");
  assert.equal(ws.readyState, "closing");
  assert.equal(ws.closeSent, true);
  await rejectsWith(ws.ping(100), "closed");
  assert.deepEqual(await ws.receive(), { type: "text", data: "still open this way" });
  await closing;
  assert.equal(ws.readyState, "closed");
  await server.close();
});
