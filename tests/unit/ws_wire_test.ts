// What lib/ws puts on the wire, byte for byte and write by write: header names as the caller
// wrote them (issue 8, item 8) and one socket write per frame and per HTTP head (item 10).
import assert from "node:assert/strict";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { WebSocketConn } from "../../lib/ws/conn.ts";
import { acceptKey } from "../../lib/ws/keys.ts";
import { BufferedConn } from "../../lib/ws/io.ts";
import { serveHttp } from "../../lib/ws/server.ts";
import { arcHeaders } from "../../lib/arc/dial.ts";
import { withDeadline } from "../helpers/proc.ts";

const latin1 = new TextDecoder("latin1");
const enc = new TextEncoder();

async function readHead(conn: Deno.Conn): Promise<string> {
  let text = "";
  const buf = new Uint8Array(4096);
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("EOF inside the head");
    text += latin1.decode(buf.subarray(0, n));
  }
  return text.slice(0, text.indexOf("\r\n\r\n"));
}

/** A raw TCP server that records each request head as bytes and answers a proper 101. */
async function captureHandshake(
  connect: (url: string) => Promise<WebSocketConn>,
): Promise<string[]> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = (async () => {
    const conn = await listener.accept();
    try {
      const head = await readHead(conn);
      const key = /\r\nsec-websocket-key: (\S+)/i.exec(head)?.[1] ?? "";
      await conn.write(enc.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${await acceptKey(key)}\r\n\r\n`,
      ));
      // The client's Close, then ours; then the client drops the socket.
      await conn.read(new Uint8Array(64));
      await conn.write(new Uint8Array([0x88, 0x02, 0x03, 0xe8]));
      await conn.read(new Uint8Array(64)).catch(() => null);
      return head;
    } finally {
      conn.close();
    }
  })();
  try {
    const ws = await connect(`ws://127.0.0.1:${port}/$hc/x`);
    await ws.close();
    return (await withDeadline(serving, 5_000, "captured head")).split("\r\n");
  } finally {
    listener.close();
    await serving.catch(() => {});
  }
}

Deno.test("custom header names go out exactly as written (Record and pairs)", async () => {
  const creds = {
    namespaceName: "ns",
    namespaceNameSuffix: "servicebus.windows.net",
    hybridConnectionName: "hc",
    accessKey: "SharedAccessSignature sr=a&sig=b",
    expiresOn: 0,
    serviceConfigurationToken: "tok",
  };
  const arc = await captureHandshake((url) =>
    connectWebSocket(url, { headers: arcHeaders(creds, 2222), proxy: "none" })
  );
  assert.equal(arc[0], "GET /$hc/x HTTP/1.1");
  // Exactly the names the Arc agent (closed source) expects, and Go and `az ssh` send.
  for (
    const line of [
      "Servicebusauthorization: SharedAccessSignature sr=a&sig=b",
      "Service-Configuration-Token: tok",
      "Microsoft-Guestgateway-Target: localhost:2222",
    ]
  ) {
    assert.ok(arc.includes(line), `missing ${JSON.stringify(line)} in ${JSON.stringify(arc)}`);
  }

  const pairs = await captureHandshake((url) =>
    connectWebSocket(url, {
      headers: [["X-MiXeD-Case", "1"], ["host", "relay.example:443"], ["X-MiXeD-Case", "2"]],
      proxy: "none",
    })
  );
  // Repeated names stay separate lines in order; a caller's Host replaces ours.
  assert.deepEqual(pairs.filter((l) => /^x-mixed-case:/i.test(l)), [
    "X-MiXeD-Case: 1",
    "X-MiXeD-Case: 2",
  ]);
  assert.deepEqual(pairs.filter((l) => /^host:/i.test(l)), ["host: relay.example:443"]);
});

Deno.test("reserved header names are refused whatever their case", async () => {
  for (const name of ["sec-websocket-key", "UPGRADE", "Sec-WebSocket-Protocol"]) {
    await assert.rejects(
      connectWebSocket("ws://127.0.0.1:1/", { headers: [[name, "x"]] }),
      TypeError,
    );
  }
});

/** A write on the socket: its bytes, and whether it only carried on a partial write before it. */
interface WriteRecord {
  bytes: Uint8Array;
  continuation: boolean;
}

/** Delegates to a real TCP connection and records every write. */
class RecordingConn implements Deno.Conn {
  readonly writes: WriteRecord[] = [];
  readonly #inner: Deno.TcpConn;
  #expect: { buffer: ArrayBufferLike; offset: number } | null = null;

  constructor(inner: Deno.TcpConn) {
    this.#inner = inner;
  }

  /** Writes that started a new piece of data (a partial write's remainder does not count). */
  get logicalWrites(): Uint8Array[] {
    return this.writes.filter((w) => !w.continuation).map((w) => w.bytes);
  }

  get localAddr(): Deno.NetAddr {
    return this.#inner.localAddr;
  }
  get remoteAddr(): Deno.NetAddr {
    return this.#inner.remoteAddr;
  }
  get readable(): ReadableStream<Uint8Array<ArrayBuffer>> {
    return this.#inner.readable;
  }
  get writable(): WritableStream<Uint8Array<ArrayBufferLike>> {
    return this.#inner.writable;
  }
  read(p: Uint8Array): Promise<number | null> {
    return this.#inner.read(p);
  }
  async write(p: Uint8Array): Promise<number> {
    const e = this.#expect;
    const continuation = e !== null && e.buffer === p.buffer && e.offset === p.byteOffset;
    const n = await this.#inner.write(p);
    this.writes.push({ bytes: p.slice(0, n), continuation });
    this.#expect = n < p.length ? { buffer: p.buffer, offset: p.byteOffset + n } : null;
    return n;
  }
  closeWrite(): Promise<void> {
    return this.#inner.closeWrite();
  }
  close(): void {
    this.#inner.close();
  }
  ref(): void {
    this.#inner.ref();
  }
  unref(): void {
    this.#inner.unref();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/** A connected loopback pair: ours (recorded) and the peer's plain end. */
async function tcpPair(): Promise<{ ours: RecordingConn; peer: Deno.TcpConn }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const [peer, accepted] = await Promise.all([
      Deno.connect({ hostname: "127.0.0.1", port: (listener.addr as Deno.NetAddr).port }),
      listener.accept(),
    ]);
    return { ours: new RecordingConn(accepted), peer };
  } finally {
    listener.close();
  }
}

async function drain(conn: Deno.Conn, total: number): Promise<Uint8Array> {
  const out = new Uint8Array(total);
  let off = 0;
  while (off < total) {
    const n = await conn.read(out.subarray(off));
    if (n === null) throw new Error(`EOF after ${off} of ${total} bytes`);
    off += n;
  }
  return out;
}

Deno.test("every frame, header and payload, is one write (client and server, all sizes)", async () => {
  const sizes = [0, 1, 125, 126, 4096, 65_535, 65_536, 200_000, 1_100_000];
  for (const role of ["server", "client"] as const) {
    const { ours, peer } = await tcpPair();
    const ws = new WebSocketConn({
      io: new BufferedConn(ours),
      role,
      protocol: "",
      headers: new Headers(),
      remoteAddr: ours.remoteAddr,
    });
    let pinging = Promise.resolve();
    try {
      for (const size of sizes) {
        const payload = new Uint8Array(size).fill(size & 0xff);
        const before = ours.logicalWrites.length;
        const header = (size < 126 ? 2 : size < 65_536 ? 4 : 10) + (role === "client" ? 4 : 0);
        const [, wire] = await Promise.all([ws.send(payload), drain(peer, header + size)]);
        assert.equal(wire[0], 0x82);
        const writes = ours.logicalWrites.slice(before);
        assert.equal(
          writes.length,
          1,
          `${role} frame of ${size} bytes took ${writes.length} writes`,
        );
        assert.equal(writes[0].length, Math.min(header + size, writes[0].length));
      }
      const before = ours.logicalWrites.length;
      // Never answered: closeNow() below settles it.
      pinging = ws.ping(10_000).catch(() => {});
      await drain(peer, role === "client" ? 6 : 2);
      assert.equal(ours.logicalWrites.length - before, 1, "ping");
    } finally {
      ws.closeNow();
      await pinging;
      await ws.closed;
      peer.close();
    }
  }
});

/** A Deno.Listener whose connections record their writes. */
class RecordingListener implements Deno.Listener {
  readonly conns: RecordingConn[] = [];
  readonly #inner = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  get addr(): Deno.NetAddr {
    return this.#inner.addr;
  }
  async accept(): Promise<RecordingConn> {
    const conn = new RecordingConn(await this.#inner.accept());
    this.conns.push(conn);
    return conn;
  }
  close(): void {
    this.#inner.close();
  }
  ref(): void {
    this.#inner.ref();
  }
  unref(): void {
    this.#inner.unref();
  }
  async *[Symbol.asyncIterator](): AsyncIterableIterator<RecordingConn> {
    for (;;) yield await this.accept();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

Deno.test("HTTP heads go out in one write: 101, and a response with a large body", async () => {
  const listener = new RecordingListener();
  const big = "x".repeat(100_000);
  const server = serveHttp({
    listener,
    handler: async (req) => {
      if (req.isWebSocketUpgrade) {
        const ws = await req.upgrade();
        await ws.receive();
        await ws.close();
      } else {
        await req.respond(403, { body: big });
      }
    },
  });
  try {
    const ws = await connectWebSocket(`ws://127.0.0.1:${server.addr.port}/`, { proxy: "none" });
    await ws.close();
    const upgraded = listener.conns[0].logicalWrites;
    assert.match(
      latin1.decode(upgraded[0]),
      /^HTTP\/1\.1 101 Switching Protocols\r\n[^]*\r\n\r\n$/,
    );

    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
    await conn.write(enc.encode("GET /x HTTP/1.1\r\nHost: a\r\n\r\n"));
    // The server half-closes once its answer is written: EOF here means every write is recorded.
    let answer = "";
    const buf = new Uint8Array(64 * 1024);
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      answer += latin1.decode(buf.subarray(0, n));
    }
    conn.close();
    assert.match(answer, /^HTTP\/1\.1 403 Forbidden\r\n/);
    assert.ok(answer.endsWith(`\r\n\r\n${big}`));
    const refused = listener.conns[1].logicalWrites;
    assert.equal(refused.length, 1, `403 with a body took ${refused.length} writes`);
  } finally {
    await server.close();
  }
});
