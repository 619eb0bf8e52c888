/**
 * The client side: `connectWebSocket` opens the transport (transport.ts), upgrades it (upgrade.ts)
 * under one deadline, and maps whatever went wrong to one WsError code.
 */

import { closeQuietly } from "../async.ts";
import { errorMessage } from "../errors.ts";
import { HttpParseError } from "../net/http_head.ts";
import { WebSocketConn } from "./conn.ts";
import { WsError, WsHandshakeError } from "./errors.ts";
import { HeadTooLargeError } from "./io.ts";
import { type ConnTracker, openTransport } from "./transport.ts";
import { requestUpgrade } from "./upgrade.ts";
import { redactUrl } from "./url.ts";

/**
 * Extra request headers, sent with their names exactly as written here (some peers, such as the
 * Arc agent, match names case-sensitively). A `Headers` object is not accepted: it lowercases.
 */
export type HeaderPairs = Readonly<Record<string, string>> | readonly (readonly [string, string])[];

export interface WsConnectOptions {
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
  opts: WsConnectOptions = {},
): Promise<WebSocketConn> {
  const target = new URL(url);
  if (target.protocol !== "ws:" && target.protocol !== "wss:") {
    throw new TypeError(`not a WebSocket URL: ${redactUrl(target)}`);
  }
  const where = redactUrl(target);
  const headers = extraHeaders(opts.headers);
  if (opts.signal?.aborted) throw new WsError("aborted", `connect to ${where} aborted`);

  const deadline = new HandshakeDeadline(opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, opts.signal);
  try {
    const transport = await openTransport(target, deadline, opts);
    const protocols = opts.protocols ?? [];
    const upgraded = await requestUpgrade(transport.conn, { target, headers, protocols });
    return new WebSocketConn({
      io: upgraded.io,
      role: "client",
      protocol: upgraded.protocol,
      headers: upgraded.headers,
      remoteAddr: transport.remoteAddr,
      maxMessageSize: opts.maxMessageSize,
      closeTimeoutMs: opts.closeTimeoutMs,
    });
  } catch (err) {
    deadline.closeConn();
    throw connectError(err, deadline.stoppedBy, where);
  } finally {
    deadline.dispose();
  }
}

function extraHeaders(headers: HeaderPairs | undefined): [string, string][] {
  const pairs: [string, string][] = headers === undefined
    ? []
    : Array.isArray(headers)
    ? headers.map(([name, value]) => [name, value])
    : Object.entries(headers);
  for (const [name] of pairs) {
    if (RESERVED_HEADERS.has(name.toLowerCase())) {
      throw new TypeError(`header ${name} is set by the WebSocket`);
    }
  }
  return pairs;
}

/**
 * The one error a failed connect rejects with: a refusal stays a refusal even at the deadline;
 * otherwise the deadline or the caller's abort explains whatever broke because of it.
 */
function connectError(
  err: unknown,
  stoppedBy: "timeout" | "abort" | null,
  where: string,
): WsError | WsHandshakeError {
  if (err instanceof WsHandshakeError) return err;
  if (stoppedBy === "timeout") {
    return new WsError("handshake_timeout", `WebSocket handshake with ${where} timed out`, {
      cause: err,
    });
  }
  if (stoppedBy === "abort") {
    return new WsError("aborted", `connect to ${where} aborted`, { cause: err });
  }
  if (err instanceof WsError) return err;
  if (err instanceof HttpParseError || err instanceof HeadTooLargeError) {
    return new WsError("protocol_error", `bad upgrade response from ${where}: ${err.message}`);
  }
  return new WsError(
    "connect_failed",
    `WebSocket handshake with ${where} failed: ${errorMessage(err)}`,
    { cause: err },
  );
}

/**
 * The handshake's time limit and the caller's signal: either one aborts the pending connect and
 * closes the conn in use, which ends whatever read or write is waiting on it.
 */
class HandshakeDeadline implements ConnTracker {
  readonly #controller = new AbortController();
  readonly #timer: ReturnType<typeof setTimeout>;
  readonly #callerSignal: AbortSignal | undefined;
  readonly #onAbort = () => this.#stop("abort");
  #conn: Deno.Conn | null = null;
  stoppedBy: "timeout" | "abort" | null = null;

  constructor(timeoutMs: number, signal: AbortSignal | undefined) {
    this.#timer = setTimeout(() => this.#stop("timeout"), timeoutMs);
    this.#callerSignal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  track(conn: Deno.Conn): void {
    this.#conn = conn;
    if (this.stoppedBy) closeQuietly(conn);
  }

  closeConn(): void {
    closeQuietly(this.#conn);
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#callerSignal?.removeEventListener("abort", this.#onAbort);
  }

  #stop(why: "timeout" | "abort"): void {
    // The deadline explains a failure first, as it did when both fired.
    if (why === "timeout" || this.stoppedBy === null) this.stoppedBy = why;
    this.#controller.abort();
    this.closeConn();
  }
}
