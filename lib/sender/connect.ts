/**
 * `relay-sender connect` (ssh ProxyCommand): one tunnel between stdin/stdout and the target. Ends
 * when the remote side ends or fails; stdin EOF is passed on (half-close) when the listener
 * supports it, otherwise it ends the tunnel as in Go.
 */
import { AztunnelError, errorMessage } from "../errors.ts";
import type { Logger } from "../observe/log.ts";
import type { ByteStream } from "../tunnel/bridge.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import { openTunnel, type RelayConfig } from "./open_tunnel.ts";
import { runTunnel } from "./run_tunnel.ts";
import { stdioStream } from "./stdio.ts";

export interface ConnectOptions {
  relay: RelayConfig;
  target: string;
  signal: AbortSignal;
  logger: Logger;
  observer?: TunnelObserver;
  /** The local end; default stdin/stdout. Tests pass a socket. */
  local?: ByteStream;
  features?: readonly string[];
  halfCloseLingerMs?: number;
}

/**
 * Resolves when the tunnel ended cleanly (or `signal` stopped it once open); throws AztunnelError
 * with the reason otherwise, including a stop before the tunnel opened. The local stream is always
 * closed.
 */
export async function runConnect(opts: ConnectOptions): Promise<void> {
  const local = opts.local ?? stdioStream();
  let tunnel;
  try {
    tunnel = await openTunnel(opts.target, opts);
  } catch (err) {
    local.close();
    // Nothing was bridged, so ssh must not take this for a session that ended normally.
    if (opts.signal.aborted) {
      throw new AztunnelError("interrupted", "interrupted before the tunnel opened", {
        cause: err,
      });
    }
    throw err;
  }
  const result = await runTunnel(local, tunnel, opts.target, {
    signal: opts.signal,
    observer: opts.observer,
    endOnPeerEof: true,
    halfCloseLingerMs: opts.halfCloseLingerMs,
  });
  if (result.error) {
    throw new AztunnelError("tunnel_failed", `tunnel failed: ${errorMessage(result.error)}`, {
      cause: result.error,
    });
  }
}
