/** `relay-sender socks5-proxy`: a local SOCKS5 server; each CONNECT opens its own tunnel. */
import { errorMessage } from "../errors.ts";
import { writeAll } from "../tunnel/bridge.ts";
import type { ConnectionScope } from "./serve.ts";
import {
  encodeReply,
  readSocks5Request,
  REP_GENERAL_FAILURE,
  REP_SUCCEEDED,
  replyCodeFor,
  SOCKS5_HANDSHAKE_TIMEOUT_MS,
} from "./socks5.ts";
import {
  bridgeClient,
  openClientTunnel,
  runTunnelService,
  type TunnelServiceOptions,
} from "./tunnel_service.ts";

export interface Socks5ProxyOptions extends TunnelServiceOptions {
  handshakeTimeoutMs?: number;
}

export function runSocks5Proxy(opts: Socks5ProxyOptions): Promise<void> {
  return runTunnelService(
    opts,
    "socks5-proxy listening",
    {},
    (conn, scope) => serveClient(conn, scope, opts),
  );
}

const FAILURE = "socks5 failed";

/**
 * Closes after a failure reply without losing it: closing a socket with unread input makes the
 * kernel send RST, which can destroy the reply before the client reads it. So half-close, discard
 * what the client still sends (bounded), then close.
 */
async function lingerClose(conn: Deno.Conn): Promise<void> {
  const timer = setTimeout(() => conn.close(), LINGER_MS);
  try {
    await conn.closeWrite();
    const buf = new Uint8Array(4096);
    while (await conn.read(buf) !== null) { /* discard */ }
  } catch {
    // reset by the client, or closed by the timer
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // closed by the timer
    }
  }
}

const LINGER_MS = 1000;

async function serveClient(conn: Deno.TcpConn, scope: ConnectionScope, opts: Socks5ProxyOptions) {
  let target: string;
  // A client still handshaking when the stop begins is cut off: it has no tunnel to drain.
  const onStop = () => conn.close();
  scope.opening.addEventListener("abort", onStop, { once: true });
  try {
    target = (await readSocks5Request(conn, {
      timeoutMs: opts.handshakeTimeoutMs ?? SOCKS5_HANDSHAKE_TIMEOUT_MS,
    })).target;
  } catch (err) {
    opts.logger.debug("socks5 handshake failed", { error: errorMessage(err) });
    if (!scope.opening.aborted) await lingerClose(conn);
    return;
  } finally {
    scope.opening.removeEventListener("abort", onStop);
  }
  let tunnel;
  try {
    tunnel = await openClientTunnel(target, scope, opts, FAILURE);
  } catch (err) {
    // Stopped mid-open: a general failure, not a verdict on the target.
    const rep = scope.opening.aborted ? REP_GENERAL_FAILURE : replyCodeFor(err);
    await writeAll(conn, encodeReply(rep)).catch(() => {});
    await lingerClose(conn);
    return;
  }
  try {
    await writeAll(conn, encodeReply(REP_SUCCEEDED, conn.localAddr));
  } catch (err) {
    tunnel.logger.debug("socks5 reply failed", { error: errorMessage(err) });
    conn.close();
    tunnel.socket.closeNow();
    await tunnel.socket.closed;
    return;
  }
  await bridgeClient(conn, tunnel, target, scope, opts, FAILURE);
}
