/**
 * The operations HTTP endpoint behind `--metrics-addr`: `/metrics` (Prometheus text), `/healthz`
 * (liveness: the process serves HTTP) and `/readyz` (readiness as the command defines it, e.g. the
 * listener's control channel is up). Plain HTTP, loopback or pod-network only; nothing secret here.
 */
import { getLogger, type Logger } from "./log.ts";
import { CONTENT_TYPE } from "./prometheus.ts";

export interface Readiness {
  ready: boolean;
  /** Why not ready; sent as the one-line 503 body. */
  reason?: string;
}

export interface OpsServerOptions {
  /** `host:port`, `:port` (all IPv4 interfaces) or `[v6]:port`; port 0 picks a free one. */
  addr: string;
  /** Anything that renders the exposition text (a `Metrics` or a `Registry`). */
  metrics: { render(): string };
  /** Checked on every `/readyz`; defaults to always ready. */
  readiness?: () => Readiness;
  logger?: Logger;
  /** Defaults to `DEFAULT_OPS_TIMEOUTS` (Go's values); tests shorten them. */
  timeouts?: Partial<OpsTimeouts>;
}

export interface OpsServer {
  /** The bound address as `host:port` (`[v6]:port`), with the real port. */
  readonly addr: string;
  /**
   * Stops listening, drops idle and half-read connections at once, lets a response being written
   * finish (within the write timeout), and resolves when every connection is gone.
   */
  close(): Promise<void>;
}

/** Thrown by `startOpsServer`; `code` follows lib/errors.ts conventions. */
export class OpsServerError extends Error {
  readonly code: "invalid_addr" | "listen_failed";
  constructor(code: OpsServerError["code"], message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "OpsServerError";
    this.code = code;
  }
}

export interface ListenAddr {
  hostname: string;
  port: number;
}

/** Parses a Go-style listen address; null when malformed. An empty host means 0.0.0.0. */
export function parseListenAddr(addr: string): ListenAddr | null {
  const m = /^(?:\[([\w:.%]+)\]|([^\[\]:]*)):(\d{1,5})$/.exec(addr.trim());
  if (!m) return null;
  const port = Number(m[3]);
  if (port > 65535) return null;
  const hostname = m[1] ?? (m[2] || "0.0.0.0");
  return { hostname, port };
}

export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** Go's settings for its ops http.Server: ReadHeaderTimeout/ReadTimeout, WriteTimeout, IdleTimeout. */
export interface OpsTimeouts {
  /** From accept (or a kept-alive connection's first byte) to the end of the request head. */
  headerMs: number;
  /** Writing one response. */
  writeMs: number;
  /** A kept-alive connection waiting for its next request. */
  idleMs: number;
}

export const DEFAULT_OPS_TIMEOUTS: Readonly<OpsTimeouts> = {
  headerMs: 10_000,
  writeMs: 10_000,
  idleMs: 60_000,
};

/** Larger request heads get 431; nothing legitimate sends more to these three paths. */
const MAX_HEAD_BYTES = 16 * 1024;

/**
 * Starts the ops server. It is a small HTTP/1.1 server of its own rather than Deno.serve: Deno.serve
 * has no header, write or idle timeouts and no way to drop a connection, so one client that never
 * reads its response keeps `shutdown()` (and the process) waiting forever. Here every connection is
 * ours: slow or silent clients are cut at the deadlines, and `close()` drops idle ones at once.
 */
export function startOpsServer(opts: OpsServerOptions): OpsServer {
  const listen = parseListenAddr(opts.addr);
  if (!listen) throw new OpsServerError("invalid_addr", `invalid metrics address "${opts.addr}"`);
  const logger = opts.logger ?? getLogger();
  const readiness = opts.readiness ?? (() => ({ ready: true }));
  const timeouts = { ...DEFAULT_OPS_TIMEOUTS, ...opts.timeouts };

  const route = (method: string, path: string): Answer => {
    const name = ROUTES.get(path);
    if (!name) return text(404, "404 page not found\n");
    if (method !== "GET" && method !== "HEAD") {
      return text(405, "method not allowed\n", { allow: "GET, HEAD" });
    }
    switch (name) {
      case "metrics":
        return {
          status: 200,
          headers: { "content-type": CONTENT_TYPE },
          body: opts.metrics.render(),
        };
      case "healthz":
        return text(200, "ok\n");
      case "readyz": {
        const r = readiness();
        if (r.ready) return text(200, "ready\n");
        const reason = (r.reason ?? "not ready").replace(/[\r\n]+/g, " ");
        return text(503, `not ready: ${reason}\n`);
      }
    }
  };

  let listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  try {
    listener = Deno.listen({ hostname: listen.hostname, port: listen.port });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new OpsServerError(
      "listen_failed",
      `metrics server listen ${opts.addr}: ${message}`,
      { cause: err },
    );
  }

  let closing = false;
  /** Open connections; `busy` while a response is being written. */
  const conns = new Map<Deno.Conn, { busy: boolean }>();
  const tasks = new Set<Promise<void>>();
  const drop = (conn: Deno.Conn) => {
    if (!conns.delete(conn)) return;
    try {
      conn.close();
    } catch {
      // already gone
    }
  };

  const serveConn = async (conn: Deno.TcpConn) => {
    const state = { busy: false };
    conns.set(conn, state);
    try {
      conn.setNoDelay(true);
      let carry: Uint8Array = new Uint8Array(0);
      for (let first = true; !closing; first = false) {
        const got = await readHead(conn, carry, first ? timeouts.headerMs : timeouts.idleMs, {
          headerMs: timeouts.headerMs,
          onTimeout: () => drop(conn),
        });
        if (got === null) return;
        carry = got.rest;
        state.busy = true;
        let answer: Answer;
        let keepAlive = false;
        let head = false;
        if (got.error) {
          answer = text(got.error, `${got.error} ${STATUS_TEXT[got.error]}\n`);
        } else {
          const req = got.request;
          head = req.method === "HEAD";
          keepAlive = req.keepAlive && !req.hasBody;
          try {
            answer = route(req.method, req.path);
          } catch (err) {
            logger.error("metrics server failed", { error: err });
            answer = text(500, "internal error\n");
          }
        }
        keepAlive &&= !closing;
        const bytes = encodeResponse(answer, keepAlive, head);
        const timer = setTimeout(() => drop(conn), timeouts.writeMs);
        try {
          await writeAll(conn, bytes);
        } finally {
          clearTimeout(timer);
        }
        state.busy = false;
        if (!keepAlive) return;
      }
    } catch {
      // the peer went away or a deadline dropped the connection: nothing to answer
    } finally {
      drop(conn);
    }
  };

  const accepting = (async () => {
    let backoffMs = 0;
    for (;;) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
        backoffMs = 0;
      } catch (err) {
        if (closing || err instanceof Deno.errors.BadResource) return;
        // Out of file descriptors and the like: wait and retry as Go's http.Server does (5 ms up
        // to 1 s) instead of spinning, and never stop serving over it.
        backoffMs = Math.min(backoffMs ? backoffMs * 2 : 5, 1_000);
        logger.error("metrics server accept failed", { error: err, retry_ms: backoffMs });
        await new Promise((resolve) => setTimeout(resolve, backoffMs));
        continue;
      }
      if (closing) {
        conn.close();
        continue;
      }
      const task = serveConn(conn);
      tasks.add(task);
      task.then(() => tasks.delete(task));
    }
  })();

  const bound = formatHostPort(listener.addr.hostname, listener.addr.port);
  logger.info("metrics server listening", { addr: bound });
  let closed: Promise<void> | undefined;
  return {
    addr: bound,
    close: () =>
      closed ??= (async () => {
        closing = true;
        listener.close();
        // A response being written may finish (its write deadline bounds it); the rest go now.
        for (const [conn, state] of conns) if (!state.busy) drop(conn);
        await accepting;
        while (tasks.size > 0) await Promise.all([...tasks]);
      })(),
  };
}

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface ParsedRequest {
  method: string;
  path: string;
  keepAlive: boolean;
  /** A body we do not read: the connection cannot be reused after it. */
  hasBody: boolean;
}

type HeadResult =
  | { request: ParsedRequest; error?: undefined; rest: Uint8Array }
  | { error: 400 | 431; rest: Uint8Array };

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

const latin1 = new TextDecoder("latin1");
const utf8 = new TextEncoder();

/**
 * Reads one request head. `waitMs` runs until the first byte (the idle wait on a kept-alive
 * connection), then `headerMs` until the head is complete; at a deadline `onTimeout` drops the
 * connection, which ends the pending read. Null on EOF before a request.
 */
async function readHead(
  conn: Deno.Conn,
  carry: Uint8Array,
  waitMs: number,
  o: { headerMs: number; onTimeout: () => void },
): Promise<HeadResult | null> {
  let data = carry;
  let timer = setTimeout(o.onTimeout, data.length > 0 ? o.headerMs : waitMs);
  try {
    const chunk = new Uint8Array(4096);
    for (;;) {
      const end = headEnd(data);
      if (end !== null && end.at <= MAX_HEAD_BYTES) {
        const rest = data.slice(end.next);
        const request = parseHead(latin1.decode(data.subarray(0, end.at)));
        return request ? { request, rest } : { error: 400, rest };
      }
      if (end !== null || data.length > MAX_HEAD_BYTES) {
        return { error: 431, rest: new Uint8Array(0) };
      }
      const n = await conn.read(chunk);
      if (n === null) return null;
      if (data.length === 0 && waitMs !== o.headerMs) {
        clearTimeout(timer);
        timer = setTimeout(o.onTimeout, o.headerMs);
      }
      const next = new Uint8Array(data.length + n);
      next.set(data);
      next.set(chunk.subarray(0, n), data.length);
      data = next;
    }
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Where the head ends (`at`, before the last line's CRLF) and the next bytes begin (`next`): at the
 * first empty line. Bare LF line ends are accepted as well.
 */
function headEnd(data: Uint8Array): { at: number; next: number } | null {
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 0x0a) continue;
    const at = data[i - 1] === 0x0d ? i - 1 : i;
    if (data[i + 1] === 0x0a) return { at, next: i + 2 };
    if (data[i + 1] === 0x0d && data[i + 2] === 0x0a) return { at, next: i + 3 };
  }
  return null;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function parseHead(head: string): ParsedRequest | null {
  // RFC 9112 §2.2: a server should ignore empty lines before the request line.
  const lines = head.replace(/^(?:\r?\n)+/, "").split(/\r?\n/);
  const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/.exec(lines[0] ?? "");
  if (!m) return null;
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0 || !TOKEN.test(line.slice(0, colon))) return null;
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers.set(name, headers.has(name) ? `${headers.get(name)}, ${value}` : value);
  }
  let path: string;
  try {
    // Also takes absolute-form targets and resolves dot segments.
    path = new URL(m[2], "http://ops.invalid").pathname;
  } catch {
    return null;
  }
  const connection = (headers.get("connection") ?? "").toLowerCase().split(",").map((t) =>
    t.trim()
  );
  const keepAlive = m[3] === "1"
    ? !connection.includes("close")
    : connection.includes("keep-alive");
  const length = headers.get("content-length");
  const hasBody = headers.has("transfer-encoding") || (length !== undefined && length !== "0");
  return { method: m[1], path, keepAlive, hasBody };
}

function encodeResponse(a: Answer, keepAlive: boolean, head: boolean): Uint8Array {
  const body = utf8.encode(a.body);
  let text = `HTTP/1.1 ${a.status} ${STATUS_TEXT[a.status] ?? ""}\r\n` +
    `date: ${new Date().toUTCString()}\r\ncontent-length: ${body.length}\r\n`;
  for (const [k, v] of Object.entries(a.headers)) text += `${k}: ${v}\r\n`;
  text += keepAlive ? "\r\n" : "connection: close\r\n\r\n";
  const headBytes = utf8.encode(text);
  if (head) return headBytes;
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

const ROUTES = new Map<string, "metrics" | "healthz" | "readyz">([
  ["/metrics", "metrics"],
  ["/healthz", "healthz"],
  ["/readyz", "readyz"],
]);

function text(status: number, body: string, headers: Record<string, string> = {}): Answer {
  return { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers }, body };
}
