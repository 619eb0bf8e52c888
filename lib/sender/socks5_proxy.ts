/** `relay-sender socks5-proxy`: a local SOCKS5 server; each CONNECT opens its own tunnel. */
import { errorMessage } from "../errors.ts";
import { writeAll } from "../net/write_all.ts";
import { lingerClose } from "../net/linger_close.ts";
import {
  encodeReply,
  readSocks5Request,
  REP_GENERAL_FAILURE,
  REP_SUCCEEDED,
  replyCodeFor,
  SOCKS5_HANDSHAKE_TIMEOUT_MS,
} from "./socks5.ts";
import { type ConnectionScope, serveTunnels, type TunnelServiceOptions } from "./tunnel_service.ts";

export interface Socks5ProxyOptions extends TunnelServiceOptions {
  handshakeTimeoutMs?: number;
}

export function runSocks5Proxy(opts: Socks5ProxyOptions): Promise<void> {
  return serveTunnels(opts, {
    listening: "socks5-proxy listening",
    failure: "socks5 failed",
    handle: (conn, scope) => serveClient(conn, scope, opts),
  });
}

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
    tunnel = await scope.open(target);
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
  await scope.bridge(conn, tunnel);
}
