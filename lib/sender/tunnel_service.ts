/**
 * What port-forward and socks5-proxy share around their protocol: the local listener and its stop,
 * opening a tunnel per client, and the bridge. Each logs its failures under its own message.
 */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import { RelayDialError } from "../relay/dial_error.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { type BindAddress, formatAddr, listenTcp } from "./listen.ts";
import { type OpenedTunnel, openTunnel, type RelayConfig } from "./open_tunnel.ts";
import { runTunnel } from "./run_tunnel.ts";
import { type ConnectionScope, serveConnections } from "./serve.ts";

export interface TunnelServiceOptions {
  relay: RelayConfig;
  bind: BindAddress;
  keepAlive: boolean;
  drainTimeoutMs: number;
  signal: AbortSignal;
  /** A second stop request: open tunnels are cut without waiting for the drain. */
  force?: AbortSignal;
  logger: Logger;
  observer?: TunnelObserver;
  /** Called with the bound address once listening (tests use it instead of parsing logs). */
  onListening?(addr: Deno.NetAddr): void;
  /** Features to offer; default all. */
  features?: readonly string[];
  /** See BridgeOptions.halfCloseLingerMs. */
  halfCloseLingerMs?: number;
}

/**
 * Listens on `opts.bind`, logs `listening` with the bound address (then `attrs`), and hands every
 * connection to `handle` until `signal` aborts, then drains. Throws when the bind fails.
 */
export async function runTunnelService(
  opts: TunnelServiceOptions,
  listening: string,
  attrs: Record<string, unknown>,
  handle: (conn: Deno.TcpConn, scope: ConnectionScope) => Promise<void>,
): Promise<void> {
  const listener = listenTcp(opts.bind);
  opts.logger.info(listening, { bind: formatAddr(listener.addr), ...attrs });
  opts.onListening?.(listener.addr);
  await serveConnections(listener, { ...opts, handle });
}

/**
 * Opens the tunnel for one client to `target`, given up when the stop begins. A relay dial failure
 * is logged as WARN `failure` (a stop is none; the other failures were logged by openTunnel), then
 * rethrown.
 */
export async function openClientTunnel(
  target: string,
  scope: ConnectionScope,
  opts: TunnelServiceOptions,
  failure: string,
): Promise<OpenedTunnel> {
  try {
    return await openTunnel(target, { ...opts, signal: scope.opening });
  } catch (err) {
    if (err instanceof RelayDialError && err.code !== "aborted") {
      opts.logger.warn(failure, { error: errorMessage(err) });
    }
    throw err;
  }
}

/** Bridges `conn` and `tunnel` as a drain waits for; a failed bridge is logged as WARN `failure`. */
export async function bridgeClient(
  conn: Deno.TcpConn,
  tunnel: OpenedTunnel,
  target: string,
  scope: ConnectionScope,
  opts: TunnelServiceOptions,
  failure: string,
): Promise<void> {
  const leave = scope.enterBridge();
  try {
    const result = await runTunnel(conn, tunnel, target, {
      signal: scope.cancel,
      observer: opts.observer,
      halfCloseLingerMs: opts.halfCloseLingerMs,
    });
    if (result.error) tunnel.logger.warn(failure, { error: errorMessage(result.error) });
  } finally {
    leave();
  }
}
