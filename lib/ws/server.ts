/**
 * A tiny HTTP/1.1 front for WebSocket servers (relay server, test fakes): one request per
 * connection, answers always `Connection: close`, upgrades handed to lib/ws. It parses request
 * heads itself so that bytes following the head (a client's first frames) are never lost.
 */

import { closeQuietly } from "../async.ts";
import {
  encodeHead,
  hasToken,
  HttpParseError,
  parseRequestHead,
  type RequestHead,
  statusLine,
  tokenList,
} from "../net/http_head.ts";
import { acceptLoop } from "../net/accept_loop.ts";
import { writeAll } from "../net/write_all.ts";
import { BufferedConn, HeadTooLargeError } from "./io.ts";
import { WebSocketConn } from "./conn.ts";
import { WsError } from "./errors.ts";
import { acceptKey, isValidKey } from "./keys.ts";

export interface RespondOptions {
  reason?: string;
  headers?: HeadersInit;
  body?: string | Uint8Array;
}

export interface UpgradeOptions {
  /** Subprotocol to select; must be one the client offered. None is sent unless given. */
  protocol?: string;
  headers?: HeadersInit;
  maxMessageSize?: number;
  /** How long close() waits for the peer's Close before dropping the socket; default 5 s. */
  closeTimeoutMs?: number;
}

export interface IncomingRequest {
  readonly method: string;
  /** Built from the Host header and the target. */
  readonly url: URL;
  /** The raw request target as sent. */
  readonly target: string;
  readonly headers: Headers;
  readonly remoteAddr: Deno.NetAddr;
  readonly isWebSocketUpgrade: boolean;
  readonly secure: boolean;
  /** Sends a complete response (always `Connection: close`), then the connection is closed. */
  respond(status: number, opts?: RespondOptions): Promise<void>;
  /**
   * Completes the WebSocket handshake. An invalid upgrade request is answered 400 (426 with
   * `Sec-WebSocket-Version: 13` for a wrong version) and rejects with WsError "protocol_error".
   */
  upgrade(opts?: UpgradeOptions): Promise<WebSocketConn>;
}

export interface HttpServer {
  readonly addr: Deno.NetAddr;
  /** Resolves once the accept loop has stopped and every connection task has finished. */
  readonly finished: Promise<void>;
  /** Stops accepting, drops every open connection and upgraded socket, waits for all tasks. */
  close(): Promise<void>;
}

export interface ServeHttpOptions {
  listener: Deno.Listener;
  handler: (req: IncomingRequest) => Promise<void>;
  /** Time allowed for a request head to arrive; default 10 s. */
  headerTimeoutMs?: number;
  /** The listener is a Deno.listenTls one: urls are https:, `secure` is true. */
  secure?: boolean;
  /**
   * A plain listener got a TLS ClientHello (a wss:// or https:// client): it is answered at once
   * with a plain-text 400, which fails the client's TLS handshake now rather than at its timeout.
   */
  onTlsHandshake?: (remoteAddr: Deno.NetAddr) => void;
}

const MAX_REQUEST_HEAD = 16 * 1024;
const DEFAULT_HEADER_TIMEOUT_MS = 10_000;
/** After answering, how long we read and discard input so the answer is not lost to a RST. */
const LINGER_MS = 2_000;

export function serveHttp(opts: ServeHttpOptions): HttpServer {
  const { listener, handler } = opts;
  const secure = opts.secure ?? false;
  const headerTimeoutMs = opts.headerTimeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const conns = new Set<Deno.Conn>();
  const sockets = new Set<WebSocketConn>();
  const tasks = new Set<Promise<void>>();
  let closing = false;

  const track = (task: Promise<void>) => {
    // A connection task must never become an unhandled rejection: its failure is its own.
    const p = task.catch(() => {});
    tasks.add(p);
    p.then(() => tasks.delete(p));
  };

  const serveConn = async (conn: Deno.Conn) => {
    conns.add(conn);
    let owned = true;
    try {
      if ("setNoDelay" in conn && typeof conn.setNoDelay === "function") conn.setNoDelay(true);
      const io = new BufferedConn(conn);
      const timer = setTimeout(() => closeQuietly(conn), headerTimeoutMs);
      let head: RequestHead | null;
      try {
        if (!secure && await startsWithTlsRecord(io)) {
          clearTimeout(timer);
          opts.onTlsHandshake?.(conn.remoteAddr as Deno.NetAddr);
          await writeResponse(io, 400, { body: TLS_ON_PLAIN_BODY }).catch(() => {});
          await linger(io);
          return;
        }
        const bytes = await io.readHead(MAX_REQUEST_HEAD);
        head = bytes === null ? null : parseRequestHead(bytes);
      } catch (err) {
        clearTimeout(timer);
        const status = err instanceof HeadTooLargeError ? 431 : 400;
        if (err instanceof HeadTooLargeError || err instanceof HttpParseError) {
          await writeResponse(io, status, {}).catch(() => {});
          await linger(io);
        }
        return;
      }
      clearTimeout(timer);
      if (head === null) return;
      const req = new ServerRequest(io, head, conn.remoteAddr as Deno.NetAddr, secure, (ws) => {
        // From here the socket owns the conn; track it so close() can drop it at once.
        owned = false;
        conns.delete(conn);
        sockets.add(ws);
        ws.closed.then(() => sockets.delete(ws));
        if (closing) ws.closeNow();
      });
      if (!req.valid) {
        await req.respond(400, { body: "bad request\n" }).catch(() => {});
      } else {
        try {
          await handler(req);
        } catch {
          // A failing handler costs its own connection only: a 500 below, or its socket dropped.
          req.socket?.closeNow();
        }
        if (req.state === "open") await req.respond(500).catch(() => {});
      }
      if (req.socket) {
        await req.socket.closed;
      } else if (req.state === "answered") {
        await linger(io);
      }
    } finally {
      if (owned) {
        conns.delete(conn);
        closeQuietly(conn);
      }
    }
  };

  const stopAccepting = new AbortController();
  const finished = (async () => {
    // A connection that died while queued, or running out of file descriptors, is not a reason
    // to stop serving: the loop backs off and goes on.
    await acceptLoop(listener, (conn) => track(serveConn(conn)), { signal: stopAccepting.signal });
    while (tasks.size > 0) await Promise.allSettled([...tasks]);
  })();

  return {
    addr: listener.addr as Deno.NetAddr,
    finished,
    async close() {
      closing = true;
      stopAccepting.abort();
      for (const ws of sockets) ws.closeNow();
      for (const conn of conns) closeQuietly(conn);
      await finished;
    },
  };
}

const TLS_ON_PLAIN_BODY =
  "this server speaks plain HTTP and ws://, not TLS: use ws:// or http:// (or serve TLS)\n";

/**
 * Whether the first bytes are a TLS handshake record (content type 0x16, version 3.x): no HTTP
 * method starts so. Reads only until those two bytes are in (or EOF); they stay buffered.
 */
async function startsWithTlsRecord(io: BufferedConn): Promise<boolean> {
  while (io.buffered < 2) {
    if (io.buffered === 1 && io.buf[io.start] !== 0x16) return false;
    if (!(await io.fill())) return false;
  }
  return io.buf[io.start] === 0x16 && io.buf[io.start + 1] === 0x03;
}

/** One request on its connection: answered once, by `respond()` or `upgrade()`. */
class ServerRequest implements IncomingRequest {
  readonly method: string;
  readonly url: URL;
  readonly target: string;
  readonly headers: Headers;
  readonly remoteAddr: Deno.NetAddr;
  readonly isWebSocketUpgrade: boolean;
  readonly secure: boolean;
  /** False when the head is syntactically fine but not a usable HTTP/1.1 request (no Host). */
  readonly valid: boolean;
  state: "open" | "answering" | "answered" | "upgraded" = "open";
  socket: WebSocketConn | null = null;
  readonly #io: BufferedConn;
  readonly #onUpgrade: (ws: WebSocketConn) => void;

  constructor(
    io: BufferedConn,
    head: RequestHead,
    remoteAddr: Deno.NetAddr,
    secure: boolean,
    onUpgrade: (ws: WebSocketConn) => void,
  ) {
    this.#io = io;
    this.#onUpgrade = onUpgrade;
    this.method = head.method;
    this.target = head.target;
    this.headers = head.headers;
    this.remoteAddr = remoteAddr;
    this.secure = secure;
    const base = `${secure ? "https" : "http"}://${head.headers.get("host") ?? ""}`;
    let url: URL | null = null;
    try {
      url = /^https?:\/\//i.test(head.target) ? new URL(head.target) : new URL(head.target, base);
    } catch {
      url = null;
    }
    this.valid = url !== null && head.headers.has("host");
    this.url = url ?? new URL(`${secure ? "https" : "http"}://invalid/`);
    this.isWebSocketUpgrade = head.method === "GET" &&
      hasToken(head.headers.get("upgrade"), "websocket") &&
      hasToken(head.headers.get("connection"), "upgrade");
  }

  async respond(status: number, opts: RespondOptions = {}): Promise<void> {
    if (this.state !== "open") throw new Error("request already answered");
    this.state = "answering";
    try {
      await writeResponse(this.#io, status, opts, this.method === "HEAD");
    } finally {
      this.state = "answered";
    }
  }

  async upgrade(opts: UpgradeOptions = {}): Promise<WebSocketConn> {
    if (this.state !== "open") throw new Error("request already answered");
    const key = this.headers.get("sec-websocket-key");
    const refuse = async (status: number, why: string, headers?: HeadersInit) => {
      await this.respond(status, { headers, body: why + "\n" }).catch(() => {});
      return new WsError("protocol_error", `refused WebSocket upgrade: ${why}`);
    };
    if (!this.isWebSocketUpgrade) throw await refuse(400, "not a WebSocket upgrade request");
    if (this.headers.get("sec-websocket-version") !== "13") {
      throw await refuse(426, "unsupported WebSocket version", { "Sec-WebSocket-Version": "13" });
    }
    if (!isValidKey(key)) throw await refuse(400, "invalid Sec-WebSocket-Key");
    const offered = tokenList(this.headers.get("sec-websocket-protocol"));
    if (opts.protocol !== undefined && !offered.includes(opts.protocol)) {
      throw await refuse(400, "subprotocol not offered");
    }
    this.state = "answering";
    const lines: [string, string][] = [
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Accept", await acceptKey(key as string)],
    ];
    if (opts.protocol !== undefined) lines.push(["Sec-WebSocket-Protocol", opts.protocol]);
    for (const [name, value] of new Headers(opts.headers)) lines.push([name, value]);
    try {
      await writeAll(this.#io.conn, encodeHead(statusLine(101), lines));
    } catch (err) {
      this.state = "answered";
      throw new WsError("connection_lost", "client left during the WebSocket upgrade", {
        cause: err,
      });
    }
    this.state = "upgraded";
    this.socket = new WebSocketConn({
      io: this.#io,
      role: "server",
      protocol: opts.protocol ?? "",
      headers: this.headers,
      remoteAddr: this.remoteAddr,
      maxMessageSize: opts.maxMessageSize,
      closeTimeoutMs: opts.closeTimeoutMs,
    });
    this.#onUpgrade(this.socket);
    return this.socket;
  }
}

async function writeResponse(
  io: BufferedConn,
  status: number,
  opts: RespondOptions,
  headRequest = false,
): Promise<void> {
  const body = typeof opts.body === "string"
    ? new TextEncoder().encode(opts.body)
    : opts.body ?? new Uint8Array(0);
  const headers = new Headers(opts.headers);
  const noBody = status === 204 || status === 304 || (status >= 100 && status < 200);
  if (!noBody) {
    if (!headers.has("content-type") && typeof opts.body === "string") {
      headers.set("content-type", "text/plain; charset=utf-8");
    }
    headers.set("content-length", String(body.length));
  }
  headers.set("connection", "close");
  const head = encodeHead(statusLine(status, opts.reason), headers);
  if (noBody || headRequest || body.length === 0) {
    await writeAll(io.conn, head);
  } else {
    // Head and body in one write: no small segment left waiting for an ACK (see writer.ts).
    const all = new Uint8Array(head.length + body.length);
    all.set(head);
    all.set(body, head.length);
    await writeAll(io.conn, all);
  }
}

/**
 * Half-closes and reads until the client hangs up (bounded), so closing with unread input does
 * not turn into a RST that destroys the answer before the client has read it.
 */
async function linger(io: BufferedConn): Promise<void> {
  const timer = setTimeout(() => closeQuietly(io.conn), LINGER_MS);
  try {
    await io.conn.closeWrite();
    while (await io.conn.read(io.buf) !== null) { /* discard */ }
  } catch {
    // Closed by the timer or reset by the client: done either way.
  } finally {
    clearTimeout(timer);
  }
}
