/** The data phase of one sender tunnel: bridge, `bridge ended` log line, metrics hooks. */
import { type BridgeResult, type ByteStream, observedBridge } from "../tunnel/bridge.ts";
import { FEATURE_HALF_CLOSE } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import type { OpenedTunnel } from "./open_tunnel.ts";

export interface RunTunnelOptions {
  signal?: AbortSignal;
  observer?: TunnelObserver;
  /** stdio: the remote end ends the tunnel even with half-close. */
  endOnPeerEof?: boolean;
  pingIntervalMs?: number;
  halfCloseLingerMs?: number;
}

export function runTunnel(
  local: ByteStream,
  tunnel: OpenedTunnel,
  target: string,
  opts: RunTunnelOptions = {},
): Promise<BridgeResult> {
  return observedBridge("sender", target, local, tunnel.socket, {
    halfClose: tunnel.features.includes(FEATURE_HALF_CLOSE),
    signal: opts.signal,
    endOnPeerEof: opts.endOnPeerEof,
    pingIntervalMs: opts.pingIntervalMs,
    halfCloseLingerMs: opts.halfCloseLingerMs,
    logger: tunnel.logger,
    observer: opts.observer,
  });
}
