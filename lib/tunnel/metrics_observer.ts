/**
 * The TunnelObserver that records into `Metrics` (reference §7). It lives here rather than in
 * lib/observe because lib/observe is a leaf (it imports nothing else from lib/), while the tunnel
 * code that defines the hooks may depend on it; lib/sender, lib/listener and lib/arc only ever see
 * the TunnelObserver interface.
 */
import type { Metrics } from "../observe/metrics.ts";
import type { TunnelObserver } from "./observer.ts";

export function metricsObserver(metrics: Metrics): TunnelObserver {
  return {
    connectionStarted: (role, target) => void metrics.bridgeStarted(role, target),
    connectionEnded: (role, target, result, durationMs) =>
      metrics.bridgeEnded(role, target, {
        status: result.error ? "error" : "success",
        bytesToRelay: result.tcpToWs,
        bytesFromRelay: result.wsToTcp,
      }, durationMs / 1000),
    connectionError: (role, reason) => metrics.connectionError(role, reason),
    dialDuration: (role, ms) => metrics.dialDuration(role, ms / 1000),
  };
}
