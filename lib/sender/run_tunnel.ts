/** The data phase of one sender tunnel: bridge, `bridge ended` log line, metrics hooks. */
import { bridge, bridgeLogAttrs, type BridgeResult, type ByteStream } from "../tunnel/bridge.ts";
import { FEATURE_HALF_CLOSE } from "../tunnel/envelope.ts";
import type { TunnelObserver } from "../tunnel/observer.ts";
import type { OpenedTunnel } from "./open_tunnel.ts";

export interface RunTunnelOptions {
  signal?: AbortSignal;
  observer?: TunnelObserver;
  /** stdio: the remote end ends the tunnel even with half-close. */
  endOnPeerEof?: boolean;
  pingIntervalMs?: number;
}

export async function runTunnel(
  local: ByteStream,
  tunnel: OpenedTunnel,
  target: string,
  opts: RunTunnelOptions = {},
): Promise<BridgeResult> {
  opts.observer?.connectionStarted?.("sender", target);
  const started = performance.now();
  const result = await bridge(local, tunnel.socket, {
    halfClose: tunnel.features.includes(FEATURE_HALF_CLOSE),
    signal: opts.signal,
    endOnPeerEof: opts.endOnPeerEof,
    pingIntervalMs: opts.pingIntervalMs,
  });
  tunnel.logger.debug("bridge ended", { target, ...bridgeLogAttrs(result) });
  opts.observer?.connectionEnded?.("sender", target, result, performance.now() - started);
  return result;
}
