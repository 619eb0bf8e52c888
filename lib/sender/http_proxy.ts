/**
 * `relay-sender http-proxy`: a local HTTP proxy (what HTTPS_PROXY/HTTP_PROXY point at). `CONNECT
 * host:port` gets `200 Connection established` once the listener accepted the target, then raw
 * bytes both ways; an absolute `http://` request opens a tunnel to the URL's host:port and is sent
 * on in origin form, one request per tunnel. The listener's allowlist decides, as for SOCKS5;
 * failures are short text responses (lib/sender/http_proxy_reply.ts).
 */
import { closeQuietly } from "../async.ts";
import { errorMessage } from "../errors.ts";
import { lingerClose } from "../net/linger_close.ts";
import { writeAll } from "../net/write_all.ts";
import type { ProxyAuth } from "./http_proxy_auth.ts";
import { bodyFraming, type ForwardBody, ProxyClientStream } from "./http_proxy_client.ts";
import { readProxyHead } from "./http_proxy_head.ts";
import {
  CONNECT_ESTABLISHED,
  errorResponse,
  HttpProxyError,
  openFailure,
} from "./http_proxy_reply.ts";
import { interpretRequest } from "./http_proxy_request.ts";
import { type ConnectionScope, serveTunnels, type TunnelServiceOptions } from "./tunnel_service.ts";

export interface HttpProxyOptions extends TunnelServiceOptions {
  /** `--proxy-auth`: requests without these credentials get 407. */
  auth?: ProxyAuth;
  /** How long a client may take to send its request head (default 30 s). */
  headTimeoutMs?: number;
}

export function runHttpProxy(opts: HttpProxyOptions): Promise<void> {
  return serveTunnels(opts, {
    listening: "http-proxy listening",
    attrs: opts.auth ? { proxy_auth: "basic" } : undefined,
    failure: "http-proxy failed",
    handle: (conn, scope) => serveClient(conn, scope, opts),
  });
}

/** A request the proxy will serve: where its tunnel goes and what it carries first. */
interface Accepted {
  connect: boolean;
  target: string;
  /** CONNECT: what followed the head; a forward: the rewritten head. */
  prefix: Uint8Array;
  /** A forward's body: exactly one request is passed on, so its end must be found. */
  body?: ForwardBody;
}

async function serveClient(conn: Deno.TcpConn, scope: ConnectionScope, opts: HttpProxyOptions) {
  const req = await acceptRequest(conn, scope, opts);
  if (!req) return;
  let tunnel;
  try {
    tunnel = await scope.open(req.target);
  } catch (err) {
    await refuse(conn, openFailure(err, scope.opening.aborted));
    return;
  }
  if (req.connect) {
    try {
      await writeAll(conn, CONNECT_ESTABLISHED);
    } catch (err) {
      tunnel.logger.debug("http-proxy reply failed", { error: errorMessage(err) });
      conn.close();
      tunnel.socket.closeNow();
      await tunnel.socket.closed;
      return;
    }
  }
  const client = new ProxyClientStream(conn, req.prefix, {
    endWithResponse: !req.connect,
    body: req.body,
  });
  await scope.bridge(client, tunnel);
}

/**
 * Reads and checks the request head: null when the client went away, the stop began, or the
 * request was refused (the refusal is written and the socket closed).
 */
async function acceptRequest(
  conn: Deno.TcpConn,
  scope: ConnectionScope,
  opts: HttpProxyOptions,
): Promise<Accepted | null> {
  // A client still sending its head when the stop begins is cut off: it has no tunnel to drain.
  const onStop = () => conn.close();
  scope.opening.addEventListener("abort", onStop, { once: true });
  try {
    const read = await readProxyHead(conn, { timeoutMs: opts.headTimeoutMs });
    if (!read) {
      conn.close();
      return null;
    }
    opts.auth?.check(read.head.headers.get("proxy-authorization"));
    const req = interpretRequest(read.head);
    if (req.kind === "connect") return { connect: true, target: req.target, prefix: read.rest };
    // Checked before the tunnel opens, so an ambiguous body gets its 400 here.
    const body = { framing: bodyFraming(read.head.headers), buffered: read.rest };
    return { connect: false, target: req.target, prefix: req.head, body };
  } catch (err) {
    if (scope.opening.aborted) {
      closeQuietly(conn);
      return null;
    }
    const refusal = err instanceof HttpProxyError
      ? err
      : new HttpProxyError(400, "bad_request", errorMessage(err));
    opts.logger.debug("http-proxy request refused", {
      status: refusal.status,
      error: refusal.message,
    });
    await refuse(conn, refusal);
    return null;
  } finally {
    scope.opening.removeEventListener("abort", onStop);
  }
}

async function refuse(conn: Deno.TcpConn, err: HttpProxyError): Promise<void> {
  await writeAll(conn, errorResponse(err)).catch(() => {});
  await lingerClose(conn);
}
