/**
 * Listener side of a rendezvous (hybrid-connections-protocol.md §3.4–3.5): the `accept.address`
 * is dialled verbatim and without credentials, since the address itself is the capability.
 */
import { AztunnelError } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { connectWebSocket } from "../ws/client.ts";
import type { WebSocketConn } from "../ws/conn.ts";
import { WsError, WsHandshakeError } from "../ws/errors.ts";
import { describeDialFailure, isAuthStatus, RelayDialError } from "./dial_error.ts";

export interface RendezvousOptions {
  caCerts?: string[];
  /** Whole upgrade; default 30 s (the relay keeps an address valid for about that long). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** The accept's logger (carries accept_id); when set, `accept_ok`/`accept_dropped` are logged. */
  logger?: Logger;
  /** Per-message read limit of the accepted socket (larger ones close it with 1009). */
  maxMessageSize?: number;
}

export const DEFAULT_RENDEZVOUS_TIMEOUT_MS = 30_000;

function checkAddress(address: string): void {
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw new RelayDialError("relay_failed", "invalid rendezvous address");
  }
  if (url.protocol !== "wss:" && url.protocol !== "ws:") {
    throw new RelayDialError("relay_failed", "invalid rendezvous address: not a ws/wss URL");
  }
}

function failure(err: unknown, what: string): RelayDialError {
  if (err instanceof RelayDialError) return err;
  if (err instanceof WsHandshakeError) {
    const answer = { cause: err, status: err.status, statusText: err.statusText };
    const code = isAuthStatus(err.status) ? "auth_failed" : "rejected";
    return new RelayDialError(code, `${what}: ${describeDialFailure(err)}`, answer);
  }
  if (err instanceof WsError && err.code === "handshake_timeout") {
    return new RelayDialError("dial_timeout", `${what}: ${describeDialFailure(err)}`, {
      cause: err,
    });
  }
  if (err instanceof WsError && err.code === "aborted") {
    return new RelayDialError("aborted", `${what}: aborted`, { cause: err });
  }
  return new RelayDialError("relay_failed", `${what}: ${describeDialFailure(err)}`, { cause: err });
}

/** Accepts a sender: opens the rendezvous WebSocket. Throws `RelayDialError`. */
export async function acceptRendezvous(
  address: string,
  opts: RendezvousOptions = {},
): Promise<WebSocketConn> {
  const log = opts.logger;
  log?.debug("accept dial started");
  try {
    checkAddress(address);
    const conn = await connectWebSocket(address, {
      caCerts: opts.caCerts,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS,
      maxMessageSize: opts.maxMessageSize,
    });
    log?.debug("accept dial complete", { ok: true });
    log?.info("accept_ok");
    return conn;
  } catch (err) {
    const e = failure(err, "dial rendezvous");
    if (e.code !== "aborted") {
      log?.warn("accept_dropped", {
        reason: e.code === "auth_failed" ? "auth_failed" : "dial_failed",
        error: e.message,
      });
    }
    throw e;
  }
}

/**
 * Refuses a sender: the relay answers this upgrade with 410 Gone (that is success) and gives the
 * sender `HTTP {status} {description}`. Throws `RelayDialError` when the reject itself failed.
 */
export async function rejectRendezvous(
  address: string,
  status: number,
  description: string,
  opts: Omit<RendezvousOptions, "logger" | "maxMessageSize"> = {},
): Promise<void> {
  if (!Number.isInteger(status) || status < 100 || status > 599) {
    throw new AztunnelError("invalid_argument", `invalid rejection status ${status}`);
  }
  checkAddress(address);
  // %20 rather than Go's `+`: every relay decodes it, form-style decoding or not.
  const desc = encodeURIComponent(description).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
  const url = `${address}${address.includes("?") ? "&" : "?"}sb-hc-statusCode=${status}` +
    `&sb-hc-statusDescription=${desc}`;
  let conn: WebSocketConn;
  try {
    conn = await connectWebSocket(url, {
      caCerts: opts.caCerts,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS,
    });
  } catch (err) {
    if (err instanceof WsHandshakeError && err.status === 410) return;
    throw failure(err, "reject rendezvous");
  }
  // The relay ignored the rejection and paired us with the sender: hang up at once.
  conn.closeNow();
  await conn.closed;
  throw new RelayDialError(
    "relay_failed",
    "reject rendezvous: the relay answered 101 instead of 410; the sender was hung up",
  );
}

/**
 * Answers an HTTP-mode request on its rendezvous (the relay sends the request there when it was too
 * large for the control channel): sends `response` and hangs up, discarding the request.
 */
export async function answerRequestRendezvous(
  address: string,
  response: string,
  opts: Omit<RendezvousOptions, "logger" | "maxMessageSize"> = {},
): Promise<void> {
  checkAddress(address);
  let conn: WebSocketConn;
  try {
    conn = await connectWebSocket(address, {
      caCerts: opts.caCerts,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs ?? DEFAULT_RENDEZVOUS_TIMEOUT_MS,
    });
  } catch (err) {
    throw failure(err, "request rendezvous");
  }
  try {
    await conn.send(response);
    const closing = conn.close(1000);
    // The request and its body are discarded unread, so the relay's Close can get through.
    while (await conn.receive() !== null) continue;
    await closing;
  } catch {
    conn.closeNow();
  }
  await conn.closed;
}
