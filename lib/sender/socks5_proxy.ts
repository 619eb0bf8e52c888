/** `relay-sender socks5-proxy`: a local SOCKS5 server; each CONNECT opens its own tunnel. */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { RelayDialError } from "../relay/dial_error.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { type BindAddress, formatAddr, listenTcp } from "./listen.ts";
import { openTunnel, type RelayConfig } from "./open_tunnel.ts";
import { runTunnel } from "./run_tunnel.ts";
import { type ConnectionScope, serveConnections } from "./serve.ts";
import {
  encodeReply,
  readSocks5Request,
  REP_GENERAL_FAILURE,
  REP_SUCCEEDED,
  replyCodeFor,
  SOCKS5_HANDSHAKE_TIMEOUT_MS,
} from "./socks5.ts";

export interface Socks5ProxyOptions {
  relay: RelayConfig;
  bind: BindAddress;
  keepAlive: boolean;
  drainTimeoutMs: number;
  signal: AbortSignal;
  /** A second stop request: open tunnels are cut without waiting for the drain. */
  force?: AbortSignal;
  logger: Logger;
  observer?: TunnelObserver;
  onListening?(addr: Deno.NetAddr): void;
  features?: readonly string[];
  handshakeTimeoutMs?: number;
}

export async function runSocks5Proxy(opts: Socks5ProxyOptions): Promise<void> {
  const listener = listenTcp(opts.bind);
  opts.logger.info("socks5-proxy listening", { bind: formatAddr(listener.addr) });
  opts.onListening?.(listener.addr);
  await serveConnections(listener, {
    signal: opts.signal,
    force: opts.force,
    drainTimeoutMs: opts.drainTimeoutMs,
    logger: opts.logger,
    keepAlive: opts.keepAlive,
    handle: (conn, scope) => serveClient(conn, scope, opts),
  });
}

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

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
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
    tunnel = await openTunnel(target, {
      relay: opts.relay,
      logger: opts.logger,
      signal: scope.opening,
      features: opts.features,
      observer: opts.observer,
    });
  } catch (err) {
    if (err instanceof RelayDialError && err.code !== "aborted") {
      opts.logger.warn("socks5 failed", { error: errorMessage(err) });
    }
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
  const leave = scope.enterBridge();
  try {
    const result = await runTunnel(conn, tunnel, target, {
      signal: scope.cancel,
      observer: opts.observer,
    });
    if (result.error) tunnel.logger.warn("socks5 failed", { error: errorMessage(result.error) });
  } finally {
    leave();
  }
}
