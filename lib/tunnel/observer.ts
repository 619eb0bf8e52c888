/**
 * Hooks for metrics (reference §7). Every method is optional so a metrics module can implement the
 * ones it records; the tunnel code calls them at the points the Go tool counts.
 */
import type { BridgeResult } from "./bridge.ts";

export type TunnelRole = "listener" | "sender";

/** `aztunnel_connection_errors_total` reasons: failures before bridging. */
export type ConnectionErrorReason =
  | "dial_failed"
  | "dial_timeout"
  | "dns_not_found"
  | "dns_timeout"
  | "allowlist_rejected"
  | "envelope_error"
  | "relay_failed"
  | "auth_failed";

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
}
