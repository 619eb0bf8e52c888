/**
 * Hooks for metrics (reference §7). Every method is optional so a metrics module can implement the
 * ones it records; the tunnel code calls them at the points the Go tool counts.
 */
import type {
  ErrorReason as ConnectionErrorReason,
  Role as TunnelRole,
} from "../observe/metrics.ts";
import type { BridgeResult } from "./bridge_result.ts";

// The metrics define these labels; the hooks reuse them so a new reason cannot miss a series.
export type { ConnectionErrorReason, TunnelRole };

export interface TunnelObserver {
  /** A bridge started (active connections +1). */
  connectionStarted?(role: TunnelRole, target: string): void;
  /** A bridge ended: bytes, duration, success when `result.error` is unset. */
  connectionEnded?(
    role: TunnelRole,
    target: string,
    result: BridgeResult,
    durationMs: number,
  ): void;
  connectionError?(role: TunnelRole, reason: ConnectionErrorReason): void;
  /** Listener: the target dial. Sender: the whole relay dial including retries. */
  dialDuration?(role: TunnelRole, ms: number): void;
  /**
   * Sender and Arc: a relay dial (or, for Arc, the credentials it needs) finished; `error` is
   * unset on success. Not called for dials cut short by the caller's signal (shutdown).
   */
  relayDialEnded?(error?: unknown): void;
}

/** One observer that forwards every hook to each of `observers` (undefined ones are skipped). */
export function combineObservers(
  ...observers: (TunnelObserver | undefined)[]
): TunnelObserver | undefined {
  const list = observers.filter((o): o is TunnelObserver => o !== undefined);
  if (list.length <= 1) return list[0];
  return {
    connectionStarted: (role, target) => {
      for (const o of list) o.connectionStarted?.(role, target);
    },
    connectionEnded: (role, target, result, durationMs) => {
      for (const o of list) o.connectionEnded?.(role, target, result, durationMs);
    },
    connectionError: (role, reason) => {
      for (const o of list) o.connectionError?.(role, reason);
    },
    dialDuration: (role, ms) => {
      for (const o of list) o.dialDuration?.(role, ms);
    },
    relayDialEnded: (error) => {
      for (const o of list) o.relayDialEnded?.(error);
    },
  };
}
