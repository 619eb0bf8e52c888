// lib/ws client and server against each other and against raw-socket peers written here.
import assert from "node:assert/strict";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { type IncomingRequest, serveHttp } from "../../lib/ws/server.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { WsError, WsHandshakeError } from "../../lib/ws/errors.ts";
import {
  encodeFrame,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
} from "../../lib/ws/frame.ts";
import { makeTestCerts, type TestCerts } from "../helpers/certs.ts";
import { withDeadline } from "../helpers/proc.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const MASK = new Uint8Array([1, 2, 3, 4]);

// ---------- helpers ----------

/** True when `p` is still pending after `ms` (used only to prove that something blocks). */
async function stillPending(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = new Promise<"pending">((r) => timer = setTimeout(() => r("pending"), ms));
  const r = await Promise.race([p.then(() => "settled", () => "settled"), tick]);
  clearTimeout(timer);
  return r === "pending";
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<WsError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WsError, `expected WsError ${code}, got ${err}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

function pattern(size: number, seed = 0): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (i * 7 + seed + (i >>> 8)) & 0xff;
  return out;
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new Uint8Array(data));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

interface TestServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

function startServer(
  handler: (req: IncomingRequest) => Promise<void>,
  opts: { headerTimeoutMs?: number } = {},
): TestServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server = serveHttp({ listener, handler, headerTimeoutMs: opts.headerTimeoutMs });
  return {
    url: `ws://127.0.0.1:${server.addr.port}`,
    port: server.addr.port,
    close: () => server.close(),
  };
}

/** An echo server; finishes the closing handshake with the peer's own code. */
function echoServer(upgradeOpts: { maxMessageSize?: number; protocol?: string } = {}) {
  const sockets: WebSocketConn[] = [];
  const errors: unknown[] = [];
  const server = startServer(async (req) => {
    const ws = await req.upgrade(upgradeOpts);
    sockets.push(ws);
    try {
      for (;;) {
        const m = await ws.receive();
        if (m === null) break;
        await ws.send(m.data);
      }
      await ws.close(ws.closeInfo?.code ?? 1000, ws.closeInfo?.reason ?? "");
    } catch (err) {
      errors.push(err);
      ws.closeNow();
    }
  });
  return { ...server, sockets, errors };
}

/** A raw TCP peer: writes exact bytes, reads frames without any lib/ws code. */
class RawPeer {
  readonly conn: Deno.Conn;
  #buf = new Uint8Array(0);
  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }
  static async connect(port: number): Promise<RawPeer> {
    return new RawPeer(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  async write(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === "string" ? enc.encode(data) : data;
    let off = 0;
    while (off < bytes.length) off += await this.conn.write(bytes.subarray(off));
  }
  async #more(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(this.#buf.length + n);
    next.set(this.#buf);
    next.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = next;
    return true;
  }
  async readExact(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#more())) throw new Error("EOF");
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.slice(n);
    return out;
  }
  async readHead(): Promise<string> {
    for (;;) {
      const text = dec.decode(this.#buf);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#buf = this.#buf.slice(end + 4);
        return text.slice(0, end);
      }
      if (!(await this.#more())) throw new Error("EOF in head");
    }
  }
  /** Everything until EOF. */
  async readAll(): Promise<string> {
    try {
      while (await this.#more()) { /* accumulate */ }
    } catch {
      // A reset ends the stream as well.
    }
    const text = dec.decode(this.#buf);
    this.#buf = new Uint8Array(0);
    return text;
  }
  async readFrame(): Promise<
    { fin: boolean; opcode: number; masked: boolean; payload: Uint8Array }
  > {
    const [b0, b1] = await this.readExact(2);
    let len = b1 & 0x7f;
    if (len === 126) {
      const x = await this.readExact(2);
      len = (x[0] << 8) | x[1];
    } else if (len === 127) {
      const x = await this.readExact(8);
      len = new DataView(x.buffer).getUint32(4);
    }
    const masked = (b1 & 0x80) !== 0;
    const mask = masked ? await this.readExact(4) : null;
    const payload = await this.readExact(len);
    if (mask) { for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]; }
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload };
  }
  async readClose(): Promise<{ code: number; reason: string }> {
    for (;;) {
      const f = await this.readFrame();
      if (f.opcode !== OP_CLOSE) continue;
      if (f.payload.length === 0) return { code: 1005, reason: "" };
      return {
        code: (f.payload[0] << 8) | f.payload[1],
        reason: dec.decode(f.payload.subarray(2)),
      };
    }
  }
  /** Client handshake done by hand; `extra` is appended raw right after the head. */
  async handshake(path = "/", extra?: Uint8Array): Promise<string> {
    const head = enc.encode(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const all = new Uint8Array(head.length + (extra?.length ?? 0));
    all.set(head);
    if (extra) all.set(extra, head.length);
    await this.write(all);
    const res = await this.readHead();
    assert.match(res, /^HTTP\/1\.1 101 /);
    assert.match(res, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=/i);
    return res;
  }
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** A raw server that accepts one connection and lets the test script it. */
function rawServer(script: (peer: RawPeer, head: string) => Promise<void>) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const done = (async () => {
    const conn = await listener.accept();
    listener.close();
    const peer = new RawPeer(conn);
    try {
      await script(peer, await peer.readHead());
    } finally {
      peer.close();
    }
  })();
  return { url: `ws://127.0.0.1:${listener.addr.port}`, done };
}

async function acceptFor(head: string): Promise<string> {
  const key = /sec-websocket-key: (\S+)/i.exec(head)?.[1] ?? "";
  const digest = await crypto.subtle.digest(
    "SHA-1",
    enc.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

async function switching(head: string, extraHeaders = ""): Promise<string> {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Accept: ${await acceptFor(head)}\r\n${extraHeaders}\r\n`;
}

// ---------- round trips ----------

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

// ---------- TLS and proxy ----------

function tlsEchoServer(certs: TestCerts) {
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: certs.cert,
    key: certs.key,
  });
  let secure: boolean | null = null;
  let url = "";
  const server = serveHttp({
    listener,
    secure: true,
    handler: async (req) => {
      secure = req.secure;
      url = req.url.href;
      const ws = await req.upgrade();
      for (;;) {
        const m = await ws.receive();
        if (m === null) break;
        await ws.send(m.data);
      }
      await ws.close();
    },
  });
  return { server, port: server.addr.port, info: () => ({ secure, url }) };
}

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

/** A tiny HTTP CONNECT proxy that sends every tunnel to 127.0.0.1 (so fake names work). */
function connectProxy(opts: { refuse?: boolean } = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const requests: string[] = [];
  const conns = new Set<Deno.Conn>();
  const tasks: Promise<void>[] = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
      await to.closeWrite();
    } catch {
      // One side went away; the other pipe notices on its own.
    }
  };
  const serve = async (client: Deno.Conn) => {
    conns.add(client);
    const peer = new RawPeer(client);
    const head = await peer.readHead();
    requests.push(head);
    if (opts.refuse) {
      await peer.write("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
      return;
    }
    const port = Number(/^CONNECT [^ ]+:(\d+) /.exec(head)?.[1]);
    const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.add(upstream);
    await peer.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    await Promise.all([pipe(client, upstream), pipe(upstream, client)]);
  };
  const accepting = (async () => {
    for await (const c of listener) tasks.push(serve(c).catch(() => {}));
  })();
  return {
    url: `http://127.0.0.1:${listener.addr.port}`,
    requests,
    async close() {
      listener.close();
      await accepting;
      await Promise.all(tasks);
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
    },
  };
}

async function withEnv<T>(vars: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const names = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"];
  const saved = new Map(names.map((n) => [n, Deno.env.get(n)]));
  for (const n of names) Deno.env.delete(n);
  for (const [k, v] of Object.entries(vars)) Deno.env.set(k, v);
  try {
    return await fn();
  } finally {
    for (const [n, v] of saved) v === undefined ? Deno.env.delete(n) : Deno.env.set(n, v);
  }
}

Deno.test("ws:// and wss:// through an HTTP CONNECT proxy from the environment", async () => {
  await using certs = await makeTestCerts({ extraDnsNames: ["ws.test"] });
  const tls = tlsEchoServer(certs);
  const plain = echoServer();
  const proxy = connectProxy();
  try {
    await withEnv({
      HTTP_PROXY: proxy.url,
      HTTPS_PROXY: `http://user:pa%3Ass@${proxy.url.slice(7)}`,
    }, async () => {
      // ws.test does not resolve: only the proxy can have carried these.
      const ws = await connectWebSocket(`ws://ws.test:${plain.port}/p?sb-hc-token=x`);
      await ws.send("via proxy");
      assert.deepEqual(await ws.receive(), { type: "text", data: "via proxy" });
      await ws.close();
      const wss = await connectWebSocket(`wss://ws.test:${tls.port}/s`, { caCerts: [certs.ca] });
      await wss.send("via proxy, encrypted");
      assert.deepEqual(await wss.receive(), { type: "text", data: "via proxy, encrypted" });
      await wss.close();
      await rejectsWith(
        connectWebSocket(`ws://ws.test:${plain.port}/`, { proxy: "none", timeoutMs: 5000 }),
        "connect_failed",
      );
    });
    assert.equal(proxy.requests.length, 2);
    assert.equal(
      proxy.requests[0],
      `CONNECT ws.test:${plain.port} HTTP/1.1\r\nHost: ws.test:${plain.port}`,
    );
    assert.equal(
      proxy.requests[1],
      `CONNECT ws.test:${tls.port} HTTP/1.1\r\nHost: ws.test:${tls.port}\r\n` +
        `Proxy-Authorization: Basic ${btoa("user:pa:ss")}`,
    );
    await withEnv({ HTTP_PROXY: proxy.url, NO_PROXY: "example.org,.test" }, async () => {
      await rejectsWith(connectWebSocket(`ws://ws.test:${plain.port}/`), "connect_failed");
    });
    assert.equal(proxy.requests.length, 2, "NO_PROXY bypassed the proxy");
  } finally {
    await proxy.close();
    await plain.close();
    await tls.server.close();
  }
});

Deno.test("a proxy refusing CONNECT is connect_failed with its status", async () => {
  const proxy = connectProxy({ refuse: true });
  try {
    await withEnv({ HTTP_PROXY: proxy.url }, async () => {
      const err = await rejectsWith(connectWebSocket("ws://ws.test:1/"), "connect_failed");
      assert.match(err.message, /407 Proxy Authentication Required/);
    });
  } finally {
    await proxy.close();
  }
});

Deno.test("a proxy that cannot be reached is named in the error", async () => {
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = dead.addr;
  dead.close();
  await withEnv({ HTTP_PROXY: `http://127.0.0.1:${port}` }, async () => {
    const err = await rejectsWith(connectWebSocket("ws://ws.test:1/"), "connect_failed");
    assert.match(err.message, new RegExp(`through proxy 127\\.0\\.0\\.1:${port}: `));
  });
});
