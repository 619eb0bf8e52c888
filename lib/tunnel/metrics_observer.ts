/**
 * The TunnelObserver that records into `Metrics` (reference §7). It lives here rather than in
 * lib/observe because lib/observe is a leaf (it imports nothing else from lib/), while the tunnel
 * code that defines the hooks may depend on it; lib/sender, lib/listener and lib/arc only ever see
 * the TunnelObserver interface.
 */
import type { Metrics } from "../observe/metrics.ts";
import type { TunnelObserver } from "./observer.ts";

/**
 * `entry`: the `up` entry this observer serves, its `name` label (the Metrics must have been made
 * with `entryNames`); the hooks carry no entry of their own, so each entry gets its own observer.
 */
export function metricsObserver(metrics: Metrics, entry?: string): TunnelObserver {
  return {
    connectionStarted: (role, target) => void metrics.bridgeStarted(role, target, entry),
    connectionEnded: (role, target, result, durationMs) =>
      metrics.bridgeEnded(
        role,
        target,
        {
          status: result.error ? "error" : "success",
          bytesToRelay: result.tcpToWs,
          bytesFromRelay: result.wsToTcp,
        },
        durationMs / 1000,
        entry,
      ),
    connectionError: (role, reason) => metrics.connectionError(role, reason, entry),
    dialDuration: (role, ms) => metrics.dialDuration(role, ms / 1000, entry),
  };
}
