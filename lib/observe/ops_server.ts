/**
 * The operations HTTP endpoint behind `--metrics-addr`: `/metrics` (Prometheus text), `/healthz`
 * (liveness: the process serves HTTP) and `/readyz` (readiness as the command defines it, e.g. the
 * listener's control channel is up). Plain HTTP, loopback or pod-network only; nothing secret here.
 */
import { closeQuietly } from "../async.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import { acceptLoop } from "../net/accept_loop.ts";
import { type HostPort, joinHostPort, parseHostPort } from "../net/host_port.ts";
import {
  encodeHead,
  findHeadEnd,
  hasToken,
  parseRequestHead,
  type RequestHead,
  STATUS_TEXT,
  statusLine,
} from "../net/http_head.ts";
import { writeAll } from "../net/write_all.ts";
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

/** Thrown by `startOpsServer`. */
export class OpsServerError extends AztunnelError {
  declare readonly code: "invalid_addr" | "listen_failed";
  constructor(code: OpsServerError["code"], message: string, options?: ErrorOptions) {
    super(code, message, options);
    this.name = "OpsServerError";
  }
}

/** A Go-style listen address (lib/net's parseHostPort); an empty host means 0.0.0.0. */
export function parseListenAddr(addr: string): HostPort | null {
  const hp = parseHostPort(addr);
  return hp && { hostname: hp.hostname || "0.0.0.0", port: hp.port };
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

  const route = (method: string, path: string) => routeOps(method, path, opts.metrics, readiness);

  let listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  try {
    listener = Deno.listen({ hostname: listen.hostname, port: listen.port });
  } catch (err) {
    throw new OpsServerError(
      "listen_failed",
      `metrics server listen ${opts.addr}: ${errorMessage(err)}`,
      { cause: err },
    );
  }

  let closing = false;
  /** Open connections; `busy` while a response is being written. */
  const conns = new Map<Deno.Conn, { busy: boolean }>();
  const tasks = new Set<Promise<void>>();
  const drop = (conn: Deno.Conn) => {
    if (conns.delete(conn)) closeQuietly(conn);
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
        const { answer, head } = respondTo(got, route, logger);
        const keepAlive = !got.error && got.request.keepAlive && !got.request.hasBody && !closing;
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

  const stopAccepting = new AbortController();
  const accepting = acceptLoop(listener, (conn) => {
    const task = serveConn(conn);
    tasks.add(task);
    task.then(() => tasks.delete(task));
  }, {
    signal: stopAccepting.signal,
    onError: (err, retryMs) =>
      logger.error("metrics server accept failed", { error: err, retry_ms: retryMs }),
  });

  const bound = joinHostPort(listener.addr.hostname, listener.addr.port);
  logger.info("metrics server listening", { addr: bound });
  let closed: Promise<void> | undefined;
  return {
    addr: bound,
    close: () =>
      closed ??= (async () => {
        closing = true;
        stopAccepting.abort();
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

/** The answer for one path: the three endpoints, GET and HEAD only. */
function routeOps(
  method: string,
  path: string,
  metrics: { render(): string },
  readiness: () => Readiness,
): Answer {
  const name = ROUTES.get(path);
  if (!name) return text(404, "404 page not found\n");
  if (method !== "GET" && method !== "HEAD") {
    return text(405, "method not allowed\n", { allow: "GET, HEAD" });
  }
  switch (name) {
    case "metrics":
      return { status: 200, headers: { "content-type": CONTENT_TYPE }, body: metrics.render() };
    case "healthz":
      return text(200, "ok\n");
    case "readyz": {
      const r = readiness();
      if (r.ready) return text(200, "ready\n");
      const reason = (r.reason ?? "not ready").replace(/[\r\n]+/g, " ");
      return text(503, `not ready: ${reason}\n`);
    }
  }
}

/** The answer to a request head (or to a head too bad to parse); a failing route is a 500. */
function respondTo(
  got: HeadResult,
  route: (method: string, path: string) => Answer,
  logger: Logger,
): { answer: Answer; head: boolean } {
  if (got.error) {
    return { answer: text(got.error, `${got.error} ${STATUS_TEXT[got.error]}\n`), head: false };
  }
  const req = got.request;
  try {
    return { answer: route(req.method, req.path), head: req.method === "HEAD" };
  } catch (err) {
    logger.error("metrics server failed", { error: err });
    return { answer: text(500, "internal error\n"), head: req.method === "HEAD" };
  }
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
      const end = findHeadEnd(data, 0, data.length);
      if (end !== null && end.end <= MAX_HEAD_BYTES) {
        const rest = data.slice(end.next);
        const request = parseRequest(data.subarray(0, end.end));
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

/** What the ops routes need from a request head; null when it is not valid HTTP/1.1. */
function parseRequest(bytes: Uint8Array): ParsedRequest | null {
  let head: RequestHead;
  let path: string;
  try {
    head = parseRequestHead(bytes);
    // Also takes absolute-form targets and resolves dot segments.
    path = new URL(head.target, "http://ops.invalid").pathname;
  } catch {
    return null;
  }
  const connection = head.headers.get("connection");
  const keepAlive = head.version === "HTTP/1.1"
    ? !hasToken(connection, "close")
    : hasToken(connection, "keep-alive");
  const length = head.headers.get("content-length");
  const hasBody = head.headers.has("transfer-encoding") || (length !== null && length !== "0");
  return { method: head.method, path, keepAlive, hasBody };
}

function encodeResponse(a: Answer, keepAlive: boolean, head: boolean): Uint8Array {
  const body = utf8.encode(a.body);
  const headers: [string, string][] = [
    ["date", new Date().toUTCString()],
    ["content-length", String(body.length)],
    ...Object.entries(a.headers),
  ];
  if (!keepAlive) headers.push(["connection", "close"]);
  const headBytes = encodeHead(statusLine(a.status), headers);
  if (head) return headBytes;
  const out = new Uint8Array(headBytes.length + body.length);
  out.set(headBytes);
  out.set(body, headBytes.length);
  return out;
}

const ROUTES = new Map<string, "metrics" | "healthz" | "readyz">([
  ["/metrics", "metrics"],
  ["/healthz", "healthz"],
  ["/readyz", "readyz"],
]);

function text(status: number, body: string, headers: Record<string, string> = {}): Answer {
  return { status, headers: { "content-type": "text/plain; charset=utf-8", ...headers }, body };
}
