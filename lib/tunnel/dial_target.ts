/**
 * The listener's target dial and the classification of its failures into ConnectResponse codes
 * (reference §2.3): deadline first, then DNS, then other timeouts, then errno-based codes.
 */
import { closeQuietly, deadline, DeadlineError } from "../async.ts";
import { AztunnelError, errorMessage } from "../errors.ts";
import type { RejectCode } from "./envelope.ts";
import { parsePort, splitHostPort } from "../net/host_port.ts";

export type DialCode = Exclude<RejectCode, "not_allowed">;

/** A failed target dial; `dialCode` is "" when unclassified (the listener then logs `code=""`). */
export class TargetDialError extends AztunnelError {
  readonly dialCode: DialCode | "";
  constructor(dialCode: DialCode | "", message: string, options?: ErrorOptions) {
    super("target_dial_failed", message, options);
    this.name = "TargetDialError";
    this.dialCode = dialCode;
  }
}

export interface DialTargetOptions {
  /** Bounds the whole dial (DNS + connect); expiry is code `timeout`. */
  timeoutMs: number;
  signal?: AbortSignal;
  /** Enables SO_KEEPALIVE (Deno takes no interval; the OS default applies). */
  keepAlive?: boolean;
}

/** Dials `host:port` (IPv6 in brackets). Rejects with TargetDialError. */
export async function dialTarget(target: string, opts: DialTargetOptions): Promise<Deno.TcpConn> {
  const hp = splitHostPort(target);
  const port = hp ? parsePort(hp.port) : null;
  if (!hp || hp.host === "" || port === null) {
    throw new TargetDialError("", `dial tcp ${target}: invalid address`);
  }
  let conn: Deno.TcpConn;
  const started = performance.now();
  try {
    conn = await connectWithin(hp.host, port, opts);
  } catch (err) {
    const timedOut = err instanceof DeadlineError;
    const code = timedOut ? "timeout" : classifyDialError(err, performance.now() - started);
    const why = timedOut ? "i/o timeout" : errorMessage(err);
    throw new TargetDialError(code, `dial tcp ${target}: ${why}`, { cause: err });
  }
  try {
    conn.setNoDelay(true);
    if (opts.keepAlive) conn.setKeepAlive(true);
  } catch {
    // the socket died between connect and setsockopt: the bridge will see it
  }
  return conn;
}

/**
 * Deno.connect within `timeoutMs` (else DeadlineError) unless the caller's signal aborts first. A
 * dial that loses is cancelled and awaited, so no late connection or pending op is left behind.
 */
async function connectWithin(
  hostname: string,
  port: number,
  opts: DialTargetOptions,
): Promise<Deno.TcpConn> {
  opts.signal?.throwIfAborted();
  const lost = new AbortController();
  const signal = opts.signal ? AbortSignal.any([opts.signal, lost.signal]) : lost.signal;
  const connecting = Deno.connect({ hostname, port, signal });
  try {
    return await deadline(connecting, opts.timeoutMs, { signal: opts.signal });
  } catch (err) {
    lost.abort();
    await connecting.then(closeQuietly, () => {});
    throw err;
  }
}

const REFUSED = new Set(["ECONNREFUSED", "WSAECONNREFUSED"]);
const HOST_UNREACH = new Set(["EHOSTUNREACH", "WSAEHOSTUNREACH"]);
const NET_UNREACH = new Set(["ENETUNREACH", "WSAENETUNREACH"]);
const TIMEDOUT = new Set(["ETIMEDOUT", "WSAETIMEDOUT"]);

/**
 * A lookup that failed "temporarily" (EAI_AGAIN) faster than this got an answer, not silence: a
 * resolver that gives up waits seconds (glibc: 5 s per try), while SERVFAIL or no reachable
 * resolver come back in milliseconds.
 */
export const DNS_TIMEOUT_MIN_MS = 1000;

/**
 * Maps a Deno connect error to a code; "" when it fits none. `elapsedMs`, the time the dial took,
 * tells a resolver that timed out from one that answered with a failure (both are EAI_AGAIN).
 */
export function classifyDialError(err: unknown, elapsedMs?: number): DialCode | "" {
  if (err instanceof DOMException && err.name === "TimeoutError") return "timeout";
  const msg = errorMessage(err);
  // getaddrinfo failures carry no errno code, only this prefix.
  if (/failed to lookup address|dns error|name resolution/i.test(msg)) {
    if (/timed out|timeout/i.test(msg)) return "dns_timeout";
    // glibc reports a resolver that never answered as EAI_AGAIN ("Temporary failure"), and
    // SERVFAIL the same way; Go calls the first a timeout and the second not found.
    if (/temporary failure/i.test(msg)) {
      return elapsedMs !== undefined && elapsedMs < DNS_TIMEOUT_MIN_MS
        ? "dns_not_found"
        : "dns_timeout";
    }
    return "dns_not_found";
  }
  const code = err && typeof err === "object" && "code" in err ? String(err.code) : "";
  if (
    err instanceof Deno.errors.TimedOut || TIMEDOUT.has(code) || /os error (110|10060)\)/.test(msg)
  ) {
    return "timeout";
  }
  if (
    err instanceof Deno.errors.ConnectionRefused || REFUSED.has(code) ||
    /os error (111|10061)\)/.test(msg)
  ) {
    return "connection_refused";
  }
  if (HOST_UNREACH.has(code) || /os error (113|10065)\)/.test(msg)) return "host_unreachable";
  if (
    err instanceof Deno.errors.NetworkUnreachable || NET_UNREACH.has(code) ||
    /os error (101|10051)\)/.test(msg)
  ) {
    return "network_unreachable";
  }
  return "";
}
