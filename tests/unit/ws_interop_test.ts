// lib/ws against independent implementations: Deno's built-in WebSocket client,
// Deno.upgradeWebSocket (Deno.serve), and npm `ws` as client and server.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import NpmWebSocketModule, { WebSocketServer as NpmWebSocketServerModule } from "ws";
import { connectWebSocket } from "../../lib/ws/client.ts";
import { type IncomingRequest, serveHttp } from "../../lib/ws/server.ts";
import type { WebSocketConn } from "../../lib/ws/conn.ts";
import { WsError, WsHandshakeError } from "../../lib/ws/errors.ts";
import { pattern } from "../helpers/bytes.ts";
import { withDeadline } from "../helpers/proc.ts";

// ---------- minimal types for npm ws (it ships none; only what these tests use) ----------

interface NpmWs {
  readonly protocol: string;
  send(data: string | Uint8Array, opts?: { binary?: boolean; fin?: boolean }): void;
  ping(data?: Uint8Array | string): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  on(event: "open", listener: () => void): this;
  on(event: "message", listener: (data: Uint8Array, isBinary: boolean) => void): this;
  on(event: "close", listener: (code: number, reason: Uint8Array) => void): this;
  on(event: "error", listener: (err: Error) => void): this;
  on(event: "ping" | "pong", listener: (data: Uint8Array) => void): this;
  on(
    event: "unexpected-response",
    listener: (req: unknown, res: IncomingMessage) => void,
  ): this;
}
interface NpmWsOptions {
  headers?: Record<string, string>;
  maxPayload?: number;
}
type NpmWsCtor = new (url: string, protocols?: string[], opts?: NpmWsOptions) => NpmWs;
interface NpmWsServer {
  handleUpgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Uint8Array,
    done: (ws: NpmWs) => void,
  ): void;
  close(): void;
}
type NpmWsServerCtor = new (opts: {
  noServer: true;
  maxPayload?: number;
  handleProtocols?: (protocols: Set<string>) => string | false;
}) => NpmWsServer;

const NpmWebSocket = NpmWebSocketModule as unknown as NpmWsCtor;
const NpmWebSocketServer = NpmWebSocketServerModule as unknown as NpmWsServerCtor;

// ---------- helpers ----------

const dec = new TextDecoder();
const SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20, 16 << 20];

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A FIFO of events with a deadline on every take. */
class Inbox<T> {
  #items: T[] = [];
  #waiters: ((v: T) => void)[] = [];
  push = (v: T): void => {
    const w = this.#waiters.shift();
    if (w) w(v);
    else this.#items.push(v);
  };
  take(what = "event", ms = 5000): Promise<T> {
    const v = this.#items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return withDeadline(new Promise<T>((r) => this.#waiters.push(r)), ms, what);
  }
}

/** Sends every size as binary and text through `ws` and checks the echo byte for byte. */
async function echoRoundTrips(ws: WebSocketConn): Promise<void> {
  for (const size of SIZES) {
    const data = pattern(size, size);
    await ws.send(data);
    const m = await ws.receive();
    assert.ok(m?.type === "binary", `binary ${size}`);
    assert.ok(sameBytes(m.data, data), `binary ${size} intact`);
  }
  for (const size of [0, 1, 126, 65536, 1 << 20, 16 << 20]) {
    const text = "é✓a".repeat(Math.floor(size / 6)) + "z".repeat(size % 6);
    await ws.send(text);
    assert.deepEqual(await ws.receive(), { type: "text", data: text }, `text ${size}`);
  }
}

/** Deno.serve + Deno.upgradeWebSocket echo server, with a hook to script a socket. */
function denoServer(
  onSocket: (socket: WebSocket, events: Inbox<string>) => void = echoSocket,
) {
  const closes = new Inbox<{ code: number; reason: string }>();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/refuse") {
        return new Response("denied by test\n", {
          status: 401,
          statusText: "No Entry",
          headers: { "x-reason": "token" },
        });
      }
      const offered = req.headers.get("sec-websocket-protocol");
      const { socket, response } = Deno.upgradeWebSocket(req, {
        protocol: offered ? offered.split(",")[0].trim() : undefined,
        idleTimeout: 0,
      });
      socket.binaryType = "arraybuffer";
      socket.onclose = (e) => closes.push({ code: e.code, reason: e.reason });
      onSocket(socket, new Inbox<string>());
      return response;
    },
  );
  return { url: `ws://127.0.0.1:${server.addr.port}`, closes, stop: () => server.shutdown() };
}

function echoSocket(socket: WebSocket): void {
  socket.onmessage = (e) => socket.send(e.data);
}

/** Our server with a scripted handler. */
function ourServer(handler: (req: IncomingRequest) => Promise<void>) {
  const server = serveHttp({ listener: Deno.listen({ hostname: "127.0.0.1", port: 0 }), handler });
  return { url: `ws://127.0.0.1:${server.addr.port}`, close: () => server.close() };
}

async function echoUntilClose(ws: WebSocketConn): Promise<void> {
  for (;;) {
    const m = await ws.receive();
    if (m === null) break;
    await ws.send(m.data);
  }
  await ws.close(ws.closeInfo?.code, ws.closeInfo?.reason);
}

// ---------- lib/ws client → Deno.upgradeWebSocket ----------

Deno.test("lib/ws client → Deno.upgradeWebSocket: echo 0 B–16 MiB, ping, close code", async () => {
  const srv = denoServer();
  try {
    const ws = await connectWebSocket(`${srv.url}/echo`, { protocols: ["aztunnel.v1", "x"] });
    assert.equal(ws.protocol, "aztunnel.v1");
    await echoRoundTrips(ws);
    await withDeadline(ws.ping(2000), 3000, "pong from Deno");
    await ws.close(4100, "client bye ✓");
    assert.deepEqual(await srv.closes.take("server onclose"), {
      code: 4100,
      reason: "client bye ✓",
    });
    assert.deepEqual(ws.closeInfo, { code: 4100, reason: "client bye ✓" });
  } finally {
    await srv.stop();
  }
});

Deno.test("Deno.upgradeWebSocket closes first: lib/ws sees the code, then completes the close", async () => {
  const srv = denoServer((socket) => {
    socket.onopen = () => {
      socket.send("hello");
      socket.close(4200, "server bye");
    };
  });
  try {
    const ws = await connectWebSocket(srv.url);
    assert.deepEqual(await ws.receive(), { type: "text", data: "hello" });
    assert.equal(await ws.receive(), null);
    assert.deepEqual(ws.closeInfo, { code: 4200, reason: "server bye" });
    assert.equal(ws.closeSent, false);
    await ws.close(4200, "server bye");
    assert.deepEqual(await srv.closes.take("onclose"), { code: 4200, reason: "server bye" });
  } finally {
    await srv.stop();
  }
});

Deno.test("Deno.upgradeWebSocket: refused upgrade and 1009 on an oversize message", async () => {
  const srv = denoServer((socket) => {
    socket.onopen = () => socket.send(new Uint8Array(2048));
  });
  try {
    const err = await connectWebSocket(`${srv.url}/refuse?sb-hc-token=SECRET`).catch((e) => e);
    assert.ok(err instanceof WsHandshakeError);
    assert.equal(err.status, 401);
    // Deno.serve puts the standard reason phrase on the wire whatever statusText says.
    assert.equal(err.statusText, "Unauthorized");
    assert.equal(err.headers.get("x-reason"), "token");
    assert.equal(err.body, "denied by test\n");
    assert.doesNotMatch(err.message, /SECRET/);

    const ws = await connectWebSocket(srv.url, { maxMessageSize: 1024 });
    await assert.rejects(ws.receive(), (e) => e instanceof WsError && e.code === "message_too_big");
    assert.equal((await srv.closes.take("onclose")).code, 1009);
    await ws.closed;
  } finally {
    await srv.stop();
  }
});

// ---------- Deno's built-in WebSocket client → lib/ws server ----------

Deno.test("built-in WebSocket → lib/ws server: echo 0 B–16 MiB, subprotocol, ping, close", async () => {
  let pinged = false;
  const srv = ourServer(async (req) => {
    const ws = await req.upgrade({ protocol: "chat" });
    const first = await ws.receive();
    assert.deepEqual(first, { type: "text", data: "start" });
    await withDeadline(ws.ping(2000), 3000, "pong from the built-in client");
    pinged = true;
    await ws.send("pinged");
    await echoUntilClose(ws);
  });
  const client = new WebSocket(srv.url, ["chat", "other"]);
  client.binaryType = "arraybuffer";
  const inbox = new Inbox<string | Uint8Array>();
  client.onmessage = (e) =>
    inbox.push(typeof e.data === "string" ? e.data : new Uint8Array(e.data as ArrayBuffer));
  const closed = new Promise<CloseEvent>((r) => client.onclose = r);
  await withDeadline(new Promise((r) => client.onopen = r), 3000, "open");
  try {
    assert.equal(client.protocol, "chat");
    client.send("start");
    assert.equal(await inbox.take("pinged"), "pinged");
    assert.equal(pinged, true);
    for (const size of SIZES) {
      const data = pattern(size, 3);
      client.send(data);
      const back = await inbox.take(`echo ${size}`);
      assert.ok(back instanceof Uint8Array && sameBytes(back, data), `binary ${size}`);
      const text = "ü".repeat(size >> 1);
      client.send(text);
      assert.equal(await inbox.take(`text ${size}`), text);
    }
    client.close(4300, "browser-ish bye");
    const ev = await withDeadline(closed, 3000, "close");
    assert.deepEqual([ev.code, ev.reason, ev.wasClean], [4300, "browser-ish bye", true]);
  } finally {
    await srv.close();
  }
});

Deno.test("built-in WebSocket: lib/ws server closes first, and enforces maxMessageSize", async () => {
  const srv = ourServer(async (req) => {
    const ws = await req.upgrade({ maxMessageSize: 1000 });
    if (req.url.pathname === "/close") {
      await ws.close(4400, "server first");
      return;
    }
    await assert.rejects(ws.receive(), (e) => e instanceof WsError && e.code === "message_too_big");
    await ws.closed;
  });
  try {
    for (const [path, code, reason] of [["/close", 4400, "server first"], ["/big", 1009, ""]]) {
      const client = new WebSocket(`${srv.url}${path}`);
      const closed = new Promise<CloseEvent>((r) => client.onclose = r);
      await withDeadline(new Promise((r) => client.onopen = r), 3000, "open");
      if (path === "/big") client.send(new Uint8Array(1001));
      const ev = await withDeadline(closed, 3000, "close");
      assert.equal(ev.code, code);
      if (path === "/close") assert.equal(ev.reason, reason);
    }
  } finally {
    await srv.close();
  }
});

// ---------- npm ws client → lib/ws server ----------

Deno.test("npm ws client → lib/ws server: echo, fragments, ping payloads, close", async () => {
  const srv = ourServer(async (req) => {
    assert.equal(req.headers.get("x-from"), "npm-ws");
    const ws = await req.upgrade({ protocol: "p2" });
    const hello = await ws.receive();
    assert.deepEqual(hello, { type: "text", data: "fragmented hello ✓" });
    await withDeadline(ws.ping(2000), 3000, "pong from npm ws");
    await echoUntilClose(ws);
  });
  const client = new NpmWebSocket(srv.url, ["p1", "p2"], { headers: { "x-from": "npm-ws" } });
  const inbox = new Inbox<{ data: Uint8Array; binary: boolean }>();
  const pongs = new Inbox<string>();
  const closes = new Inbox<{ code: number; reason: string }>();
  client.on("message", (data, binary) => inbox.push({ data: new Uint8Array(data), binary }));
  client.on("pong", (data) => pongs.push(dec.decode(data)));
  client.on("close", (code, reason) => closes.push({ code, reason: dec.decode(reason) }));
  client.on("error", () => {});
  await withDeadline(new Promise<void>((r) => client.on("open", r)), 3000, "open");
  try {
    assert.equal(client.protocol, "p2");
    client.send("fragmented ", { fin: false, binary: false });
    client.send("hello ✓", { fin: true, binary: false });
    client.ping("are you there");
    assert.equal(await pongs.take("pong"), "are you there");
    for (const size of SIZES) {
      const data = pattern(size, 5);
      client.send(data, { binary: true });
      const m = await inbox.take(`echo ${size}`);
      assert.equal(m.binary, true);
      assert.ok(sameBytes(m.data, data), `binary ${size}`);
    }
    const parts = [pattern(70000, 1), pattern(0), pattern(3, 2)];
    client.send(parts[0], { binary: true, fin: false });
    client.send(parts[1], { binary: true, fin: false });
    client.send(parts[2], { binary: true, fin: true });
    const whole = await inbox.take("fragmented binary");
    assert.equal(whole.data.length, 70003);
    assert.ok(sameBytes(whole.data.subarray(70000), parts[2]));
    client.close(4500, "npm bye");
    assert.deepEqual(await closes.take("close"), { code: 4500, reason: "npm bye" });
  } finally {
    client.terminate();
    await srv.close();
  }
});

Deno.test("npm ws client: refused upgrade is visible; its maxPayload makes it close 1009", async () => {
  const serverSaw = new Inbox<unknown>();
  const srv = ourServer(async (req) => {
    if (req.url.pathname === "/refuse") {
      await req.respond(404, { headers: { "x-hc": "no listener" }, body: "no listener\n" });
      return;
    }
    const ws = await req.upgrade();
    await ws.send(new Uint8Array(5000));
    serverSaw.push({ message: await ws.receive(), closeInfo: ws.closeInfo });
    await ws.close();
  });
  try {
    const refused = new NpmWebSocket(`${srv.url}/refuse`);
    refused.on("error", () => {});
    const res = await withDeadline(
      new Promise<IncomingMessage>((r) => refused.on("unexpected-response", (_req, res) => r(res))),
      3000,
      "unexpected-response",
    );
    let body = "";
    res.setEncoding("utf8");
    for await (const chunk of res) body += chunk;
    assert.deepEqual([res.statusCode, res.headers["x-hc"], body], [
      404,
      "no listener",
      "no listener\n",
    ]);
    refused.terminate();

    const small = new NpmWebSocket(srv.url, undefined, { maxPayload: 4096 });
    small.on("error", () => {});
    const closes = new Inbox<number>();
    small.on("close", (code) => closes.push(code));
    assert.equal(await closes.take("close"), 1006, "ws drops after sending its 1009");
    // Our server received the Close frame ws sent before dropping.
    assert.deepEqual(await serverSaw.take("server outcome"), {
      message: null,
      closeInfo: { code: 1009, reason: "" },
    });
  } finally {
    await srv.close();
  }
});

// ---------- lib/ws client → npm ws server ----------

function npmServer(
  onConnection: (ws: NpmWs, req: IncomingMessage) => void,
  opts: { maxPayload?: number } = {},
) {
  const wss = new NpmWebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload,
    handleProtocols: (protocols) => protocols.has("two") ? "two" : false,
  });
  const sockets = new Set<Duplex>();
  const http = createServer((_req, res) => {
    res.writeHead(418, "Teapot", { "x-teapot": "yes" });
    res.end("short and stout");
  });
  http.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Uint8Array) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    if (req.url === "/refuse") {
      socket.end(
        "HTTP/1.1 403 Forbidden\r\nX-Why: listener rejected\r\nContent-Length: 4\r\n\r\nnope",
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("error", () => {});
      onConnection(ws, req);
    });
  });
  const listening = new Promise<number>((resolve) => {
    http.listen(0, "127.0.0.1", () => {
      const addr = http.address();
      resolve(typeof addr === "object" && addr ? addr.port : 0);
    });
  });
  return {
    url: listening.then((port) => `ws://127.0.0.1:${port}`),
    async stop() {
      for (const s of sockets) s.destroy();
      wss.close();
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

Deno.test("lib/ws client → npm ws server: echo, fragments, server pings, close both ways", async () => {
  const serverCloses = new Inbox<{ code: number; reason: string }>();
  const serverPongs = new Inbox<string>();
  const serverLate = new Inbox<string>();
  const srv = npmServer((ws, req) => {
    ws.on("close", (code, reason) => serverCloses.push({ code, reason: dec.decode(reason) }));
    ws.on("pong", (d) => serverPongs.push(dec.decode(d)));
    if (req.url === "/script") {
      ws.send("fragmented ", { fin: false, binary: false });
      ws.ping("from npm");
      ws.send("text ✓", { fin: true, binary: false });
      ws.send(pattern(40000, 9), { binary: true, fin: false });
      ws.send(pattern(40000, 10), { binary: true, fin: true });
      ws.close(4600, "npm server bye");
      ws.on("message", (data) => serverLate.push(dec.decode(data)));
      return;
    }
    ws.on("message", (data, binary) => ws.send(data, { binary }));
  });
  try {
    const url = await srv.url;
    const ws = await connectWebSocket(`${url}/echo`, { protocols: ["one", "two"] });
    assert.equal(ws.protocol, "two");
    await echoRoundTrips(ws);
    await ws.close(4700, "lib bye");
    assert.deepEqual(await serverCloses.take("server close"), { code: 4700, reason: "lib bye" });

    const scripted = await connectWebSocket(`${url}/script`);
    assert.deepEqual(await scripted.receive(), { type: "text", data: "fragmented text ✓" });
    assert.equal(await serverPongs.take("pong"), "from npm");
    const bin = await scripted.receive();
    assert.ok(bin?.type === "binary");
    assert.ok(sameBytes(bin.data.subarray(0, 40000), pattern(40000, 9)));
    assert.ok(sameBytes(bin.data.subarray(40000), pattern(40000, 10)));
    assert.equal(await scripted.receive(), null);
    assert.deepEqual(scripted.closeInfo, { code: 4600, reason: "npm server bye" });
    // Half-closed: the peer's Close arrived, we may still send until we close.
    await scripted.send("after your close");
    assert.equal(await serverLate.take("late message"), "after your close");
    await scripted.close(4600, "npm server bye");
    assert.deepEqual(await serverCloses.take("server close 2"), {
      code: 4600,
      reason: "npm server bye",
    });
  } finally {
    await srv.stop();
  }
});

Deno.test("npm ws server: refusals reach WsHandshakeError; its maxPayload closes us with 1009", async () => {
  const srv = npmServer((ws) => {
    ws.on("message", (data, binary) => ws.send(data, { binary }));
  }, { maxPayload: 1000 });
  try {
    const url = await srv.url;
    const err = await connectWebSocket(`${url}/refuse`).catch((e) => e);
    assert.ok(err instanceof WsHandshakeError);
    assert.deepEqual(
      [err.status, err.statusText, err.headers.get("x-why"), err.body],
      [403, "Forbidden", "listener rejected", "nope"],
    );
    const ws = await connectWebSocket(url);
    await ws.send(new Uint8Array(1001));
    assert.equal(await ws.receive(), null);
    assert.equal(ws.closeInfo?.code, 1009);
    await ws.close(1009);
  } finally {
    await srv.stop();
  }
});
