/**
 * What `relay-sender http-proxy` answers when it cannot serve a request: the error that carries the
 * status, the status of each tunnel-open failure, and the short text response itself.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import { encodeHead, statusLine } from "../net/http_head.ts";
import { errorSummary, RelayDialError } from "../relay/dial_error.ts";
import { EnvelopeExchangeError, EnvelopeRejected } from "./open_tunnel.ts";

/** The answer to `CONNECT` once the listener said ok; the tunnel's bytes follow. */
export const CONNECT_ESTABLISHED = new TextEncoder().encode(
  "HTTP/1.1 200 Connection established\r\n\r\n",
);

/** A request the proxy refuses: `status` and `headers` go to the client, `code` to the body. */
export class HttpProxyError extends AztunnelError {
  readonly status: number;
  readonly headers: readonly [string, string][];
  constructor(status: number, code: string, message: string, headers: [string, string][] = []) {
    super(code, message);
    this.name = "HttpProxyError";
    this.status = status;
    this.headers = headers;
  }
}

/** Listener codes for a target dial that ran out of time; the other dial failures are 502. */
const TIMEOUT_CODES = new Set(["timeout", "dns_timeout"]);

/**
 * The status for a failed tunnel open: 403 when the listener's allowlist refused the target (Go
 * listeners say so without a code), 504 when a dial or the listener's answer timed out, 502 for
 * every other failure (refused, unreachable, DNS, the relay), 503 when the proxy is stopping.
 */
export function openFailure(err: unknown, stopping: boolean): HttpProxyError {
  if (stopping) return new HttpProxyError(503, "stopping", "the proxy is shutting down");
  if (err instanceof EnvelopeRejected) {
    const code = err.code || (err.reason === "target not allowed" ? "not_allowed" : "rejected");
    const status = code === "not_allowed" ? 403 : TIMEOUT_CODES.has(code) ? 504 : 502;
    return new HttpProxyError(status, code, err.reason || err.message);
  }
  if (err instanceof EnvelopeExchangeError) {
    return new HttpProxyError(err.code === "reply_timeout" ? 504 : 502, err.code, err.message);
  }
  if (err instanceof RelayDialError) {
    return new HttpProxyError(err.code === "dial_timeout" ? 504 : 502, err.code, errorSummary(err));
  }
  return new HttpProxyError(502, "tunnel_failed", errorMessage(err));
}

/** `<status>` with a `code: message` text body; the proxy closes the connection after it. */
export function errorResponse(err: HttpProxyError): Uint8Array {
  const body = new TextEncoder().encode(`${err.code}: ${err.message}\n`);
  const head = encodeHead(statusLine(err.status), [
    ...err.headers,
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ["Connection", "close"],
  ]);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}
