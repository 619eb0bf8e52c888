/** `relay-sender port-forward`: every local TCP connection gets its own tunnel to one target. */
import { errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { type BindAddress, formatAddr, listenTcp } from "./listen.ts";
import { openTunnel, type RelayConfig } from "./open_tunnel.ts";
import { RelayDialError } from "../relay/dial_error.ts";
import { runTunnel } from "./run_tunnel.ts";
import { type ConnectionScope, serveConnections } from "./serve.ts";

export interface PortForwardOptions {
  relay: RelayConfig;
  target: string;
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
}

/** Listens and forwards until `signal` aborts, then drains. Throws when the bind fails. */
export async function runPortForward(opts: PortForwardOptions): Promise<void> {
  const listener = listenTcp(opts.bind);
  opts.logger.info("port-forward listening", {
    bind: formatAddr(listener.addr),
    target: opts.target,
  });
  opts.onListening?.(listener.addr);
  await serveConnections(listener, {
    signal: opts.signal,
    force: opts.force,
    drainTimeoutMs: opts.drainTimeoutMs,
    logger: opts.logger,
    keepAlive: opts.keepAlive,
    handle: (conn, scope) => forward(conn, scope, opts),
  });
}

async function forward(conn: Deno.TcpConn, scope: ConnectionScope, opts: PortForwardOptions) {
  let tunnel;
  try {
    tunnel = await openTunnel(opts.target, {
      relay: opts.relay,
      logger: opts.logger,
      signal: scope.opening,
      features: opts.features,
      observer: opts.observer,
    });
  } catch (err) {
    if (err instanceof RelayDialError && err.code !== "aborted") {
      opts.logger.warn("forward failed", { error: errorMessage(err) });
    }
    conn.close();
    return;
  }
  const leave = scope.enterBridge();
  try {
    const result = await runTunnel(conn, tunnel, opts.target, {
      signal: scope.cancel,
      observer: opts.observer,
    });
    if (result.error) tunnel.logger.warn("forward failed", { error: errorMessage(result.error) });
  } finally {
    leave();
  }
}
