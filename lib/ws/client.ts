/** The client side: TCP (+ proxy CONNECT) (+ TLS) + the RFC 6455 opening handshake. */

import { BufferedConn, HeadTooLargeError } from "./io.ts";
import { WebSocketConn } from "./conn.ts";
import { WsError, WsHandshakeError } from "./errors.ts";
import {
  acceptKey,
  encodeHead,
  hasToken,
  HttpParseError,
  newKey,
  parseResponseHead,
  redactUrl,
  type ResponseHead,
} from "./http.ts";
import { openTunnel, proxyForUrl } from "./proxy.ts";

/**
 * Extra request headers, sent with their names exactly as written here (some peers, such as the
 * Arc agent, match names case-sensitively). A `Headers` object is not accepted: it lowercases.
 */
export type HeaderPairs = Readonly<Record<string, string>> | readonly (readonly [string, string])[];

export interface ConnectOptions {
  headers?: HeaderPairs;
  protocols?: string[];
  /** Extra trusted PEM CAs for wss:// (added to the system roots). */
  caCerts?: string[];
  signal?: AbortSignal;
  /** Deadline for the whole handshake (TCP + proxy + TLS + upgrade); default 30 s. */
  timeoutMs?: number;
  /** Incoming message cap, default 16 MiB; a bigger message closes the socket with 1009. */
  maxMessageSize?: number;
  /** "env" (default): HTTPS_PROXY/https_proxy for wss, HTTP_PROXY/http_proxy for ws, NO_PROXY. */
  proxy?: "env" | "none";
  /** How long close() waits for the peer's Close before dropping the socket; default 5 s. */
  closeTimeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_RESPONSE_HEAD = 16 * 1024;
/** A refused upgrade's body is kept for the error, up to this many bytes. */
const MAX_ERROR_BODY = 64 * 1024;
/** A refusal whose body never ends (no length, connection kept open) is cut after this long. */
const ERROR_BODY_TIMEOUT_MS = 2_000;
const RESERVED_HEADERS = new Set([
  "upgrade",
  "connection",
  "sec-websocket-key",
  "sec-websocket-version",
  "sec-websocket-protocol",
  "sec-websocket-extensions",
]);

/**
 * Opens a WebSocket. Rejects with WsHandshakeError when the server answers anything but 101, or
 * WsError ("handshake_timeout", "connect_failed", "aborted", "protocol_error"). Error messages
 * name the URL without its query, which may hold secrets.
 */
export async function connectWebSocket(
  url: string | URL,
  opts: ConnectOptions = {},
): Promise<WebSocketConn> {
  const target = new URL(url);
  if (target.protocol !== "ws:" && target.protocol !== "wss:") {
    throw new TypeError(`not a WebSocket URL: ${redactUrl(target)}`);
  }
  const where = redactUrl(target);
  const secure = target.protocol === "wss:";
  const host = target.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = target.port ? Number(target.port) : secure ? 443 : 80;
  const protocols = opts.protocols ?? [];
  const extraHeaders = headerPairs(opts.headers);
  for (const [name] of extraHeaders) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      throw new TypeError(`header ${name} is set by the WebSocket`);
    }
  }
  if (opts.signal?.aborted) throw new WsError("aborted", `connect to ${where} aborted`);

  const deadline = new AbortController();
  let timedOut = false;
  let aborted = false;
  let conn: Deno.Conn | null = null;
  const stop = () => {
    deadline.abort();
    try {
      conn?.close();
    } catch {
      // Already closed.
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    stop();
  }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const onAbort = () => {
    aborted = true;
    stop();
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });

  try {
    const proxy = opts.proxy === "none" ? null : proxyForUrl(target);
    let tcp: Deno.TcpConn;
    try {
      tcp = await Deno.connect({
        hostname: proxy?.hostname ?? host,
        port: proxy?.port ?? port,
        signal: deadline.signal,
      });
    } catch (err) {
      // Name the proxy when it is the one that failed: the relay host was never tried.
      const via = proxy ? ` through proxy ${proxy.hostname}:${proxy.port}` : "";
      throw new WsError("connect_failed", `cannot connect to ${where}${via}: ${message(err)}`, {
        cause: err,
      });
    }
    conn = tcp;
    tcp.setNoDelay(true);
    if (deadline.signal.aborted) stop();
    if (proxy) await openTunnel(tcp, host, port, proxy);
    if (secure) {
      try {
        const tls = await Deno.startTls(tcp, { hostname: host, caCerts: opts.caCerts });
        conn = tls;
        if (deadline.signal.aborted) stop();
        await tls.handshake();
      } catch (err) {
        throw new WsError("connect_failed", `TLS to ${where} failed: ${message(err)}`, {
          cause: err,
        });
      }
    }
    const io = new BufferedConn(conn);
    const key = newKey();
    const headers: [string, string][] = [];
    if (!extraHeaders.some(([name]) => name.toLowerCase() === "host")) {
      headers.push(["Host", target.host]);
    }
    headers.push(
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Key", key],
      ["Sec-WebSocket-Version", "13"],
    );
    if (protocols.length > 0) headers.push(["Sec-WebSocket-Protocol", protocols.join(", ")]);
    headers.push(...extraHeaders);
    const path = (target.pathname || "/") + target.search;
    await io.writeAll(encodeHead(`GET ${path} HTTP/1.1`, headers));

    const head = await io.readHead(MAX_RESPONSE_HEAD);
    if (head === null) {
      throw new WsError("connect_failed", `${where} closed the connection without answering`);
    }
    const res = parseResponseHead(head);
    if (res.status !== 101) {
      const body = await readErrorBody(io, res);
      throw new WsHandshakeError(
        `WebSocket upgrade to ${where} refused: ${res.status} ${res.statusText}`.trimEnd(),
        { status: res.status, statusText: res.statusText, headers: res.headers, body },
      );
    }
    const protocol = await validateUpgrade(res, key, protocols, where);
    return new WebSocketConn({
      io,
      role: "client",
      protocol,
      headers: res.headers,
      remoteAddr: tcp.remoteAddr,
      maxMessageSize: opts.maxMessageSize,
      closeTimeoutMs: opts.closeTimeoutMs,
    });
  } catch (err) {
    try {
      conn?.close();
    } catch {
      // Already closed (by the deadline or the peer).
    }
    if (err instanceof WsHandshakeError) throw err;
    if (timedOut) {
      throw new WsError("handshake_timeout", `WebSocket handshake with ${where} timed out`, {
        cause: err,
      });
    }
    if (aborted) throw new WsError("aborted", `connect to ${where} aborted`, { cause: err });
    if (err instanceof WsError || err instanceof WsHandshakeError) throw err;
    if (err instanceof HttpParseError || err instanceof HeadTooLargeError) {
      throw new WsError("protocol_error", `bad upgrade response from ${where}: ${err.message}`);
    }
    throw new WsError(
      "connect_failed",
      `WebSocket handshake with ${where} failed: ${message(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
  }
}

function headerPairs(headers: HeaderPairs | undefined): [string, string][] {
  if (headers === undefined) return [];
  if (Array.isArray(headers)) return headers.map(([name, value]) => [name, value]);
  return Object.entries(headers);
}

async function validateUpgrade(
  res: ResponseHead,
  key: string,
  protocols: string[],
  where: string,
): Promise<string> {
  const fail = (why: string) =>
    new WsError("protocol_error", `bad upgrade response from ${where}: ${why}`);
  if (res.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw fail("Upgrade is not websocket");
  }
  if (!hasToken(res.headers.get("connection"), "upgrade")) {
    throw fail("Connection does not contain upgrade");
  }
  if (res.headers.get("sec-websocket-accept") !== await acceptKey(key)) {
    throw fail("wrong Sec-WebSocket-Accept");
  }
  if (res.headers.has("sec-websocket-extensions")) throw fail("extension not offered");
  const protocol = res.headers.get("sec-websocket-protocol") ?? "";
  if (protocol !== "" && !protocols.includes(protocol)) {
    throw fail(`subprotocol ${JSON.stringify(protocol)} was not offered`);
  }
  return protocol;
}

/**
 * The body of a refused upgrade (Content-Length, chunked, or until EOF), capped in size and time;
 * whatever arrived is kept when the socket fails or the time is up.
 */
async function readErrorBody(io: BufferedConn, res: ResponseHead): Promise<string> {
  const timer = setTimeout(() => {
    try {
      io.conn.close();
    } catch {
      // Already closed.
    }
  }, ERROR_BODY_TIMEOUT_MS);
  const chunks: Uint8Array[] = [];
  try {
    await collectBody(io, res, chunks);
  } catch {
    // Keep the part we have: the status is what matters.
  } finally {
    clearTimeout(timer);
  }
  const size = chunks.reduce((n, c) => n + c.length, 0);
  const body = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    body.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(body);
}

async function collectBody(io: BufferedConn, res: ResponseHead, chunks: Uint8Array[]) {
  const decoder = new TextDecoder();
  let total = 0;
  const take = (n: number) => {
    const keep = Math.min(n, MAX_ERROR_BODY - total);
    if (keep > 0) chunks.push(io.buf.slice(io.start, io.start + keep));
    total += keep;
    io.start += n;
  };
  const readN = async (n: number) => {
    while (n > 0) {
      if (io.buffered === 0 && !(await io.fill())) return false;
      const k = Math.min(n, io.buffered);
      take(k);
      n -= k;
    }
    return true;
  };
  const readLine = async (): Promise<string | null> => {
    for (;;) {
      const i = io.buf.subarray(io.start, io.end).indexOf(10);
      if (i >= 0) {
        const line = decoder.decode(io.buf.subarray(io.start, io.start + i)).trim();
        io.start += i + 1;
        return line;
      }
      if (io.buffered > 1024 || !(await io.fill())) return null;
    }
  };
  if (res.status === 204 || res.status === 304) return;
  const te = res.headers.get("transfer-encoding");
  const length = res.headers.get("content-length");
  if (te !== null && hasToken(te, "chunked")) {
    while (total < MAX_ERROR_BODY) {
      const line = await readLine();
      if (line === null) break;
      const size = parseInt(line, 16);
      if (!Number.isFinite(size) || size === 0) break;
      if (!(await readN(size)) || (await readLine()) === null) break;
    }
  } else if (length !== null && /^\d+$/.test(length)) {
    await readN(Math.min(Number(length), MAX_ERROR_BODY));
  } else {
    while (total < MAX_ERROR_BODY && (io.buffered > 0 || await io.fill())) take(io.buffered);
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
