/**
 * Peers for lib/ws tests: a lib/ws echo server, a raw-socket peer that speaks the wire by hand,
 * and a scripted raw server. Used by tests/unit/ws_{conn,client,server,proxy}_test.ts.
 */
import assert from "node:assert/strict";
import { type IncomingRequest, serveHttp } from "../../lib/ws/server.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { WsError } from "../../lib/ws/errors.ts";
import { OP_CLOSE } from "../../lib/ws/frame.ts";
import type { TestCerts } from "./certs.ts";

export const enc = new TextEncoder();
export const dec = new TextDecoder();
export const MASK = new Uint8Array([1, 2, 3, 4]);

/** True when `p` is still pending after `ms` (used only to prove that something blocks). */
export async function stillPending(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = new Promise<"pending">((r) => timer = setTimeout(() => r("pending"), ms));
  const r = await Promise.race([p.then(() => "settled", () => "settled"), tick]);
  clearTimeout(timer);
  return r === "pending";
}

export async function rejectsWith(p: Promise<unknown>, code: string): Promise<WsError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WsError, `expected WsError ${code}, got ${err}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

export interface TestServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export function startServer(
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
export function echoServer(upgradeOpts: { maxMessageSize?: number; protocol?: string } = {}) {
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
export class RawPeer {
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
export function rawServer(script: (peer: RawPeer, head: string) => Promise<void>) {
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

export async function acceptFor(head: string): Promise<string> {
  const key = /sec-websocket-key: (\S+)/i.exec(head)?.[1] ?? "";
  const digest = await crypto.subtle.digest(
    "SHA-1",
    enc.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

export async function switching(head: string, extraHeaders = ""): Promise<string> {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Accept: ${await acceptFor(head)}\r\n${extraHeaders}\r\n`;
}

export function tlsEchoServer(certs: TestCerts) {
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
